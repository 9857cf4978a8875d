"""scripts/gpu_check.sh and scripts/gpu_prepare.sh: their shell syntax, and gpu_check's dry run on
this machine (no GPU needed): it checks the carried files, installs the carried wheels offline
into a temporary folder, imports fastscratch (and fastscratch.kernels, which the source tree
alone does not provide) from the repository, finds the carried Fashion-MNIST, and runs the
bench pipeline with the GPUs hidden, writing every result into the output folder.

The carried folder is made here: the Fashion-MNIST files linked from where the loader finds
them, and stand-in wheels (metadata only, no modules, so nothing real is shadowed) under the
names gpu_prepare.sh downloads; the script and pip itself are the real ones.
"""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from fastscratch.io import datasets
from fastscratch.tools import bench

ROOT = Path(__file__).resolve().parents[1]
CHECK = ROOT / "scripts" / "gpu_check.sh"
PREPARE = ROOT / "scripts" / "gpu_prepare.sh"
TAG = f"cp{sys.version_info[0]}{sys.version_info[1]}"
FASHION = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _wheel(folder: Path, dist: str, tag: str = "py3-none-any") -> None:
    """A valid wheel of ``dist`` 0.0.1 holding only its metadata."""
    name = dist.replace("-", "_")
    info = f"{name}-0.0.1.dist-info"
    files = {f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.0.1\n",
             f"{info}/WHEEL": f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: {tag}\n"}
    files[f"{info}/RECORD"] = "".join(f"{path},,\n" for path in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(folder / f"{name}-0.0.1-{tag}.whl", "w") as whl:
        for path, text in files.items():
            whl.writestr(path, text)


def _run(*args, env=None, cwd=None):
    env = dict(os.environ if env is None else env, PYTHON=sys.executable)
    return subprocess.run(["bash", str(CHECK), *args], capture_output=True, text=True, timeout=300, env=env,
                          cwd=cwd or ROOT)


@pytest.mark.parametrize("script", [CHECK, PREPARE], ids=lambda p: p.name)
def test_the_scripts_parse(script):
    check = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert os.access(script, os.X_OK), f"{script.name} is not executable"
    assert "set -o pipefail" in script.read_text() or "set -euo pipefail" in script.read_text()


def test_the_carried_folders_are_git_ignored():
    ignored = subprocess.run(["git", "check-ignore", "gpu-carry/wheels/x.whl", "gpu-results/bench.json"],
                             cwd=ROOT, capture_output=True, text=True)
    if ignored.returncode == 128:
        pytest.skip("not a git checkout")
    assert ignored.stdout.split() == ["gpu-carry/wheels/x.whl", "gpu-results/bench.json"]


def test_a_dry_run_without_the_carried_files_stops_and_names_them(tmp_path):
    """No carry folder: exit 1, every missing wheel and data file listed; the results folder is
    $OUT when no folder is given."""
    env = dict(os.environ, OUT=str(tmp_path / "out"), GPU_CARRY=str(tmp_path / "nothing"))
    child = _run("--dry-run", env=env)
    assert child.returncode == 1, child.stdout + child.stderr
    assert "dry run: stopping, the carried files are incomplete" in child.stdout
    carried = (tmp_path / "out" / "carried.txt").read_text()
    for name in ("array-api-compat", "keras", "namex", "optree"):
        assert f"wheel {name}: MISSING" in carried
    assert all(f"data {stem}.gz: MISSING" in carried for stem in FASHION)
    assert "MISSING" in (tmp_path / "out" / "steps.txt").read_text()


def test_bad_arguments_are_usage_errors(tmp_path):
    assert _run("--frobnicate").returncode == 2
    assert _run(str(tmp_path / "a"), str(tmp_path / "b"), "--dry-run").returncode == 2


def test_the_dry_run_checks_the_carry_and_runs_the_pipeline_without_a_gpu(tmp_path):
    source = datasets.locate("fashion-mnist")
    if source is None or not all((Path(source) / f"{stem}.gz").is_file() for stem in FASHION):
        pytest.skip("Fashion-MNIST (.gz files) is not on this machine")
    carry = tmp_path / "carry"
    (carry / "wheels").mkdir(parents=True)
    (carry / "data" / "fashion-mnist").mkdir(parents=True)
    for stem in FASHION:
        (carry / "data" / "fashion-mnist" / f"{stem}.gz").symlink_to(Path(source) / f"{stem}.gz")
    for dist in ("array-api-compat", "keras", "namex", "absl-py", "rich", "markdown-it-py", "mdurl", "pygments",
                 "platformdirs", "tqdm"):
        _wheel(carry / "wheels", dist)
    _wheel(carry / "wheels", "optree", f"{TAG}-none-any")
    out = tmp_path / "results"
    env = {k: v for k, v in os.environ.items() if k != "FASTSCRATCH_DATA"}
    child = _run(str(out), "--dry-run", "--carry", str(carry), env=env, cwd=tmp_path)
    assert child.returncode == 0, child.stdout + child.stderr
    steps = (out / "steps.txt").read_text()
    assert "carried files: all present (11 wheels, 4 Fashion-MNIST files)" in steps
    assert "install carried wheels (pip --no-index --target; log: pip-install.log): exit status 0" in steps
    assert "imports from the source tree (imports.txt): exit status 0" in steps
    assert "tests/test_bench_gpu.py: not run (dry run)" in steps
    assert "every step passed" in steps
    imports = (out / "imports.txt").read_text()
    assert f"fastscratch.kernels from {ROOT / 'kernels' / '__init__.py'}" in imports
    assert "first meta path finder: RepoKernels" in imports
    assert f"fashion-mnist: {carry / 'data' / 'fashion-mnist'}" in imports
    carried_list = (out / "pip-list.txt").read_text().split("--- carried", 1)[1]
    assert "keras==0.0.1" in carried_list and "optree==0.0.1" in carried_list
    table = (out / "bench.txt").read_text()
    for framework in bench.DEVICE_FRAMEWORKS["gpu"]:
        assert f"  128  {framework:<18}  skipped: " in table, table
    assert f"bench: 0 of {len(bench.DEVICE_FRAMEWORKS['gpu'])} results measured" in steps
    assert (out / "bench.json").is_file() and (out / "bench.md").is_file()
    assert not (out / "nvidia-smi.txt").exists()  # nothing GPU in a dry run
