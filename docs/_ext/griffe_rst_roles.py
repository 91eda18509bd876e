"""A griffe extension for the API pages: Sphinx roles in docstrings become code spans.

seqrec's docstrings name other objects the Sphinx way (``:meth:`construct```,
``:class:`~seqrec.SASRecModel```); mkdocstrings reads Markdown, where the role would show as text.
"""

from __future__ import annotations

import re
import typing as tp

import griffe

ROLE = re.compile(r":(?:py:)?(?:meth|class|func|attr|mod|data|obj|exc):`~?([^`]+)`")


class SphinxRolesAsCode(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: tp.Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(r"`\1`", obj.docstring.value)
