"""KQL through duckdb-kql: offline checking against the catalog, and confined execution.

Two entry points:

* :func:`check_kql` answers "would this Sentinel/Defender query run?" with no workspace:
  it parses the query, refuses anything unsafe, translates it with duckdb-kql, resolves its
  tables against the catalog and runs the SQL on *empty typed tables* in a throw-away,
  locked-down in-memory DuckDB so that column and type errors surface. It never raises
  for a bad query; it returns the problems.
* :func:`run_kql` runs a query on the live logs connection (already locked down by
  :func:`defensemap.logs.duck.lock_down`) under a timeout, and raises :class:`KqlError`
  for the same problems before anything runs.

Refusals, from the outside in: KQL constructs that read files or call out (``externaldata``,
``external_table()``, ``evaluate http_request`` / ``python`` / …, control commands that
write or attach) are refused from the query text; the generated SQL must be one ``SELECT``
that reads only known tables and a short list of generator table functions (checked on
DuckDB's own parse tree, ``json_serialize_sql``); and the connection itself has external
access disabled and its configuration locked. Where duckdb-kql lacks an operator or a
function, the problem names it with its line and column — never a wrong answer.

Lines and columns are 1-based, as an editor shows them (duckdb-kql's spans are 0-based
columns and are converted).

KQL names are case-sensitive and DuckDB's are not: DuckDB would bind ``devicename`` to
``DeviceName``, and ``deviceprocessevents`` to the table. Kusto rejects both, so tables are
matched exactly here, and a column spelled with the wrong case is reported as unknown.

Known gaps (duckdb-kql 1.1.2 and DuckDB): ``project-rename x = Missing`` binds without an
error, so that one unknown column goes unreported; and of two catalog columns differing only
in case (AzureDiagnostics ``clientIP_s``/``clientIp_s``) only the first exists here.
"""

from defensemap.engine.kql.check import check_kql
from defensemap.engine.kql.problems import (
    KqlCheck,
    KqlError,
    KqlParseError,
    KqlProblem,
    KqlResourceError,
    KqlTypeError,
    KqlUnknownColumnError,
    KqlUnknownTableError,
    KqlUnsafeError,
    KqlUnsupportedError,
    ProblemKind,
    format_check,
)
from defensemap.engine.kql.run import KqlResult, run_kql
from defensemap.logs.duck import QueryTimeoutError

__all__ = [
    "KqlCheck",
    "KqlError",
    "KqlParseError",
    "KqlProblem",
    "KqlResourceError",
    "KqlResult",
    "KqlTypeError",
    "KqlUnknownColumnError",
    "KqlUnknownTableError",
    "KqlUnsafeError",
    "KqlUnsupportedError",
    "ProblemKind",
    "QueryTimeoutError",
    "check_kql",
    "format_check",
    "run_kql",
]
