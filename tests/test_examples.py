"""examples/: the library walkthrough runs, and each example writes to a folder of its own
that git ignores, so running one neither overwrites `make run`'s files nor leaves untracked
files in the checkout."""

import runpy
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = ["tutorial.py", "keras_tutorial.py"]


def _module(name):
    return runpy.run_path(str(REPO / "examples" / name), run_name="example")


def test_tutorial_example_trains_saves_and_reloads(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert _module("tutorial.py")["main"](["--epochs", "5", "--out", str(tmp_path)]) == 0
    assert "the reloaded model predicts identically" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["accuracy.png", "cost.png", "model.npz"]


@pytest.mark.parametrize("name", EXAMPLES)
def test_examples_write_to_their_own_ignored_folder(name):
    default = _module(name)["DEFAULT_OUT"]
    assert default != Path("out") and default.parts[0] == "out"  # not make run's out/ itself
    probe = default / "cost.png"
    ignored = subprocess.run(["git", "check-ignore", "-q", str(probe)], cwd=REPO)
    if ignored.returncode == 128:
        pytest.skip("not a git checkout")
    assert ignored.returncode == 0, f"{probe} is not git-ignored"
    assert len({_module(n)["DEFAULT_OUT"] for n in EXAMPLES}) == len(EXAMPLES)
