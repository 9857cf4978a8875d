"""The package's folders are its layers (docs/contributing.md, "Layout"): these tests read every module's
imports (function-level ones included) and fail on an import that reaches up a layer, on
modules that import each other, and on a module that takes another's private names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: lowest first; a module may import from its own layer and the ones before it
LAYERS = [
    ("core", ["kernels/", "fastscratch/_validation.py", "fastscratch/_equivalents.py", "fastscratch/history.py",
              "fastscratch/activations.py", "fastscratch/optimizers.py", "fastscratch/schedules.py",
              "fastscratch/backends.py", "fastscratch/_version.py", "fastscratch/devices.py"]),
    ("io", ["fastscratch/io/"]),
    ("training", ["fastscratch/training/"]),
    ("model", ["fastscratch/network.py", "fastscratch/plots.py"]),
    ("integrations", ["fastscratch/integrations/"]),
    ("tools", ["fastscratch/tools/"]),
    # the package's face and the public names of moved modules: they hand names on
    ("face", ["fastscratch/__init__.py", "fastscratch/__main__.py", "fastscratch/datasets.py",
              "fastscratch/sklearn.py"]),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[0] == "kernels":
        parts = ["fastscratch"] + parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def source_files() -> dict[str, Path]:
    files = sorted(ROOT.glob("fastscratch/**/*.py")) + sorted(ROOT.glob("kernels/*.py"))
    return {module_name(p): p for p in files}


MODULES = source_files()


def layer_of(path: Path) -> int:
    rel = path.relative_to(ROOT).as_posix()
    for index, (_, members) in enumerate(LAYERS):
        if any(rel == m or (m.endswith("/") and rel.startswith(m)) for m in members):
            return index
    raise AssertionError(f"{rel} is in no layer: add it to LAYERS in tests/test_layers.py and to the Layout of docs/contributing.md")


def imports(name: str, path: Path) -> list[tuple[str, list[str], int]]:
    """``(module, names taken, line)`` for each import of a fastscratch module in ``path``;
    ``from package import module`` counts as an import of that module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names if alias.name.startswith("fastscratch")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("fastscratch"):
                continue
            names = [alias.name for alias in node.names]
            submodules = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
            if submodules:
                found += [(m, [], node.lineno) for m in submodules]
            else:
                found.append((target, names, node.lineno))
    return found


GRAPH = {name: imports(name, path) for name, path in MODULES.items()}


def test_every_module_is_in_a_layer():
    for path in MODULES.values():
        layer_of(path)


def test_no_import_reaches_up_a_layer():
    upward = []
    for name, path in MODULES.items():
        for target, _, line in GRAPH[name]:
            if target in MODULES and layer_of(MODULES[target]) > layer_of(path):
                upward.append(f"{path.relative_to(ROOT)}:{line} ({LAYERS[layer_of(path)][0]}) imports {target} "
                              f"({LAYERS[layer_of(MODULES[target])][0]})")
    assert not upward, "\n".join(upward)


def test_no_modules_import_each_other():
    edges = {name: {t for t, _, _ in GRAPH[name] if t in MODULES and t != name} for name in MODULES}
    # faces hand names on and are imported by nothing but Python itself; leave them out
    faces = {n for n, p in MODULES.items() if layer_of(p) == len(LAYERS) - 1}

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            node = todo.pop()
            if node == goal:
                return True
            if node not in seen:
                seen.add(node)
                todo += [n for n in edges[node] if n not in faces]
        return False

    circles = sorted({tuple(sorted((a, b))) for a in MODULES if a not in faces for b in edges[a]
                      if b not in faces and reaches(b, a)})
    assert not circles, f"modules that import each other (directly or round a loop): {circles}"


def test_no_module_takes_another_modules_private_names():
    taken = [f"{MODULES[name].relative_to(ROOT)}:{line} takes {', '.join(n for n in names if n.startswith('_'))} "
             f"from {target}"
             for name in MODULES for target, names, line in GRAPH[name]
             if target != name and any(n.startswith("_") and not n.startswith("__") for n in names)]
    assert not taken, "\n".join(taken)


@pytest.mark.parametrize("rule", ["upward", "private"])
def test_the_checks_can_fail(rule, tmp_path, monkeypatch):
    """The checks above read real code; here they are shown a module that breaks each rule."""
    bad = ROOT / "fastscratch" / "io" / "datasets.py"
    code = "from ..tools import bench\n" if rule == "upward" else "from ..network import _configure\n"
    name = module_name(bad)
    monkeypatch.setitem(GRAPH, name, GRAPH[name] + imports(name, _fake(tmp_path, bad, code)))
    check = test_no_import_reaches_up_a_layer if rule == "upward" else test_no_module_takes_another_modules_private_names
    with pytest.raises(AssertionError):
        check()


def _fake(tmp_path: Path, like: Path, code: str) -> Path:
    """A file named as ``like`` (so that its relative imports resolve the same) holding ``code``."""
    fake = tmp_path / like.name
    fake.write_text(code)
    return fake


def test_fit_fits_on_a_screen_classes_stay_small_and_the_step_is_one_short_module():
    """The redesign's sizes, kept: ``NeuralNetwork.fit`` under 60 lines (a thin front over the
    training loop), no class over 300, the step module (the math a learner reads) under 200."""
    too_big = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > 300:
                too_big.append(f"class {name}.{node.name}: {node.end_lineno - node.lineno + 1} lines")
    network = ast.parse(MODULES["fastscratch.network"].read_text())
    fit = next(n for c in network.body if isinstance(c, ast.ClassDef) and c.name == "NeuralNetwork"
               for n in c.body if isinstance(n, ast.FunctionDef) and n.name == "fit")
    assert fit.end_lineno - fit.lineno + 1 < 60, f"NeuralNetwork.fit is {fit.end_lineno - fit.lineno + 1} lines"
    assert len(MODULES["fastscratch.training.step"].read_text().splitlines()) < 200
    assert not too_big, "\n".join(too_big)


def test_the_public_paths_stay_where_they_were():
    """The re-layout kept what users import: ``fastscratch.datasets`` and ``fastscratch.sklearn``
    are the moved modules themselves (one module under two names), ``fastscratch.compare`` the
    function, and the ``fastscratch`` command's entry point resolves to the CLI's ``main``."""
    import importlib.metadata

    pytest.importorskip("sklearn")
    import fastscratch
    import fastscratch.datasets
    import fastscratch.integrations.sklearn
    import fastscratch.io.datasets
    import fastscratch.sklearn
    from fastscratch.tools import cli

    assert fastscratch.datasets is fastscratch.io.datasets
    assert fastscratch.sklearn is fastscratch.integrations.sklearn
    from fastscratch.datasets import load_dataset
    from fastscratch.sklearn import ScratchMLPClassifier
    assert load_dataset is fastscratch.io.datasets.load_dataset and ScratchMLPClassifier.__name__ == "ScratchMLPClassifier"
    assert callable(fastscratch.compare) and fastscratch.compare.__module__ == "fastscratch.tools.compare"
    (script,) = [e for e in importlib.metadata.entry_points(group="console_scripts") if e.name == "fastscratch"]
    assert script.load() is cli.main
    assert {"NeuralNetwork", "compare", "load_backend"} <= set(fastscratch.__all__)
