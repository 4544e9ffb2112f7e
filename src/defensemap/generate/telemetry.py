"""Synthetic telemetry with known attacks injected: ground truth for tests and benchmarks.

Rows are generated inside DuckDB from ``range(N)`` with hash-based choices, so ten million
rows take seconds, and the same ``--seed`` always gives the same bytes. Every table is written
with all of its catalog columns (unset ones null), so ``hunt`` recognises it by its columns. The
injected attacks and their row numbers are written beside the output as ``<file>.truth.json``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from defensemap.catalog import load_catalog
from defensemap.errors import InputError, SourceLocation

FORMATS = {
    ".parquet": "(FORMAT PARQUET)",
    ".ndjson": "(FORMAT JSON)",
    ".jsonl": "(FORMAT JSON)",
    ".csv": "(FORMAT CSV, HEADER)",
}
START = "2026-11-02 00:00:00"
DAYS = 14
HOSTS = 60


@dataclass(frozen=True)
class Attack:
    """One injected event: the scenario, the technique it shows, and its column values."""

    name: str
    technique: str
    values: dict[str, Any]


@dataclass(frozen=True)
class GeneratedFile:
    path: Path
    table: str
    rows: int
    attacks: list[dict[str, Any]]


def _sql_list(values: list[str]) -> str:
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def _pick(options: list[str], salt: str) -> str:
    """A deterministic choice among ``options`` for row ``i`` (hash of row, seed and salt)."""
    return f"{_sql_list(options)}[1 + (CAST(hash(i, $seed, '{salt}') % {len(options)} AS BIGINT))]"


# Working hours are busier: the hour of day is drawn from this weighted list.
_HOURS = [
    0,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    7,
    8,
    8,
    8,
    9,
    9,
    9,
    9,
    10,
    10,
    10,
    10,
    11,
    11,
    11,
    12,
    12,
    13,
    13,
    13,
    14,
    14,
    14,
    14,
    15,
    15,
    15,
    16,
    16,
    16,
    17,
    17,
    18,
    19,
    20,
    21,
    22,
    23,
]


def _time(salt: str) -> str:
    return (
        f"TIMESTAMP '{START}' + to_days(CAST(hash(i, $seed, '{salt}d') % {DAYS} AS INTEGER))"
        f" + to_hours({_sql_list([str(h) for h in _HOURS]).replace(chr(39), '')}"
        f"[1 + (CAST(hash(i, $seed, '{salt}h') % {len(_HOURS)} AS BIGINT))])"
        f" + to_seconds(CAST(hash(i, $seed, '{salt}s') % 3600 AS INTEGER))"
    )


_USERS = [
    f"{first}.{last}"
    for first in ("alex", "sam", "jo", "kim", "lee", "max", "ria", "tom")
    for last in ("ng", "diaz", "ivanova", "okafor", "berg")
]
# (parent, child, child folder, command line) pairs as they occur on a normal fleet.
_PROCESSES = [
    (
        "explorer.exe",
        "chrome.exe",
        r"C:\Program Files\Google\Chrome\Application",
        '"chrome.exe" --type=renderer --field-trial-handle=1820',
    ),
    (
        "explorer.exe",
        "OUTLOOK.EXE",
        r"C:\Program Files\Microsoft Office\root\Office16",
        '"OUTLOOK.EXE"',
    ),
    (
        "explorer.exe",
        "Teams.exe",
        r"C:\Users\Public\AppData\Local\Microsoft\Teams",
        "Teams.exe --system-initiated",
    ),
    (
        "services.exe",
        "svchost.exe",
        r"C:\Windows\System32",
        "svchost.exe -k netsvcs -p -s Schedule",
    ),
    ("svchost.exe", "taskhostw.exe", r"C:\Windows\System32", "taskhostw.exe"),
    ("explorer.exe", "cmd.exe", r"C:\Windows\System32", 'cmd.exe /c "ipconfig /all"'),
    ("cmd.exe", "git.exe", r"C:\Program Files\Git\cmd", "git fetch --all"),
    (
        "explorer.exe",
        "Code.exe",
        r"C:\Users\Public\AppData\Local\Programs\Microsoft VS Code",
        "Code.exe",
    ),
    (
        "Code.exe",
        "powershell.exe",
        r"C:\Windows\System32\WindowsPowerShell\v1.0",
        "powershell.exe -NoProfile -Command Get-ChildItem",
    ),
    (
        "svchost.exe",
        "MsMpEng.exe",
        r"C:\ProgramData\Microsoft\Windows Defender\Platform",
        "MsMpEng.exe",
    ),
    ("services.exe", "msiexec.exe", r"C:\Windows\System32", "msiexec.exe /V"),
    (
        "explorer.exe",
        "msedge.exe",
        r"C:\Program Files (x86)\Microsoft\Edge\Application",
        "msedge.exe",
    ),
]


def _process(part: int) -> str:
    """One field of the row's (parent, child, folder, command line) process pair."""
    index = f"1 + (CAST(hash(i, $seed, 'proc') % {len(_PROCESSES)} AS BIGINT))"
    return f"{_sql_list([p[part] for p in _PROCESSES])}[{index}]"


def _process_sql(table: str, rows: int) -> str:
    host = f"'WKS-' || lpad(CAST(1 + hash(i, $seed, 'host') % {HOSTS} AS VARCHAR), 4, '0')"
    user = _pick(_USERS, "user")
    return f"""
        SELECT {_time("t")} AS Timestamp,
               md5(CAST(hash(i, $seed, 'host') % {HOSTS} AS VARCHAR)) AS DeviceId,
               {host} || '.corp.example' AS DeviceName,
               'ProcessCreated' AS ActionType,
               {_process(1)} AS FileName,
               {_process(2)} || '\\' || {_process(1)} AS FolderPath,
               (SELECT string_agg(lpad(to_hex(hash(i, $seed, s)), 16, '0'), '') FROM (VALUES ('a'), ('b'), ('c'), ('d')) v(s)) AS SHA256,
               CAST(1000 + hash(i, $seed, 'pid') % 60000 AS BIGINT) AS ProcessId,
               {_process(3)} AS ProcessCommandLine,
               'CORP' AS AccountDomain,
               {user} AS AccountName,
               {user} || '@corp.example' AS AccountUpn,
               {_process(0)} AS InitiatingProcessFileName,
               'C:\\Windows\\' || {_process(0)} AS InitiatingProcessFolderPath,
               {_process(0)} AS InitiatingProcessCommandLine,
               CAST(500 + hash(i, $seed, 'ppid') % 60000 AS BIGINT) AS InitiatingProcessId,
               {user} AS InitiatingProcessAccountName,
               CAST(hash(i, $seed, 'report') % 1000000 AS BIGINT) AS ReportId,
               CAST(NULL AS VARCHAR) AS _attack, i AS _seq
        FROM range({rows}) r(i)"""


_APPS = [
    "Microsoft Teams",
    "Office 365 Exchange Online",
    "Microsoft Azure Portal",
    "OfficeHome",
    "Microsoft Authentication Broker",
    "SharePoint Online Web Client Extensibility",
]


def _signin_sql(table: str, rows: int) -> str:
    user = _pick(_USERS, "user")
    return f"""
        SELECT {_time("t")} AS TimeGenerated,
               {_time("t")} AS CreatedDateTime,
               {user} || '@corp.example' AS UserPrincipalName,
               {user} AS UserDisplayName,
               md5({user}) AS UserId,
               {_pick(_APPS, "app")} AS AppDisplayName,
               md5({_pick(_APPS, "app")}) AS AppId,
               '10.20.' || CAST(hash(i, $seed, 'ip3') % 20 AS VARCHAR) || '.'
                   || CAST(hash(i, $seed, 'ip4') % 250 AS VARCHAR) AS IPAddress,
               {
        _pick(["0", "0", "0", "0", "0", "0", "0", "0", "50126", "50074"], "result")
    } AS ResultType,
               {_pick(["Browser", "Mobile Apps and Desktop clients"], "client")} AS ClientAppUsed,
               {
        _pick(
            [
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Edg/131.0",
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Safari/605.1.15",
            ],
            "ua",
        )
    } AS UserAgent,
               'NL' AS Location,
               true AS IsInteractive,
               'Sign-in activity' AS OperationName,
               'SigninLogs' AS Type,
               CAST(NULL AS VARCHAR) AS _attack, i AS _seq
        FROM range({rows}) r(i)"""


_ACTIVITIES = [
    "Update user",
    "Add member to group",
    "Update device",
    "Reset password (self-service)",
    "Update application",
    "Consent to application",
]


def _audit_sql(table: str, rows: int) -> str:
    return f"""
        SELECT {_time("t")} AS TimeGenerated,
               {_time("t")} AS ActivityDateTime,
               {_pick(_ACTIVITIES, "act")} AS OperationName,
               {_pick(_ACTIVITIES, "act")} AS ActivityDisplayName,
               'UserManagement' AS Category,
               'success' AS Result,
               'Core Directory' AS LoggedByService,
               json_object('user', json_object('userPrincipalName', {_pick(_USERS, "actor")} || '@corp.example'))
                   AS InitiatedBy,
               json_array(json_object('userPrincipalName', {_pick(_USERS, "target")} || '@corp.example'))
                   AS TargetResources,
               'AuditLogs' AS Type,
               CAST(NULL AS VARCHAR) AS _attack, i AS _seq
        FROM range({rows}) r(i)"""


def _sysmon_sql(table: str, rows: int) -> str:
    return f"""
        SELECT 1 AS EventID,
               'Microsoft-Windows-Sysmon/Operational' AS Channel,
               'Microsoft-Windows-Sysmon' AS Provider_Name,
               'WKS-' || lpad(CAST(1 + hash(i, $seed, 'host') % {HOSTS} AS VARCHAR), 4, '0')
                   || '.corp.example' AS Computer,
               {_time("t")} AS TimeCreated,
               {_process(2)} || '\\' || {_process(1)} AS Image,
               {_process(3)} AS CommandLine,
               'C:\\Windows\\' || {_process(0)} AS ParentImage,
               {_process(0)} AS ParentCommandLine,
               'CORP\\' || {_pick(_USERS, "user")} AS "User",
               'Medium' AS IntegrityLevel,
               CAST(NULL AS VARCHAR) AS _attack, i AS _seq
        FROM range({rows}) r(i)"""


TABLES: dict[str, Callable[[str, int], str]] = {
    "DeviceProcessEvents": _process_sql,
    "SigninLogs": _signin_sql,
    "AuditLogs": _audit_sql,
    "Sysmon": _sysmon_sql,
}

DEFAULT_ATTACKS: dict[str, list[Attack]] = {
    "DeviceProcessEvents": [
        Attack(
            "Azure CLI sign-in from a finance workstation",
            "T1021.007",
            {
                "FileName": "az.cmd",
                "FolderPath": r"C:\Program Files\Microsoft SDKs\Azure\CLI2\wbin\az.cmd",
                "ProcessCommandLine": "az login --use-device-code",
                "InitiatingProcessFileName": "cmd.exe",
            },
        ),
        Attack(
            "LSASS dump with comsvcs",
            "T1003.001",
            {
                "FileName": "rundll32.exe",
                "FolderPath": r"C:\Windows\System32\rundll32.exe",
                "ProcessCommandLine": r"rundll32.exe C:\Windows\System32\comsvcs.dll, MiniDump 624 C:\Temp\l.dmp full",
                "InitiatingProcessFileName": "powershell.exe",
            },
        ),
        Attack(
            "Shadow copies deleted",
            "T1490",
            {
                "FileName": "vssadmin.exe",
                "FolderPath": r"C:\Windows\System32\vssadmin.exe",
                "ProcessCommandLine": "vssadmin.exe delete shadows /all /quiet",
                "InitiatingProcessFileName": "cmd.exe",
            },
        ),
        Attack(
            "Encoded PowerShell download cradle",
            "T1059.001",
            {
                "FileName": "powershell.exe",
                "FolderPath": r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
                "ProcessCommandLine": "powershell.exe -nop -w hidden -enc SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoA",
                "InitiatingProcessFileName": "winword.exe",
            },
        ),
    ],
    "SigninLogs": [
        Attack(
            f"Password spray attempt {n}",
            "T1110.003",
            {
                "UserPrincipalName": f"{user}@corp.example",
                "IPAddress": "203.0.113.77",
                "ResultType": "50126",
                "AppDisplayName": "Office 365 Exchange Online",
                "UserAgent": "python-requests/2.32",
            },
        )
        for n, user in enumerate(_USERS[:12])
    ],
    "AuditLogs": [
        Attack(
            "New credential added to an application",
            "T1098.001",
            {
                "OperationName": "Update application – Certificates and secrets management",
                "ActivityDisplayName": "Update application – Certificates and secrets management",
                "Category": "ApplicationManagement",
            },
        ),
    ],
    "Sysmon": [
        Attack(
            "Shadow copies deleted (Sysmon)",
            "T1490",
            {
                "Image": r"C:\Windows\System32\vssadmin.exe",
                "CommandLine": "vssadmin.exe delete shadows /all /quiet",
                "ParentImage": r"C:\Windows\System32\cmd.exe",
            },
        ),
    ],
}


def load_attacks(path: Path) -> list[Attack]:
    """``--attacks FILE``: a JSON or YAML list of {name, technique, values{column: value}}."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(
            f"cannot read attacks: {exc}", location=SourceLocation(path=str(path))
        ) from None
    if not isinstance(data, list):
        raise InputError(
            "expected a list of attacks", location=SourceLocation(path=str(path), pointer="/")
        )
    attacks = []
    for index, item in enumerate(data):
        ok = (
            isinstance(item, dict)
            and isinstance(item.get("values"), dict)
            and isinstance(item.get("name"), str)
        )
        if not ok:
            raise InputError(
                "each attack needs 'name' and a 'values' mapping (and optionally 'technique')",
                location=SourceLocation(path=str(path), pointer=f"/{index}"),
            )
        attacks.append(Attack(item["name"], str(item.get("technique", "")), item["values"]))
    return attacks


def generate(
    table: str, rows: int, out: Path, *, seed: int = 1, attacks: list[Attack] | None = None
) -> GeneratedFile:
    """Write ``rows`` benign events of ``table`` plus the attacks to ``out`` (format by suffix)."""
    if table not in TABLES:
        raise InputError(
            f"no generator for table {table!r}", hint=f"choose one of: {', '.join(TABLES)}"
        )
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise InputError(
            f"unknown output format {suffix!r}", hint=f"use one of: {', '.join(FORMATS)}"
        )
    chosen = DEFAULT_ATTACKS[table] if attacks is None else attacks
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")
        con.execute(f"CREATE TABLE gen AS {TABLES[table](table, rows)}", {"seed": seed})
        _inject(con, chosen, seed)
        columns = _output_columns(con, table)
        out.parent.mkdir(parents=True, exist_ok=True)
        first = con.execute("SELECT column_name FROM (DESCRIBE gen) LIMIT 1").fetchone()
        order = f'ORDER BY "{first[0] if first else "_seq"}", _seq'
        con.execute(
            f"COPY (SELECT {columns} FROM gen {order}) TO '{_quote(out)}' {FORMATS[suffix]}"
        )
        truth = con.execute(
            f"SELECT n, _attack FROM (SELECT row_number() OVER ({order}) AS n, _attack FROM gen)"
            " WHERE _attack IS NOT NULL ORDER BY n"
        ).fetchall()
    finally:
        con.close()
    found = [{"record": n, **json.loads(a)} for n, a in truth]
    Path(f"{out}.truth.json").write_text(json.dumps(found, indent=2) + "\n", encoding="utf-8")
    return GeneratedFile(out, table, rows + len(chosen), found)


def _quote(path: Path) -> str:
    return str(path).replace("'", "''")


def _inject(con: duckdb.DuckDBPyConnection, attacks: list[Attack], seed: int) -> None:
    """Each attack copies one generated row (chosen by the seed) and overrides its columns."""
    total = con.execute("SELECT count(*) FROM gen").fetchone()
    count = int(total[0]) if total else 0
    names = {r[0] for r in con.execute("SELECT column_name FROM (DESCRIBE gen)").fetchall()}
    for number, attack in enumerate(attacks):
        unknown = sorted(set(attack.values) - names)
        if unknown:
            raise InputError(
                f"attack {attack.name!r} sets columns this generator does not write: {', '.join(unknown)}"
            )
        source = (seed * 7919 + number * 104729) % max(count, 1)
        label = json.dumps({"name": attack.name, "technique": attack.technique})
        overrides = ", ".join(f'? AS "{column}"' for column in attack.values)
        replace = ", ".join([*([overrides] if overrides else []), "? AS _attack", "? AS _seq"])
        con.execute(
            f"INSERT INTO gen SELECT * REPLACE ({replace}) FROM gen WHERE _seq = ?",
            [*attack.values.values(), label, count + number, source],
        )


def _output_columns(con: duckdb.DuckDBPyConnection, table: str) -> str:
    """All catalog columns in catalog order (unset ones null); Sysmon keeps its own."""
    generated = [r[0] for r in con.execute("SELECT column_name FROM (DESCRIBE gen)").fetchall()]
    generated = [c for c in generated if c not in ("_attack", "_seq")]
    known = load_catalog().table(table)
    if known is None:
        return ", ".join(f'"{c}"' for c in generated)
    parts = []
    for column in known.columns:
        if column.name in generated:
            parts.append(f'"{column.name}"')
        else:
            parts.append(f'CAST(NULL AS {column.duckdb_type}) AS "{column.name}"')
    return ", ".join(parts)
