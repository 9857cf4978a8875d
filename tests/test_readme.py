"""The README's tutorial block runs as written and prints the tutorial's lines."""

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _tutorial_block() -> str:
    text = README.read_text()
    section = text.split("## The tutorial, verbatim", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_tutorial_runs_verbatim(tmp_path):
    result = subprocess.run([sys.executable, "-c", _tutorial_block()], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    epoch_line = r"Epoch +\d+ \| Cost: \d+\.\d{4} \| Train Acc: \d\.\d{4} \| Test Acc: \d\.\d{4}"
    assert re.fullmatch(epoch_line.replace(r" +\d+", "    1"), lines[0])
    assert [line[:10] for line in lines[1:6]] == [f"Epoch {e:4d}" for e in (100, 200, 300, 400, 500)]
    assert all(re.fullmatch(epoch_line, line) for line in lines[:6])
    assert lines[6] == "Training completed!"
    accuracy = float(re.search(r"Test accuracy: (\d\.\d+)", result.stdout).group(1))
    assert accuracy >= 0.92  # issue 3's bar for the tutorial network on the MNIST sample


def test_readme_documents_the_commands_ci_runs():
    text = README.read_text()
    assert "make run" in text and "make test" in text
    ci = (README.parent / ".ci" / "run").read_text()
    assert "make test" in ci
    makefile = (README.parent / "Makefile").read_text()
    assert re.search(r"^test:.*\n\t\$\(BIN\)/python -m pytest$", makefile, re.M)
