"""One exception root for everything defensemap reports to a user.

Every error carries a location (file, line/column or JSON pointer, object id) and a hint
saying what to do, so the CLI can print a single actionable line and the web layer can map
it to a status code without knowing the details.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SourceLocation:
    """Where in an input the problem is: ``path:line:col`` or ``path#/json/pointer``."""

    path: str | None = None
    line: int | None = None
    column: int | None = None
    pointer: str | None = None
    object_id: str | None = None

    def __str__(self) -> str:
        text = self.path or ""
        if self.line is not None:
            text += f":{self.line}"
            if self.column is not None:
                text += f":{self.column}"
        if self.pointer:
            text += f"#{self.pointer}"
        if self.object_id:
            text += f" ({self.object_id})" if text else self.object_id
        return text


class DefensemapError(Exception):
    """Root of all user-facing errors; ``exit_code`` 1 means a failure, 2 bad input."""

    exit_code = 1
    code = "error"

    def __init__(
        self, message: str, *, location: SourceLocation | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.location = location
        self.hint = hint

    def __str__(self) -> str:
        parts = []
        if self.location and str(self.location):
            parts.append(f"{self.location}:")
        parts.append(self.message)
        text = " ".join(parts)
        if self.hint:
            text += f" — {self.hint}"
        return text

    def to_dict(self) -> dict[str, object]:
        loc = self.location
        return {
            "code": self.code,
            "message": self.message,
            "hint": self.hint,
            "location": None
            if loc is None
            else {
                "path": loc.path,
                "line": loc.line,
                "column": loc.column,
                "pointer": loc.pointer,
                "object_id": loc.object_id,
            },
        }


class InputError(DefensemapError):
    """The user gave us something we cannot use (bad file, unknown id, bad option)."""

    exit_code = 2
    code = "bad_input"


class SourceError(InputError):
    """An input file cannot be read or parsed."""

    code = "source_error"


class ParseError(SourceError):
    """Not valid JSON/YAML/gzip, truncated, or too large to be what it claims."""

    code = "parse_error"


class SchemaError(SourceError):
    """Parsed, but the content does not have the shape the format requires."""

    code = "schema_error"


class NotFoundError(InputError):
    """An id or name that is not in the store."""

    code = "not_found"


class StoreError(DefensemapError):
    """The local store is missing, locked, corrupt or from a newer defensemap."""

    code = "store_error"


class NetworkError(DefensemapError):
    """A download failed; the hint names the offline alternative."""

    code = "network_error"


class ExportError(DefensemapError):
    """An export cannot be produced from what the store holds."""

    code = "export_error"
