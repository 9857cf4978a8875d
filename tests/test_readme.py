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


def test_readme_is_for_users():
    """No pointers to what a user's clone does not have (the team's notes, the issue tracker), and
    every picture it shows is committed and small."""
    text = README.read_text()
    assert "../shared" not in text and "DESIGN.md" not in text
    assert not re.search(r"\bissues?\b", text, re.I), re.search(r".{40}\bissues?\b.{40}", text, re.I).group(0)
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(pictures) >= 2
    for picture in pictures:
        path = README.parent / picture
        assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", picture
        assert path.stat().st_size < 200_000, (picture, path.stat().st_size)


def test_readme_asv_flow_is_the_one_the_test_runs():
    text = README.read_text()
    assert "asv machine --yes" in text
    assert "FASTSCRATCH_BENCH_DATASET=mnist-sample asv run --python=same --quick --set-commit-hash HEAD" in text
    assert "asv publish" in text
    asv_test = (README.parent / "tests" / "test_asv.py").read_text()
    assert '"--python=same", "--quick", "--set-commit-hash", "HEAD"' in asv_test
