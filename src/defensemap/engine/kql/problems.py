"""What a KQL check finds: :class:`KqlProblem`, :class:`KqlCheck`, the :class:`KqlError`
family raised by :func:`~defensemap.engine.kql.run_kql`, and :func:`format_check`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from defensemap.errors import DefensemapError, InputError, SourceLocation

ProblemKind = Literal[
    "parse_error",
    "unsupported_feature",
    "unknown_table",
    "unknown_column",
    "unsafe",
    "type_error",
]


@dataclass(frozen=True)
class KqlProblem:
    """One reason a query cannot run: what kind, which construct, where, and why.

    ``kind`` is one of ``parse_error``, ``unsupported_feature``, ``unknown_table``,
    ``unknown_column``, ``unsafe`` and ``type_error`` (DuckDB refused the translated SQL
    for a reason other than a missing table or column, such as comparing a datetime with a
    number). ``line``/``column`` are 1-based, or None when the construct cannot be
    located in the text.
    """

    kind: ProblemKind
    construct: str
    line: int | None
    column: int | None
    message: str

    @property
    def header(self) -> str:
        """``<kind>: <construct> at line L, column C`` (the position only when known)."""
        text = f"{self.kind}: {self.construct}"
        if self.line is not None:
            text += f" at line {self.line}"
            if self.column is not None:
                text += f", column {self.column}"
        return text

    def __str__(self) -> str:
        return f"{self.header} — {self.message}"

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "construct": self.construct,
            "line": self.line,
            "column": self.column,
            "message": self.message,
        }


@dataclass(frozen=True)
class KqlCheck:
    """What :func:`check_kql` found. ``tables`` are the tables the query reads (also
    through provided built-in functions), ``sql`` the DuckDB translation when one was
    made."""

    ok: bool
    problems: list[KqlProblem]
    tables: list[str] = field(default_factory=list)
    sql: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "problems": [p.to_dict() for p in self.problems],
            "tables": list(self.tables),
            "sql": self.sql,
        }


class KqlError(InputError):
    """A KQL query that cannot run, carrying the :class:`KqlProblem` as ``problem``.

    ``str()`` is ``<kind>: <construct> at line L, column C — message``; ``code`` is the
    problem's kind. :meth:`from_problem` picks the subclass for the kind.
    """

    code = "kql_error"

    def __init__(self, problem: KqlProblem, *, path: str | None = None) -> None:
        location = SourceLocation(path=path, line=problem.line, column=problem.column)
        super().__init__(problem.message, location=location)
        self.problem = problem
        self.code = problem.kind

    def __str__(self) -> str:
        return str(self.problem)

    @staticmethod
    def from_problem(problem: KqlProblem, *, path: str | None = None) -> KqlError:
        return _ERROR_CLASSES[problem.kind](problem, path=path)


class KqlParseError(KqlError):
    """The query does not parse."""


class KqlUnsupportedError(KqlError):
    """Valid KQL that cannot be run here: duckdb-kql lacks it, or it needs cloud data."""


class KqlUnknownTableError(KqlError):
    """The query reads a table that is not in the catalog (or not loaded)."""


class KqlUnknownColumnError(KqlError):
    """The query uses a column that its input does not have."""


class KqlUnsafeError(KqlError):
    """The query would read files, call out or write; refused."""


class KqlTypeError(KqlError):
    """DuckDB refused the translated query for a type reason."""


_ERROR_CLASSES: dict[str, type[KqlError]] = {
    "parse_error": KqlParseError,
    "unsupported_feature": KqlUnsupportedError,
    "unknown_table": KqlUnknownTableError,
    "unknown_column": KqlUnknownColumnError,
    "unsafe": KqlUnsafeError,
    "type_error": KqlTypeError,
}


class KqlResourceError(DefensemapError):
    """A query ran out of its memory budget."""

    code = "memory_limit"


def format_check(check: KqlCheck) -> str:
    """The text ``defensemap kql check`` prints: ``ok``, or for each problem a line
    ``<kind>: <construct> at line L, column C`` followed by a line with the message."""
    if check.ok:
        return "ok"
    lines: list[str] = []
    for problem in check.problems:
        lines.append(problem.header)
        lines.append(problem.message)
    return "\n".join(lines)
