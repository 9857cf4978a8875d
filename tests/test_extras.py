"""The optional-dependency extras: PyTorch can be installed through one (``torch``, and
``peers`` for every framework ``fastscratch bench`` compares with), and no extra that CI or
``make run`` installs pulls it in (a plain ``torch`` requirement on Linux is the multi-GB CUDA
build); Dask through ``distributed``, which CI's ``dev`` includes."""

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _extras() -> dict[str, list[str]]:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]


@pytest.mark.parametrize("extra", ["dev", "all", "numba", "plot"])
def test_no_extra_that_ci_or_make_run_installs_pulls_torch(extra):
    """A plain `torch` requirement on Linux downloads the multi-GB CUDA build: CI (`dev`),
    `make run` (`numba`, `plot`) and `all` must not contain it."""
    requirements = " ".join(_extras()[extra]).lower()
    assert "torch" not in requirements, requirements


def test_peers_extra_brings_every_framework_bench_compares_with():
    extras = _extras()
    assert any(r.startswith("torch") for r in extras["torch"])
    assert any(r.replace(" ", "").startswith("fastscratch[") and {"keras", "torch"} <= set(
        r.split("[")[1].split("]")[0].split(",")) for r in extras["peers"]), extras["peers"]



def test_distributed_extra_brings_dask_and_is_in_dev_and_all():
    extras = _extras()
    assert any(r.replace(" ", "").startswith("dask[distributed]") for r in extras["distributed"]), extras["distributed"]
    assert any(r.replace(" ", "").startswith("dask[distributed]") for r in extras["dev"]), extras["dev"]
    assert any("distributed" in r.split("[", 1)[1] for r in extras["all"] if r.startswith("fastscratch[")), extras["all"]


def test_dev_runs_the_notebooks_and_the_notebooks_extra_opens_them():
    """`make test` executes notebooks/ (nbclient on an ipykernel) and checks each .ipynb against its
    jupytext script; users get Jupyter and jupytext from the `notebooks` extra."""
    extras = _extras()
    names = lambda extra: {r.split(">")[0].split("[")[0].split(";")[0].strip() for r in extras[extra]}  # noqa: E731
    assert {"nbclient", "nbformat", "ipykernel", "jupytext"} <= names("dev"), extras["dev"]
    assert "jupytext" in names("notebooks") and names("notebooks") & {"jupyterlab", "notebook"}, extras["notebooks"]
