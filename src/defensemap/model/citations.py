"""Resolve ATT&CK's ``(Citation: Name)`` markers into numbered references.

As on the ATT&CK website, references are numbered in order of first use across a whole
page (the description, then procedure examples, then mitigations ...), and a source cited
twice keeps its first number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

CITATION_RE = re.compile(r"\(Citation: ([^)]+)\)")


@dataclass(frozen=True)
class Reference:
    number: int
    source_name: str
    description: str | None
    url: str | None


class ReferenceBook:
    """Numbers citations for one document; feed it every text in display order."""

    def __init__(self) -> None:
        self._numbers: dict[str, int] = {}
        self._known: dict[str, dict[str, Any]] = {}
        self.references: list[Reference] = []

    def learn(self, external_references: Any) -> None:
        """Remember sources an object or relationship declares, for later citations."""
        if not isinstance(external_references, list):
            return
        for ref in external_references:
            if isinstance(ref, dict) and isinstance(ref.get("source_name"), str):
                self._known.setdefault(ref["source_name"], ref)

    def cite(self, text: str | None, external_references: Any = None) -> str:
        """``text`` with each ``(Citation: X)`` replaced by ``[n]``; unknown sources still
        get a number so the reader sees that a citation was there."""
        if not text:
            return ""
        self.learn(external_references)
        return CITATION_RE.sub(self._replace, text)

    def _replace(self, match: re.Match[str]) -> str:
        name = match.group(1).strip()
        number = self._numbers.get(name)
        if number is None:
            number = len(self.references) + 1
            self._numbers[name] = number
            ref = self._known.get(name, {})
            self.references.append(
                Reference(
                    number=number,
                    source_name=name,
                    description=_text(ref.get("description")),
                    url=_text(ref.get("url")),
                )
            )
        return f"[{number}]"


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
