"""Reading controls in place: CSV and both YAML shapes, the names and statuses people type,
and every bad row refused with its file:line or YAML pointer (the whole file is refused)."""

from __future__ import annotations

from pathlib import Path

import pytest

from defensemap.errors import ParseError, SchemaError, SourceError
from defensemap.model.coverage import ControlInPlace
from defensemap.sources.controls import control_status, framework_key, load_controls

CSV = """framework,capability_id,status,framework_version
NIST 800-53,IA-5,Implemented,rev5
nist_800_53,AC-02,partial,
Microsoft 365,EID-CA-E3,N/A,
AWS,aws_rds,planned,

CSA CCM,IAM-02,not applicable,4.1
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_rows_become_controls_with_normalised_framework_and_status(tmp_path: Path) -> None:
    controls = load_controls(_write(tmp_path, "controls.csv", CSV))
    assert controls == [
        ControlInPlace("nist_800_53", "IA-5", "implemented", "rev5", "controls.csv:2"),
        ControlInPlace("nist_800_53", "AC-02", "partial", None, "controls.csv:3"),
        ControlInPlace("m365", "EID-CA-E3", "not-applicable", None, "controls.csv:4"),
        ControlInPlace("aws", "aws_rds", "planned", None, "controls.csv:5"),
        ControlInPlace("csa_ccm", "IAM-02", "not-applicable", "4.1", "controls.csv:7"),
    ]


def test_csv_accepts_capability_or_control_columns_and_an_excel_bom(tmp_path: Path) -> None:
    text = "\ufeffFramework, Control ,STATUS\nveris,action.hacking.variety.Brute force,planned\n"
    [control] = load_controls(_write(tmp_path, "c.csv", text))
    assert (control.framework, control.capability_id, control.status) == (
        "veris",
        "action.hacking.variety.Brute force",
        "planned",
    )
    other = "framework,capability,status\ngcp,artifact_analysis,implemented\n"
    assert load_controls(_write(tmp_path, "d.csv", other))[0].capability_id == "artifact_analysis"


def test_yaml_list_and_framework_tree_read_the_same(tmp_path: Path) -> None:
    listed = """
- framework: NIST 800-53
  capability_id: IA-5
  status: implemented
  framework_version: rev5
- {framework: kev, control: CVE-2024-3400, status: partial}
"""
    tree = """
nist_800_53:
  IA-5: implemented
kev:
  CVE-2024-3400: Partial
"""
    from_list = load_controls(_write(tmp_path, "list.yaml", listed))
    from_tree = load_controls(_write(tmp_path, "tree.yml", tree))
    assert [(c.framework, c.capability_id, c.status) for c in from_list] == [
        ("nist_800_53", "IA-5", "implemented"),
        ("kev", "CVE-2024-3400", "partial"),
    ]
    assert [(c.framework, c.capability_id, c.status) for c in from_tree] == [
        ("nist_800_53", "IA-5", "implemented"),
        ("kev", "CVE-2024-3400", "partial"),
    ]
    assert from_list[0].framework_version == "rev5"
    assert (from_list[1].source, from_tree[1].source) == (
        "list.yaml#/1",
        "tree.yml#/kev/CVE-2024-3400",
    )


@pytest.mark.parametrize(
    ("typed", "key"),
    [
        ("NIST 800-53", "nist_800_53"),
        ("nist-800-53", "nist_800_53"),
        ("800-53", "nist_800_53"),
        ("Microsoft 365", "m365"),
        ("M365", "m365"),
        ("CRI Profile", "cri_profile"),
        ("CSA Cloud Controls Matrix", "csa_ccm"),
        ("intel_vpro", "intel-vpro"),
        ("Intel vPro", "intel-vpro"),
        ("Known Exploited Vulnerabilities", "kev"),
        ("VERIS", "veris"),
        ("iso 27001", None),
    ],
)
def test_framework_names_users_type(typed: str, key: str | None) -> None:
    assert framework_key(typed) == key


@pytest.mark.parametrize(
    ("typed", "status"),
    [
        ("IMPLEMENTED", "implemented"),
        (" partial ", "partial"),
        ("Planned", "planned"),
        ("n/a", "not-applicable"),
        ("N/A", "not-applicable"),
        ("Not  Applicable", "not-applicable"),
        ("not-applicable", "not-applicable"),
        ("done", None),
        ("", None),
    ],
)
def test_statuses_users_type(typed: str, status: str | None) -> None:
    assert control_status(typed) == status


BAD = [
    # (file name, content, error type, location text, message part)
    (
        "c.csv",
        "framework,capability_id,status\nnist_800_53,IA-5,implemented\nnist_800_53,AC-2,maybe\n",
        SchemaError,
        "c.csv:3",
        "unknown status 'maybe'",
    ),
    (
        "c.csv",
        "framework,capability_id,status\niso,A.5.1,implemented\n",
        SchemaError,
        "c.csv:2",
        "unknown framework 'iso'",
    ),
    (
        "c.csv",
        "framework,capability_id,status\naws,,implemented\n",
        SchemaError,
        "c.csv:2",
        "no capability id",
    ),
    ("c.csv", "framework,status\naws,implemented\n", SchemaError, "c.csv:1", "capability_id"),
    ("c.csv", "", SchemaError, "c.csv", "empty"),
    (
        "c.csv",
        'framework,capability_id,status\naws,"aws_rds\n',
        ParseError,
        "c.csv:2",
        "not valid CSV",
    ),
    (
        "c.csv",
        "framework,capability_id,status\naws,aws_rds,implemented\nAWS,AWS_RDS,planned\n",
        SchemaError,
        "c.csv:3",
        "listed twice (first at c.csv:2)",
    ),
    (
        "c.csv",
        "framework,capability_id,status\nnist_800_53,IA-5,implemented\nnist_800_53,IA-05,planned\n",
        SchemaError,
        "c.csv:3",
        "IA-05 is listed twice (first at c.csv:2)",
    ),
    ("c.yaml", "- framework: aws\n  status: [oops\n", ParseError, "c.yaml:3", "not valid YAML"),
    (
        "c.yaml",
        "- {framework: aws, capability_id: aws_rds, status: implemented}\n"
        "- {framework: aws, capability_id: aws_waf, status: sometimes}\n",
        SchemaError,
        "c.yaml#/1/status",
        "unknown status 'sometimes'",
    ),
    (
        "c.yaml",
        "- {framework: aws, capability: aws_rds, status: implemented}\n- just a string\n",
        SchemaError,
        "c.yaml#/1",
        "expected a mapping",
    ),
    ("c.yaml", "aws:\n  aws_rds: 1\n", SchemaError, "c.yaml#/aws/aws_rds", "unknown status '1'"),
    ("c.yaml", "gartner:\n  x: implemented\n", SchemaError, "c.yaml#/gartner", "framework"),
    ("c.yaml", "aws: [aws_rds]\n", SchemaError, "c.yaml#/aws", "capability id to status"),
    ("c.yaml", "just text\n", SchemaError, "c.yaml", "expected a list"),
    ("c.txt", "framework,capability_id,status\n", SourceError, "c.txt", "format"),
]


@pytest.mark.parametrize(("name", "text", "error", "where", "message"), BAD)
def test_bad_inputs_are_refused_naming_the_place(
    tmp_path: Path, name: str, text: str, error: type[Exception], where: str, message: str
) -> None:
    path = _write(tmp_path, name, text)
    with pytest.raises(error) as info:
        load_controls(path)
    assert message in str(info.value)
    assert str(info.value).startswith(str(tmp_path / where))


def test_a_missing_file_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="file not found"):
        load_controls(tmp_path / "absent.csv")
