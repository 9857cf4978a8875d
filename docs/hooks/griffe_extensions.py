"""Griffe extensions for the API reference (loaded by mkdocstrings, see mkdocs.yml).

- :class:`InstalledKernels`: ``kernels/`` at the repository root installs as
  ``fastscratch.kernels`` (a ``package-dir`` mapping), which griffe's static loader cannot
  see; it is visited here under its installed name, so ``::: fastscratch.kernels.contract``
  and the other modules' ``from .kernels import ...`` resolve.
- :class:`RestMarkup`: the docstrings use a little reST that Markdown would print as it is:
  roles (``:class:`~fastscratch.History```) become cross-references to the object when the
  site documents it, else plain code, so a role never breaks the strict build; simple tables
  (``====  ====``) become Markdown tables; ``text::`` literal blocks and indented ``>>>``
  examples become highlighted code blocks.  The source files keep their reST (``help()``
  and IDEs show it as written).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import griffe

#: ``:role:`target``` and ``:role:`~target``` (``~``: show only the last name)
ROLE = re.compile(r":(?:py:)?(?:class|meth|func|attr|data|mod|exc|obj|const):`(?P<tilde>~?)(?P<target>[^`<>]+)`")
PACKAGE = "fastscratch"


class InstalledKernels(griffe.Extension):
    """Attach ``kernels/`` to the loaded ``fastscratch`` package as ``fastscratch.kernels``."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        """Visit ``kernels/*.py`` under ``fastscratch.kernels`` once ``fastscratch`` is loaded."""
        if pkg.path != PACKAGE or "kernels" in pkg.members or not isinstance(pkg.filepath, Path):
            return
        # beside the package's folder, as pyproject.toml's package-dir maps it
        folder = pkg.filepath.parent.parent / "kernels"
        if not (folder / "__init__.py").is_file():
            return
        kernels = self._visit("kernels", folder / "__init__.py", pkg, loader)
        for source in sorted(folder.glob("*.py")):
            if source.stem != "__init__":
                self._visit(source.stem, source, kernels, loader)

    @staticmethod
    def _visit(name: str, path: Path, parent: griffe.Module, loader: griffe.GriffeLoader) -> griffe.Module:
        code = path.read_text(encoding="utf-8")
        # the loader's lines collection gives the source lines mkdocstrings shows and griffe's warnings cite
        loader.lines_collection[path] = code.splitlines()
        module = griffe.visit(name, path, code, extensions=loader.extensions, parent=parent,
                              docstring_parser=loader.docstring_parser, docstring_options=loader.docstring_options,
                              lines_collection=loader.lines_collection, modules_collection=loader.modules_collection)
        parent.set_member(name, module)
        return module


class RestMarkup(griffe.Extension):
    """Rewrite the reST of every docstring of ``fastscratch`` as Markdown."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        """Rewrite once the whole package (and its kernels) is loaded, so names resolve."""
        if pkg.path != PACKAGE:
            return
        for obj in _walk(pkg):
            if obj.docstring is not None:
                obj.docstring.value = to_markdown(obj.docstring.value, obj)


def to_markdown(text: str, obj: griffe.Object | None = None) -> str:
    """``text`` with its reST tables, literal blocks and roles as Markdown (roles resolved in ``obj``)."""
    # tables first: they are read by column positions, which rewritten roles would shift
    lines = _literal_blocks(_tables(text.split("\n")))
    return ROLE.sub(lambda found: _reference(obj, found), "\n".join(lines))


def _tables(lines: list[str]) -> list[str]:
    """reST simple tables (a border of ``=`` runs, a header row, a border, rows, a border) as
    Markdown tables."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        spans = _border(lines[i])
        if not spans or not _table_ends(lines, i, lines[i]):
            out.append(lines[i])
            i += 1
            continue
        border, rows, borders_seen = lines[i], [], 1
        i += 1
        while borders_seen < 3:
            line = lines[i]
            i += 1
            if line.strip() == border.strip():
                borders_seen += 1
                continue
            cells = [line[start:end if k < len(spans) - 1 else None].strip()
                     for k, (start, end) in enumerate(spans)]
            # a blank first cell continues the row above (reST's rule); so does a first cell
            # alone, which is how these docstrings wrap a long first column
            continues = not cells[0] or not any(cells[1:])
            if rows and continues and borders_seen == 2 and len(rows) > 1:
                rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], cells, strict=True)]
            else:
                rows.append(cells)
        header, body = rows[0], rows[1:]
        out += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in body]
    return out


def _border(line: str) -> list[tuple[int, int]]:
    """The column spans of a simple table's border line, or [] if ``line`` is not one."""
    if not re.fullmatch(r"=+( +=+)+ *", line):
        return []
    return [found.span() for found in re.finditer(r"=+", line)]


def _table_ends(lines: list[str], start: int, border: str) -> bool:
    """Whether two more copies of ``border`` follow line ``start`` (the table is whole)."""
    return sum(line.strip() == border.strip() for line in lines[start + 1:]) >= 2


def _literal_blocks(lines: list[str]) -> list[str]:
    """``text::`` + an indented block, and indented ``>>>`` examples, as fenced code blocks."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        literal = line.rstrip().endswith("::") and i + 2 < len(lines) and not lines[i + 1].strip()
        doctest = line.lstrip().startswith(">>>") and line.startswith("    ") and (not out or not out[-1].strip())
        if not (literal or doctest):
            out.append(line)
            i += 1
            continue
        if literal:
            # "pattern is::" reads "pattern is:" (reST drops one colon), then the block
            out += [line.rstrip()[:-1], ""]
            i += 2
        block = []
        while i < len(lines) and (lines[i].startswith("    ") or not lines[i].strip()):
            block.append(lines[i])
            i += 1
        while block and not block[-1].strip():
            block.pop()
        indent = min(len(b) - len(b.lstrip()) for b in block if b.strip())
        out += ["```pycon" if doctest else "```python", *(b[indent:] for b in block), "```", ""]
    return out


def _walk(obj: griffe.Object) -> Iterator[griffe.Object]:
    """Every object defined under ``obj`` (aliases, i.e. imported names, are documented where defined)."""
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _walk(member)


def _reference(obj: griffe.Object | None, found: re.Match) -> str:
    target = found["target"].strip().removesuffix("()")
    shown = target.rsplit(".", 1)[-1] if found["tilde"] else target
    identifier = _resolve(obj, target) if obj is not None else target
    # "optional": autorefs links it when some page documents the object and prints the plain
    # code otherwise, instead of failing the strict build on, say, a private helper
    return f'<autoref identifier="{identifier}" optional><code>{shown}</code></autoref>'


def _resolve(obj: griffe.Object, target: str) -> str:
    """The full path of ``target`` as named in ``obj``'s docstring: absolute, or relative to its scope."""
    first, _, rest = target.partition(".")
    try:
        # resolve() looks in obj's members, then in each enclosing scope's, imports included
        found = obj.resolve(first)
    except (griffe.NameResolutionError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return target  # an absolute path (fastscratch.x.y) or an outside name (numpy.ndarray)
    return f"{found}.{rest}" if rest else found
