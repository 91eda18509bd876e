"""A griffe extension for the API pages: the reStructuredText bits of seqrec's docstrings that
Markdown would show as text are rewritten before rendering.

- Sphinx roles (``:meth:`construct```, ``:class:`~seqrec.SASRecModel```) become code spans.
- Two-column simple tables (a ``====  ====`` border, rows, a border; continuation lines indented
  to the second column) become Markdown tables.
"""

from __future__ import annotations

import re
import typing as tp

import griffe

ROLE = re.compile(r":(?:py:)?(?:meth|class|func|attr|mod|data|obj|exc):`~?([^`]+)`")
BORDER = re.compile(r"^(\s*)(=+)(\s+)(=+)\s*$")


def _tables(text: str) -> str:
    lines = text.split("\n")
    out: tp.List[str] = []
    i = 0
    while i < len(lines):
        m = BORDER.match(lines[i])
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == lines[i].strip()), None) if m else None
        if m is None or end is None:
            out.append(lines[i])
            i += 1
            continue
        indent, col2 = len(m.group(1)), m.start(4)
        rows: tp.List[tp.List[str]] = []
        for line in lines[i + 1:end]:
            first, second = line[indent:col2].strip(), line[col2:].strip()
            if first or not rows:
                rows.append([first, second])
            elif second:
                rows[-1][1] = f"{rows[-1][1]} {second}".strip()
        out += ["| | |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows] + [""]
        i = end + 1
    return "\n".join(out)


class RestructuredTextToMarkdown(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: tp.Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _tables(ROLE.sub(r"`\1`", obj.docstring.value))
