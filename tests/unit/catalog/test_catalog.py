"""The table-schema catalog: shipped files are well formed, agree with the upstream schemas in
../shared/data/schemas/sentinel, and the loader's lookups, type mapping, table inference and
error reporting behave as documented.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.conftest import require_shared_data

from defensemap.catalog import (
    KQL_TYPES,
    SOURCES,
    Catalog,
    Column,
    Table,
    duckdb_type,
    load_catalog,
    normalize_type,
    parse_table,
)
from defensemap.errors import SchemaError

TABLES_DIR = Path(__file__).resolve().parents[3] / "src" / "defensemap" / "catalog" / "tables"

# The 18 tables in ../shared/data/schemas/sentinel (listed here so collection needs no data).
SHARED_TABLES = [
    "AADNonInteractiveUserSignInLogs",
    "AADServicePrincipalSignInLogs",
    "AWSCloudTrail",
    "AlertEvidence",
    "AzureActivity",
    "CloudAppEvents",
    "CommonSecurityLog",
    "DeviceEvents",
    "DeviceFileEvents",
    "DeviceInfo",
    "DeviceNetworkEvents",
    "DeviceProcessEvents",
    "GCPAuditLogs",
    "IdentityDirectoryEvents",
    "IdentityInfo",
    "IdentityLogonEvents",
    "Syslog",
    "ThreatIntelligenceIndicator",
]

# Where the upstream test schemas give a type that Microsoft's Azure Monitor Logs table
# reference contradicts, we follow the reference. Every such column is listed here with
# the type we use; every other upstream column must match upstream exactly.
TYPE_CORRECTIONS = {
    # Upstream says real; the reference (and common sense) says a street address is text.
    ("IdentityInfo", "StreetAddress"): "string",
    # Upstream says string; the reference documents the *_d columns as "Stored as dynamic".
    ("AzureActivity", "Authorization_d"): "dynamic",
    ("AzureActivity", "Claims_d"): "dynamic",
    ("AzureActivity", "Properties_d"): "dynamic",
    # Upstream says double; the reference (like every other sign-in table) says long.
    ("AADServicePrincipalSignInLogs", "DurationMs"): "long",
    # Upstream says string; the reference says bool.
    ("AWSCloudTrail", "ManagementEvent"): "bool",
    ("AWSCloudTrail", "ReadOnly"): "bool",
}

# Defender XDR tables that genuinely have no Timestamp column: vulnerability-management
# inventory and knowledge-base snapshots, and the exposure graph, describe current state
# rather than timed events.
NO_TIMESTAMP = {
    "DeviceTvmBrowserExtensions",
    "DeviceTvmBrowserExtensionsKB",
    "DeviceTvmCertificateInfo",
    "DeviceTvmHardwareFirmware",
    "DeviceTvmInfoGatheringKB",
    "DeviceTvmSecureConfigurationAssessmentKB",
    "DeviceTvmSoftwareEvidenceBeta",
    "DeviceTvmSoftwareInventory",
    "DeviceTvmSoftwareVulnerabilities",
    "DeviceTvmSoftwareVulnerabilitiesKB",
    "ExposureGraphEdges",
    "ExposureGraphNodes",
}

# Distinct real columns whose names differ only in case (AzureDiagnostics creates a column
# per spelling a service emits).
CASE_VARIANTS = {"AzureDiagnostics": {"clientip_s", "status_s"}}

REQUIRED_TABLES = [
    *SHARED_TABLES,
    "DeviceRegistryEvents",
    "DeviceLogonEvents",
    "DeviceImageLoadEvents",
    "DeviceNetworkInfo",
    "DeviceFileCertificateInfo",
    "DeviceTvmSoftwareInventory",
    "DeviceTvmSecureConfigurationAssessmentKB",
    "EmailEvents",
    "EmailAttachmentInfo",
    "EmailUrlInfo",
    "EmailPostDeliveryEvents",
    "UrlClickEvents",
    "IdentityQueryEvents",
    "AlertInfo",
    "BehaviorInfo",
    "BehaviorEntities",
    "ExposureGraphNodes",
    "ExposureGraphEdges",
    "AADSignInEventsBeta",
    "AADSpnSignInEventsBeta",
    "CloudAuditEvents",
    "CloudProcessEvents",
    "SigninLogs",
    "AADManagedIdentitySignInLogs",
    "AuditLogs",
    "OfficeActivity",
    "SecurityEvent",
    "SecurityAlert",
    "SecurityIncident",
    "BehaviorAnalytics",
    "DnsEvents",
    "W3CIISLog",
    "Heartbeat",
    "Event",
    "WindowsEvent",
    "AzureDiagnostics",
    "MicrosoftGraphActivityLogs",
    "StorageBlobLogs",
]


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


# --- (a) agreement with the shared upstream schemas -------------------------------------


@pytest.mark.realdata
@pytest.mark.parametrize("name", SHARED_TABLES)
def test_every_upstream_column_is_in_our_table_with_its_type(catalog: Catalog, name: str) -> None:
    folder = require_shared_data() / "schemas" / "sentinel"
    upstream = json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))
    assert upstream["table"] == name
    upstream_types: dict[str, set[str]] = {}
    for col in upstream["columns"]:
        # Upstream lists some columns twice (IdentityDirectoryEvents.Application as string
        # and dynamic, IdentityInfo.UACFlags); we list each once, with one of its types.
        upstream_types.setdefault(col["name"], set()).add(normalize_type(col["type"]))
    table = catalog.table(name)
    assert table is not None
    problems = []
    for col_name, types in upstream_types.items():
        ours = next((c for c in table.columns if c.name == col_name), None)
        expected = (
            {TYPE_CORRECTIONS[(name, col_name)]} if (name, col_name) in TYPE_CORRECTIONS else types
        )
        if ours is None:
            problems.append(f"{col_name}: missing")
        elif ours.type not in expected:
            problems.append(f"{col_name}: ours {ours.type}, expected {sorted(expected)}")
    assert problems == []


@pytest.mark.realdata
def test_shared_folder_holds_exactly_the_listed_tables() -> None:
    folder = require_shared_data() / "schemas" / "sentinel"
    assert sorted(p.stem for p in folder.glob("*.json")) == sorted(SHARED_TABLES)


def test_type_corrections_name_real_columns(catalog: Catalog) -> None:
    for (table_name, col_name), kql_type in TYPE_CORRECTIONS.items():
        table = catalog.table(table_name)
        assert table is not None
        assert table.column(col_name) == Column(col_name, kql_type)


# --- (b) shipped files are well formed ---------------------------------------------------


def table_files() -> list[Path]:
    return sorted(TABLES_DIR.glob("*.tsv"))


@pytest.mark.parametrize("path", table_files(), ids=lambda p: p.stem)
def test_each_file_parses_in_our_format(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    table = parse_table(text, path.name)
    assert table.name == path.stem
    assert text.startswith(f"# {path.stem} — ")
    assert table.description
    assert table.source in SOURCES
    assert text.endswith("\n")
    assert {c.type for c in table.columns} <= KQL_TYPES
    names = [c.name for c in table.columns]
    assert len(names) == len(set(names))
    folded = [n.casefold() for n in names]
    repeated = {n for n in folded if folded.count(n) > 1}
    assert repeated == CASE_VARIANTS.get(table.name, set())


def test_catalog_loads_every_file_with_unique_names(catalog: Catalog) -> None:
    assert len(catalog) == len(table_files())
    names = catalog.names()
    assert len({n.casefold() for n in names}) == len(names)
    assert list(names) == sorted(p.stem for p in table_files())


def test_sentinel_tables_have_time_generated(catalog: Catalog) -> None:
    lacking = [
        t.name
        for t in catalog.tables()
        if t.source in ("sentinel", "both") and t.column("TimeGenerated") is None
    ]
    assert lacking == []


def test_defender_tables_have_timestamp_unless_excepted(catalog: Catalog) -> None:
    lacking = {
        t.name
        for t in catalog.tables()
        if t.source in ("defender-xdr", "both") and t.column("Timestamp") is None
    }
    assert lacking == NO_TIMESTAMP


def test_timestamps_are_datetimes(catalog: Catalog) -> None:
    for table in catalog.tables():
        for name in ("Timestamp", "TimeGenerated"):
            col = table.column(name)
            assert col is None or col.type == "datetime", (table.name, name)


@pytest.mark.parametrize("name", REQUIRED_TABLES)
def test_required_table_is_present(catalog: Catalog, name: str) -> None:
    assert name in catalog


def test_well_known_columns(catalog: Catalog) -> None:
    security_event = catalog.table("SecurityEvent")
    assert security_event is not None
    for name in (
        "EventID",
        "Activity",
        "Account",
        "Computer",
        "CommandLine",
        "NewProcessName",
        "ParentProcessName",
        "SubjectUserName",
        "TargetUserName",
        "LogonType",
        "IpAddress",
        "TimeGenerated",
        "TenantId",
        "_ResourceId",
    ):
        assert name in security_event, name
    assert security_event.column("EventID") == Column("EventID", "int")
    dpe = catalog.table("DeviceProcessEvents")
    assert dpe is not None
    assert dpe.column("ProcessCommandLine") == Column("ProcessCommandLine", "string")
    assert dpe.column("AdditionalFields") == Column("AdditionalFields", "dynamic")


# --- (c) table inference ------------------------------------------------------------------


def test_infer_device_process_events(catalog: Catalog) -> None:
    columns = [
        "Timestamp",
        "DeviceId",
        "DeviceName",
        "ActionType",
        "FileName",
        "FolderPath",
        "SHA256",
        "ProcessCommandLine",
        "ProcessIntegrityLevel",
        "AccountName",
        "InitiatingProcessFileName",
        "InitiatingProcessCommandLine",
        "InitiatingProcessParentFileName",
    ]
    result = catalog.infer_table(columns)
    assert result is not None
    assert result[0] == "DeviceProcessEvents"
    assert 0 < result[1] <= 1


def test_infer_signin_logs(catalog: Catalog) -> None:
    columns = [
        "TimeGenerated",
        "UserPrincipalName",
        "AppDisplayName",
        "IPAddress",
        "ResultType",
        "ConditionalAccessStatus",
        "DeviceDetail",
        "LocationDetails",
        "Status",
        "RiskLevelDuringSignIn",
        "AuthenticationRequirement",
        "IsInteractive",
    ]
    result = catalog.infer_table(columns)
    assert result is not None and result[0] == "SigninLogs"


def test_infer_is_case_insensitive(catalog: Catalog) -> None:
    columns = ["timegenerated", "computer", "facility", "severitylevel", "syslogmessage"]
    result = catalog.infer_table(columns)
    assert result is not None and result[0] == "Syslog"


@pytest.mark.parametrize(
    "columns",
    [
        ["a", "b", "c"],
        [],
        ["TimeGenerated", "TenantId"],  # too few
        ["TimeGenerated", "TenantId", "Type"],  # only columns nearly every table has
        ["TimeGenerated", "Computer", "x1", "x2", "x3"],  # under 60% known
    ],
)
def test_infer_returns_none_without_evidence(catalog: Catalog, columns: list[str]) -> None:
    assert catalog.infer_table(columns) is None


def test_full_column_set_identifies_its_own_table_with_score_one(catalog: Catalog) -> None:
    for table in catalog.tables():
        assert catalog.infer_table(table.column_names) == (table.name, 1.0)


# --- (d) parse errors name the file and line ----------------------------------------------


def parse_file(tmp_path: Path, text: str) -> Table:
    path = tmp_path / "Broken.tsv"
    path.write_text(text, encoding="utf-8")
    return parse_table(path.read_text(encoding="utf-8"), str(path))


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("# Broken — x\nTimeGenerated\tdatetime\nCount\tinteger\n", 3, "unknown type 'integer'"),
        ("# Broken — x\nTimeGenerated\tdatetime\nCount long\n", 3, "expected 'name<TAB>type'"),
        (
            "# Broken — x\nA\tstring\nB\tlong\nA\tstring\n",
            4,
            "duplicate column 'A' (first on line 2)",
        ),
        ("# Broken — x\nA\tstring\tlong\n", 2, "expected 'name<TAB>type'"),
        ("Broken\nA\tstring\n", 1, "first line must be"),
        ("# Broken — x\n# source: splunk\nA\tstring\n", 2, "unknown source 'splunk'"),
        ("# Broken — x\n# source: sentinel\n", 2, "has no columns"),
        ("# Broken — x\nbad name\tstring\n", 2, "invalid column name"),
        ("", 1, "empty catalog file"),
    ],
)
def test_parse_errors_name_file_and_line(
    tmp_path: Path, text: str, line: int, fragment: str
) -> None:
    with pytest.raises(SchemaError) as info:
        parse_file(tmp_path, text)
    err = info.value
    assert err.location is not None
    assert err.location.path == str(tmp_path / "Broken.tsv")
    assert err.location.line == line
    assert f"{tmp_path / 'Broken.tsv'}:{line}:" in str(err)
    assert fragment in str(err)


def test_parse_reads_header_source_comments_and_blank_lines(tmp_path: Path) -> None:
    table = parse_file(
        tmp_path,
        "# Broken — A test table\n# source: both\n\nA\tstring\n# a note\nB\tdynamic\r\n",
    )
    assert table == Table(
        "Broken", "A test table", "both", (Column("A", "string"), Column("B", "dynamic"))
    )


def test_source_line_is_optional(tmp_path: Path) -> None:
    assert parse_file(tmp_path, "# Broken — x\nA\tstring\n").source is None


# --- lookups and types ----------------------------------------------------------------------


def test_table_lookup_is_case_insensitive(catalog: Catalog) -> None:
    table = catalog.table("deviceprocessevents")
    assert table is not None and table.name == "DeviceProcessEvents"
    assert "SIGNINLOGS" in catalog
    assert "NoSuchTable" not in catalog
    assert catalog.table("NoSuchTable") is None


def test_column_lookup_returns_canonical_name(catalog: Catalog) -> None:
    table = catalog.table("DeviceProcessEvents")
    assert table is not None
    assert table.column("processcommandline") == Column("ProcessCommandLine", "string")
    assert table.column("NoSuchColumn") is None
    assert "initiatingprocessfilename" in table


def test_ambiguous_case_insensitive_column_needs_exact_spelling(catalog: Catalog) -> None:
    table = catalog.table("AzureDiagnostics")
    assert table is not None
    assert table.column("clientIp_s") == Column("clientIp_s", "string")
    assert table.column("CLIENTIP_S") is None
    assert table.column("resulttype") == Column("ResultType", "string")


def test_load_catalog_is_cached() -> None:
    assert load_catalog() is load_catalog()


def test_duckdb_types() -> None:
    assert {t: duckdb_type(t) for t in sorted(KQL_TYPES)} == {
        "bool": "BOOLEAN",
        "datetime": "TIMESTAMP",
        "decimal": "DECIMAL(38,18)",
        "dynamic": "JSON",
        "guid": "VARCHAR",
        "int": "INTEGER",
        "long": "BIGINT",
        "real": "DOUBLE",
        "string": "VARCHAR",
        "timespan": "INTERVAL",
    }
    assert Column("x", "dynamic").duckdb_type == "JSON"


@pytest.mark.parametrize(
    ("alias", "normal"),
    [
        ("bigint", "long"),
        ("Double", "real"),
        ("float", "real"),
        ("boolean", "bool"),
        ("System.String", "string"),
        ("uniqueid", "guid"),
        ("date", "datetime"),
        ("time", "timespan"),
    ],
)
def test_type_aliases(alias: str, normal: str) -> None:
    assert normalize_type(alias) == normal
    assert duckdb_type(alias) == duckdb_type(normal)


def test_unknown_type_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown KQL type"):
        duckdb_type("varchar")


# --- (e) size -------------------------------------------------------------------------------


def test_catalog_has_at_least_60_tables(catalog: Catalog) -> None:
    assert len(catalog) >= 60
