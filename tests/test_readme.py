"""The README is the site's front page: its tutorial block runs as written and prints the tutorial's
lines, it names the commands CI runs, and it (with every hand-written page of docs/) is written for
users.  The benchmark flows it used to hold live in docs/benchmarks.md now, checked here too."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = REPO / "docs"
BENCHMARKS_PAGE = DOCS / "benchmarks.md"


def user_pages() -> list[Path]:
    """README.md and the pages written by hand (not the generated reference, not the build's hooks)."""
    return [README] + [page for page in sorted(DOCS.rglob("*.md"))
                       if page.relative_to(DOCS).parts[0] not in ("reference", "hooks")]


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
    assert accuracy >= 0.92  # the bar for the tutorial network on the MNIST sample


def test_readme_documents_the_commands_ci_runs():
    text = README.read_text()
    assert "make run" in text and "make test" in text
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in ci
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^test:.*\n\t\$\(BIN\)/python -m pytest$", makefile, re.M)


@pytest.mark.parametrize("page", user_pages(), ids=lambda page: page.relative_to(REPO).as_posix())
def test_pages_are_for_users(page):
    """No pointers to what a user's clone does not have (the team's notes, the tracker's numbers),
    and every picture a page shows is committed, a PNG and small."""
    text = page.read_text(encoding="utf-8")
    assert "../shared" not in text and "DESIGN.md" not in text
    assert not re.search(r"\bissues?\b", text, re.I), re.search(r".{0,40}\bissues?\b.{0,40}", text, re.I).group(0)
    pictures = re.findall(r"!\[[^\]]*\]\(([^)\s]+)[^)]*\)", text)
    if page == README:
        assert len(pictures) >= 2
    for picture in pictures:
        path = (page.parent / picture).resolve()
        assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", picture
        assert path.stat().st_size < 200_000, (picture, path.stat().st_size)


def test_readme_is_short_and_links_into_the_docs():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    for target in re.findall(r"\]\((docs/[^)#\s]+)", text):
        assert (REPO / target).is_file(), target
    assert "make docs-serve" in text and "make docs" in text


def test_benchmarks_page_asv_flow_is_the_one_the_test_runs():
    text = BENCHMARKS_PAGE.read_text(encoding="utf-8")
    assert "asv machine --yes" in text
    assert "FASTSCRATCH_BENCH_DATASET=mnist-sample asv run --python=same --quick --set-commit-hash HEAD" in text
    assert "asv publish" in text
    asv_test = (REPO / "tests" / "test_asv.py").read_text()
    assert '"--python=same", "--quick", "--set-commit-hash", "HEAD"' in asv_test
