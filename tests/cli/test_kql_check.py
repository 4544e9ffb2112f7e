"""`defensemap kql check`: CI-friendly exit codes and first lines."""

from __future__ import annotations

from pathlib import Path

import pytest

GOOD = """DeviceProcessEvents
| where Timestamp > ago(7d)
| where FileName in~ ("az.cmd", "az.exe") and ProcessCommandLine has "login"
| summarize Count = count() by DeviceName, bin(Timestamp, 1h)
"""


@pytest.mark.parametrize(
    ("query", "first_line", "code"),
    [
        (GOOD, "ok", 0),
        (
            "DeviceProcessEvents\n| where Timestmp > ago(1d)\n",
            "unknown_column: Timestmp at line 2",
            2,
        ),
        ("DeviceProcesEvents | take 1\n", "unknown_table: DeviceProcesEvents at line 1", 2),
        (
            "SigninLogs | make-series c = count() on TimeGenerated step 1h\n",
            "unsupported_feature: make-series at line 1",
            2,
        ),
        ('externaldata(a: string) ["https://example.org/x.csv"]\n', "unsafe: externaldata", 2),
        ("SigninLogs | where (ResultType == 0\n", "parse_error:", 2),
    ],
)
def test_first_line_and_exit_code(
    cli, tmp_path: Path, query: str, first_line: str, code: int
) -> None:
    path = tmp_path / "q.kql"
    path.write_text(query)
    result = cli("kql", "check", str(path))
    assert result.exit_code == code, result.stdout + result.stderr
    assert result.stdout.splitlines()[0].startswith(first_line)


def test_json_output_and_missing_file(cli, tmp_path: Path) -> None:
    path = tmp_path / "q.kql"
    path.write_text(GOOD)
    document = cli("kql", "check", str(path), "--json").json()
    assert document["kind"] == "kql-check" and document["data"]["ok"] is True
    assert document["data"]["tables"] == ["DeviceProcessEvents"]
    missing = cli("kql", "check", str(tmp_path / "nope.kql"))
    assert missing.exit_code == 2 and missing.stderr.startswith("error:")


def test_deprecated_alias_runs_as_its_modern_form(cli, tmp_path: Path) -> None:
    path = tmp_path / "q.kql"
    path.write_text("DeviceProcessEvents | summarize Paths = makeset(FolderPath) by SHA256\n")
    assert cli("kql", "check", str(path)).exit_code == 0
