"""Build a real wheel and use it from a fresh virtual environment.

``kernels/`` lives at the repository root but is installed as
``fastscratch.kernels`` through ``[tool.setuptools] package-dir`` in
pyproject.toml.  The editable install that development and the rest of the
test suite use resolves that mapping through its own import hook, so it can
keep working while the wheel that users install is broken (kernels missing, or
shipped as a top-level ``kernels`` package that clashes with other projects).
This test checks the artifact users actually get: it builds a wheel from a
clean copy of the sources, inspects its contents, installs it into a new venv
and imports and trains from there.
"""

import os
import shutil
import subprocess
import sys
import textwrap
import venv
import zipfile
from pathlib import Path

import numpy
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
BUILD_INPUTS = ["pyproject.toml", "README.md", "LICENSE", "NOTICE", "fastscratch", "kernels"]

pytestmark = pytest.mark.slow


def _run(cmd, **kwargs):
    """Run a command, failing the test with its output if it exits non-zero."""
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kwargs)
    assert result.returncode == 0, (
        f"command failed ({result.returncode}): {cmd}\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )
    return result


def _copy_sources(dest: Path) -> Path:
    """Copy what the build needs into dest, so no build/ or egg-info lands in the repo."""
    dest.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    for name in BUILD_INPUTS:
        src = REPO_ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        else:
            shutil.copy2(src, dest / name)
    return dest


def _build_wheel(src: Path, dist: Path) -> Path:
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
          "--disable-pip-version-check", "-w", str(dist), str(src)])
    wheels = list(dist.glob("*.whl"))
    assert len(wheels) == 1, f"expected exactly one wheel, got {wheels}"
    return wheels[0]


def _create_venv(env_dir: Path) -> tuple[Path, Path]:
    """A fresh venv without pip (fast to create): returns (python, site-packages)."""
    class Builder(venv.EnvBuilder):
        def post_setup(self, context):
            self.context = context

    builder = Builder(with_pip=False)
    builder.create(env_dir)
    python = Path(builder.context.env_exe)
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                   env=_clean_env()).stdout.strip()
    return python, Path(purelib)


def _install_wheel(wheel: Path, python: Path, site_packages: Path) -> None:
    """Install with the outer pip (the new venv has none)."""
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    install = ["install", "--no-deps", "--no-index"]
    result = subprocess.run(pip + ["--python", str(python)] + install + [str(wheel)],
                            capture_output=True, text=True, timeout=300)
    if result.returncode != 0 and "no such option: --python" in result.stderr:
        # pip < 22.3 cannot install into another interpreter's environment
        _run(pip + install + ["--target", str(site_packages), str(wheel)])
    else:
        assert result.returncode == 0, f"pip install failed:\n{result.stdout}\n{result.stderr}"


def _expose_numpy(site_packages: Path, shim_dir: Path) -> None:
    """Make the outer numpy importable in the venv without the outer site-packages.

    The outer site-packages holds the editable install of fastscratch, which
    would hide the wheel under test, so only numpy (and its bundled shared
    libraries, if any) is linked into a directory of its own.
    """
    shim_dir.mkdir()
    numpy_dir = Path(numpy.__file__).resolve().parent
    for name in ("numpy", "numpy.libs"):
        target = numpy_dir.parent / name
        if target.exists():
            (shim_dir / name).symlink_to(target, target_is_directory=True)
    (site_packages / "_fastscratch_test_numpy.pth").write_text(f"{shim_dir}\n")


def _clean_env() -> dict:
    """The current environment minus anything that would put the repo on sys.path."""
    env = dict(os.environ)
    for var in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE"):
        env.pop(var, None)
    env["PYTHONNOUSERSITE"] = "1"
    return env


CHECK_INSTALLED = textwrap.dedent("""
    import importlib.util
    import sys
    from pathlib import Path

    import numpy as np

    import fastscratch
    import fastscratch.kernels.numpy_kernels as numpy_kernels

    prefix = Path(sys.prefix).resolve()
    for module in (fastscratch, numpy_kernels):
        path = Path(module.__file__).resolve()
        assert prefix in path.parents, f"{module.__name__} imported from {path}, outside {prefix}"
    assert importlib.util.find_spec("kernels") is None, "a top-level 'kernels' package is installed"

    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 4)).astype(np.float32)
    y = rng.integers(0, 3, size=30)
    fastscratch.NeuralNetwork([4, 8, 3], seed=0).fit(X, y, epochs=3, verbose=False)

    from fastscratch.datasets import load_dataset  # the embedded sample ships as package data
    assert load_dataset("mnist-sample").X_train.shape == (4000, 28, 28)
    print("OK")
""")


def test_wheel_installs_kernels_as_subpackage(tmp_path):
    src = _copy_sources(tmp_path / "src")
    wheel = _build_wheel(src, tmp_path / "dist")

    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    for required in ("fastscratch/kernels/__init__.py", "fastscratch/kernels/numpy_kernels.py",
                     "fastscratch/data/mnist_sample.npz", "fastscratch/tools/cli.py"):
        assert required in names, f"{required} missing from {wheel.name}: {names}"
    dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
    assert f"{dist_info}/licenses/NOTICE" in names, "NOTICE (the MNIST sample's credits) missing"
    with zipfile.ZipFile(wheel) as zf:
        assert "fastscratch = fastscratch.tools.cli:main" in zf.read(f"{dist_info}/entry_points.txt").decode()
    top_level_kernels = [n for n in names if n.split("/")[0] == "kernels"]
    assert not top_level_kernels, f"wheel ships a top-level kernels package: {top_level_kernels}"

    python, site_packages = _create_venv(tmp_path / "venv")
    _install_wheel(wheel, python, site_packages)
    _expose_numpy(site_packages, tmp_path / "numpy_shim")

    # cwd away from the repo, whose fastscratch/ would shadow the installed one
    workdir = tmp_path / "work"
    workdir.mkdir()
    result = subprocess.run([str(python), "-c", CHECK_INSTALLED], cwd=workdir, env=_clean_env(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"installed package check failed:\n{result.stderr}"
    assert "OK" in result.stdout, f"stdout: {result.stdout!r}\nstderr: {result.stderr}"
