"""Every Python example in the README and the documentation pages runs as written.

For ``README.md`` and each page under ``docs/`` (but the generated ``docs/reference/`` and the
build's ``docs/hooks/``), the fenced blocks whose info string is exactly ``python`` or ``py`` are
joined in page order into one script, which runs in a fresh interpreter in a temporary folder (the
examples write files such as ``digits.npz``), with matplotlib's non-interactive backend.  A page's
later blocks may use what its earlier ones made, as a reader running them in order would.  Shell
commands, outputs and code that cannot run here (CuPy on a GPU) are fenced otherwise (``bash``,
a bare fence); any other info string that starts like Python (``python title=...``, ``pycon``)
is refused, so that no untested Python hides behind a near miss.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
#: generated (the CLI and API references) or not pages at all (the build's hooks)
NOT_WRITTEN_BY_HAND = ("reference", "hooks")
RUNS = ("python", "py")
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
#: pages whose script takes longer than about 20 s on 2 cores (marked slow; CI still runs them)
SLOW = {"docs/tutorial.md", "README.md"}
TIMEOUT = 300


def pages() -> list[Path]:
    found = [REPO / "README.md"]
    for page in sorted(DOCS.rglob("*.md")):
        if page.relative_to(DOCS).parts[0] not in NOT_WRITTEN_BY_HAND:
            found.append(page)
    return found


def fenced_blocks(text: str) -> list[tuple[str, str, int]]:
    """``(info string, code, line number)`` of every fenced block, indented ones (inside a list
    item) included, their indentation removed."""
    blocks = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence, info = opening["indent"], opening["fence"], opening["info"].strip()
        body = []
        j = i + 1
        while j < len(lines):
            closing = FENCE.match(lines[j])
            if closing and closing["fence"].startswith(fence[0]) and len(closing["fence"]) >= len(fence) \
                    and not closing["info"].strip():
                break
            line = lines[j]
            body.append(line[len(indent):] if line.startswith(indent) else line.lstrip())
            j += 1
        blocks.append((info, "\n".join(body) + "\n", i + 1))
        i = j + 1
    return blocks


def script_of(page: Path) -> str:
    """The page's Python blocks in order, each headed by a comment naming where it comes from."""
    name = page.relative_to(REPO).as_posix()
    parts = [f"# {name}, line {line}\n{code}" for info, code, line in fenced_blocks(page.read_text(encoding="utf-8"))
             if info in RUNS]
    return "\n".join(parts)


def _id(page: Path) -> str:
    return page.relative_to(REPO).as_posix()


PAGES_WITH_CODE = [page for page in pages() if script_of(page)]


def test_the_pages_with_examples_are_found():
    names = {_id(page) for page in PAGES_WITH_CODE}
    # the tutorial network, in the README and on its page, must stay tested
    assert {"README.md", "docs/tutorial.md"} <= names, names
    assert len(pages()) > 10, [_id(page) for page in pages()]


@pytest.mark.parametrize("page", pages(), ids=_id)
def test_no_python_block_escapes_the_run(page):
    """A block that looks like Python but is not fenced exactly ``python``/``py`` would never run."""
    suspicious = [(line, info) for info, _, line in fenced_blocks(page.read_text(encoding="utf-8"))
                  if info not in RUNS and re.match(r"(py|python|pycon|ipython)\b", info, re.I)]
    assert not suspicious, f"{_id(page)}: blocks fenced as near-Python (line, info string): {suspicious}"


@pytest.mark.parametrize("page", [pytest.param(page, marks=pytest.mark.slow) if _id(page) in SLOW else page
                                  for page in PAGES_WITH_CODE], ids=_id)
def test_page_examples_run(page, tmp_path):
    script = tmp_path / "examples.py"
    script.write_text(script_of(page), encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir()
    env = {key: value for key, value in os.environ.items() if key != "PYTEST_ADDOPTS"}
    env["MPLBACKEND"] = "Agg"
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(script)], cwd=work, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT)
    seconds = time.perf_counter() - started
    assert done.returncode == 0, (f"{_id(page)}'s examples failed (exit {done.returncode}, {seconds:.1f} s):\n"
                                  f"{done.stderr[-6000:]}\n--- stdout ---\n{done.stdout[-2000:]}")
