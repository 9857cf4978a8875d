"""MkDocs hook: the command-line reference, generated from the argparse parser at build time.

``docs/reference/cli.md`` holds the marker ``<!-- cli-reference -->``; this hook replaces it
with one section per subcommand of :func:`fastscratch.tools.cli.build_parser` (usage line,
description, every argument with its choices, default and help), so the page cannot drift
from the parser: ``tests/test_docs_site.py`` checks every option appears on the built page.
"""

from __future__ import annotations

import argparse
import html
import re
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

MARKER = "<!-- cli-reference -->"
PAGE = "reference/cli.md"
#: usage lines wrapped at a fixed width, not the terminal's, so every build gives the same page
#: (and one that fits the theme's content column without scrolling)
USAGE_WIDTH = 76
_CODE_SPAN = re.compile(r"`([^`]+)`")


def on_page_markdown(markdown: str, *, page: Any, config: Any, files: Any) -> str:
    """Replace :data:`MARKER` on the CLI page with the generated reference."""
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        # a page without the marker would silently lose the reference
        raise PluginError(f"{PAGE} lacks the marker {MARKER}: the command-line reference has nowhere to go")
    return markdown.replace(MARKER, render_reference(), 1)


def on_serve(server: Any, *, config: Any, builder: Any) -> Any:
    """``mkdocs serve``: rebuild when the package changes (the parser here, the docstrings for the
    API pages), as for a page."""
    root = Path(config.config_file_path).parent
    for folder in ("fastscratch", "kernels"):
        server.watch(str(root / folder))
    return server


def render_reference() -> str:
    """The Markdown of the whole reference: global options, then each subcommand."""
    # imported here, not at module level, so an import error names this hook's page
    from fastscratch.tools.cli import build_parser

    parser = build_parser()
    parts = [_section(parser, anchor="fastscratch", title="`fastscratch`")]
    for name, help_text, sub in subcommands(parser):
        parts.append(_section(sub, anchor=name, title=f"`fastscratch {name}`", summary=help_text))
    return "\n\n".join(parts) + "\n"


def subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """``(name, one-line help, parser)`` of each subcommand, in the order they were added."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            found += [(name, helps.get(name, ""), sub) for name, sub in action.choices.items()]
    return found


def _section(parser: argparse.ArgumentParser, *, anchor: str, title: str, summary: str = "") -> str:
    """One command's section: heading (id ``anchor``), summary, usage, description, arguments."""
    formatter = parser.formatter_class(prog=parser.prog, width=USAGE_WIDTH)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups, prefix="")
    usage = formatter.format_help().strip()
    lines = [f"## {title} {{ #{anchor} }}", ""]
    if summary:
        lines += [_inline(summary[:1].upper() + summary[1:]), ""]
    lines += ["```text", f"{usage}", "```", ""]
    if parser.description:
        lines += [_inline(parser.description), ""]
    rows = [_row(parser, action, anchor) for action in parser._actions
            if action.help is not argparse.SUPPRESS and not isinstance(action, argparse._SubParsersAction)]
    if rows:
        # raw HTML, not a Markdown table, so help text needs no Markdown escaping and each row
        # gets an id (cli.md#train--epochs links to a row); a class-less <table> gets the theme's
        # table style, the wrapping div the column rule of docs/stylesheets/extra.css
        lines += ['<div class="cli-options"><table>',
                  "<thead><tr><th>Argument</th><th>Description</th></tr></thead>",
                  "<tbody>", *rows, "</tbody></table></div>", ""]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            lines += ["Commands:", ""]
            lines += [f"- [`{n}`](#{n}): {_inline(h)}" for n, h, _ in subcommands(parser)]
            lines.append("")
    if parser.epilog:
        lines += [_inline(parser.epilog), ""]
    return "\n".join(lines)


def _row(parser: argparse.ArgumentParser, action: argparse.Action, anchor: str) -> str:
    """One ``<tr>``: the argument as ``--help`` shows it, then its help, choices and default."""
    formatter = parser.formatter_class(prog=parser.prog, width=USAGE_WIDTH)
    invocation = formatter._format_action_invocation(action)
    # the help as --help prints it: %(default)s and the like filled in
    help_text = formatter._expand_help(action) if action.help else ""
    notes = []
    if action.choices is not None and action.metavar is not None:
        # a metavar hides the choices that the invocation would otherwise show as {a,b,c}
        notes.append("Choices: " + ", ".join(f"<code>{html.escape(str(c))}</code>" for c in action.choices) + ".")
    if _shows_default(action) and "default" not in help_text.lower():
        notes.append(f"Default: <code>{html.escape(_value_text(action.default))}</code>.")
    exclusive = [other for group in parser._mutually_exclusive_groups if action in group._group_actions
                 for other in group._group_actions if other is not action]
    if exclusive:
        notes.append("Not together with " + ", ".join(f"<code>{html.escape(o.option_strings[0])}</code>"
                                                      for o in exclusive if o.option_strings) + ".")
    if not action.option_strings:
        notes.append("Required." if action.nargs in (None, "+") else "Optional.")
    description = "<br>".join(part for part in [_html(help_text), " ".join(notes)] if part)
    # the long form names the row (predict's --output, not -o): ids like predict--output
    slug = max(action.option_strings, key=len).lstrip("-") if action.option_strings else action.dest
    return (f'<tr id="{anchor}--{slug}"><td><code>{html.escape(invocation)}</code></td>'
            f"<td>{description}</td></tr>")


def _shows_default(action: argparse.Action) -> bool:
    """Whether the default is worth a line: a value the option takes, not a flag's False or None."""
    if action.default in (None, argparse.SUPPRESS) or action.nargs == 0:
        return False
    return not isinstance(action, (argparse._HelpAction, argparse._VersionAction))


def _value_text(value: object) -> str:
    # lists print as the command line takes them (--hidden 128,64), not as Python reprs
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


def _html(text: str) -> str:
    """Plain help text as HTML, with `backticked` spans as code."""
    return _CODE_SPAN.sub(r"<code>\1</code>", html.escape(text, quote=False))


def _inline(text: str) -> str:
    """Plain help text as Markdown: characters Markdown would read as markup escaped, except
    `backticked` spans, which stay code."""
    pieces = _CODE_SPAN.split(text)
    # odd indices are the code spans' contents
    return "".join(f"`{piece}`" if i % 2 else re.sub(r"([\\*_\[\]<>|#])", r"\\\1", piece)
                   for i, piece in enumerate(pieces))
