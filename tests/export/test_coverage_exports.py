"""Coverage outputs for a small hand-built report: three Navigator layers, CSV and the HTML
report, each against a golden file in ``tests/golden/coverage/`` (rewrite them with
``DEFENSEMAP_UPDATE_GOLDEN=1``, review the diff). Layers pass the project's layer check and
the independent layer-format schema; the CSV is parsed back; the HTML is parsed to prove it
is self-contained, escapes hostile text and draws one linked cell per matrix technique."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from tests.conftest import GOLDEN
from tests.navigator_layer import schema_errors

from defensemap.export.coverage import (
    CSV_FIELDS,
    Matrix,
    MatrixTactic,
    MatrixTechnique,
    attack_matrix,
    coverage_csv,
    coverage_html,
    coverage_layers,
)
from defensemap.export.navigator import validate_layer
from defensemap.model.coverage import (
    AtomicCheck,
    ControlHit,
    ControlInPlace,
    CoverageInputs,
    CoverageReport,
    DeployedRule,
    DetectionHit,
    NextStep,
    Procedure,
    TechniqueCoverage,
    ThreatActor,
    ThreatProfile,
)
from defensemap.store.db import open_store

GOLDEN_COVERAGE = GOLDEN / "coverage"
APT29, APT28 = ThreatActor("G0016", "APT29", "group"), ThreatActor("G0007", "APT28", "group")
PROCEDURES = (
    Procedure("G0016", "T1078.004", "APT29 used compromised cloud accounts."),
    Procedure("G0007", "T1078.004", "APT28 signed in with stolen cloud credentials."),
    Procedure("G0016", "T1021.007", "APT29 moved through cloud admin portals."),
    Procedure("G0007", "T1110.003", "APT28 sprayed passwords at mail portals."),
    Procedure("G0016", "T1059.001", "APT29 ran PowerShell loaders."),
    Procedure("G0007", "T1059.001", ""),
)
MFA = ControlHit(
    "nist_800_53", "IA-02", "Identification and Authentication", "implemented", "protects",
    None, None, 15.0,
)  # fmt: skip
ENTRA = ControlHit(
    "azure", "entra_id_protection", "Entra ID Protection", "implemented",
    "technique_scores", "detect", "partial", 10.0,
)  # fmt: skip
LIB_RULE = DetectionHit(
    "dm-t1021-007-cli", "Cloud CLI sign-in from a new host", "library", True, True, True, (), 30.0
)
SENTINEL_RULE = DetectionHit(
    "sent-42", "PowerShell encoded command", "sentinel", True, None, False,
    ("DeviceProcessEvents",), 0.0,
)  # fmt: skip


def technique(tid: str, name: str, tactics: tuple[str, ...], **fields: object) -> TechniqueCoverage:
    base: dict[str, object] = {
        "threat_weight": len({p.actor_id for p in PROCEDURES if p.technique == tid}),
        "procedures": tuple(p for p in PROCEDURES if p.technique == tid),
        "controls": (),
        "detections": (),
        "tables_available": (),
        "tables_missing": (),
        "protect": 0.0,
        "detect": 0.0,
        "score": 0.0,
        "reason": "Score 0: nothing in place protects or detects it.",
    }
    base.update(fields)
    return TechniqueCoverage(tid, name, tactics, **base)  # type: ignore[arg-type]


def tiny_report() -> CoverageReport:
    """2 actors, 4 profile techniques, 2 controls, 2 detections; one extra technique outside
    the profile; numbers set by hand (the scoring itself is tested with the coverage core)."""
    cloud = technique(
        "T1078.004", "Cloud Accounts", ("initial-access", "persistence"),
        controls=(MFA, ENTRA), protect=15.0, detect=10.0, score=25.0,
        reason="Score 25: protect 15 (IA-02 protects); detect 10 (Entra ID Protection).",
        next_steps=(NextStep("enable-detection", "dm-t1078-004-signin", "library rule", 30.0),),
        validation=(AtomicCheck("aaaa-1111", "Azure sign-in with stolen token", "T1078.004"),),
    )  # fmt: skip
    cloud_services = technique(
        "T1021.007", "Cloud Services", ("lateral-movement",),
        detections=(LIB_RULE,), tables_available=("SigninLogs",), detect=30.0, score=30.0,
        reason="Score 30: detect 30 (tested library rule).",
        next_steps=(NextStep("implement-control", "nist_800_53 AC-17", "protects", 15.0),),
        validation=(AtomicCheck("bbbb-2222", "az login from a new host", "T1021.007"),),
    )  # fmt: skip
    powershell = technique(
        "T1059.001", "PowerShell", ("execution",),
        detections=(SENTINEL_RULE,), tables_missing=("DeviceProcessEvents",),
        reason="Score 0: the Sentinel rule needs DeviceProcessEvents.",
        next_steps=(NextStep("collect-table", "DeviceProcessEvents", "enables sent-42", 20.0),),
    )  # fmt: skip
    spraying = technique(
        "T1110.003", "Password Spraying", ("credential-access",),
        next_steps=(NextStep("write-detection", "T1110.003", "no rule exists", 30.0),),
    )  # fmt: skip
    outside = technique("T1566.002", "Spearphishing Link", ("initial-access",), threat_weight=0)
    inputs = CoverageInputs(
        attack_version="18.1",
        profile=ThreatProfile((APT29, APT28), PROCEDURES),
        controls=(
            ControlInPlace("nist_800_53", "IA-02", "implemented"),
            ControlInPlace("azure", "entra_id_protection", "implemented"),
        ),
        rules=(
            DeployedRule("dm-t1021-007-cli", "Cloud CLI sign-in", "library", ("T1021.007",)),
            DeployedRule("sent-42", "PowerShell encoded", "sentinel", ("T1059.001",)),
        ),
        tables=frozenset({"SigninLogs"}),
    )
    return CoverageReport(
        inputs,
        (cloud, cloud_services, powershell, spraying, outside),
        gaps=(powershell, spraying, cloud, cloud_services),
        notes=("no community rules were included",),
    )


def tiny_matrix() -> Matrix:
    def tech(tid: str, name: str, *subs: tuple[str, str]) -> MatrixTechnique:
        return MatrixTechnique(tid, name, tuple(MatrixTechnique(s, n) for s, n in subs))

    valid = tech(
        "T1078",
        "Valid Accounts",
        ("T1078.001", "Default Accounts"),
        ("T1078.004", "Cloud Accounts"),
    )
    return Matrix(
        "18.1",
        "enterprise-attack",
        (
            MatrixTactic("TA0001", "initial-access", "Initial Access", (
                tech("T1190", "Exploit Public-Facing Application"),
                tech("T1566", "Phishing", ("T1566.002", "Spearphishing Link")),
                valid,
            )),
            MatrixTactic("TA0002", "execution", "Execution", (
                tech("T1059", "Command and Scripting Interpreter", ("T1059.001", "PowerShell")),
            )),
            MatrixTactic("TA0003", "persistence", "Persistence", (valid,)),
            MatrixTactic("TA0006", "credential-access", "Credential Access", (
                tech("T1110", "Brute Force", ("T1110.003", "Password Spraying")),
            )),
            MatrixTactic("TA0008", "lateral-movement", "Lateral Movement", (
                tech("T1021", "Remote Services", ("T1021.007", "Cloud Services")),
            )),
        ),
    )  # fmt: skip


def assert_golden(name: str, actual: bytes) -> None:
    golden = GOLDEN_COVERAGE / name
    if not golden.exists() or os.environ.get("DEFENSEMAP_UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_bytes(actual)
        pytest.fail(f"golden file {golden} was (re)written; review the diff and commit it")
    expected = golden.read_bytes()
    if actual != expected:  # show a readable diff
        assert actual.decode() == expected.decode()


# --- Navigator layers ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def layers() -> dict[str, bytes]:
    result = coverage_layers(tiny_report(), tiny_matrix())
    assert coverage_layers(tiny_report(), tiny_matrix()) == result, "layers must be byte-stable"
    return result


@pytest.mark.parametrize("suffix", ["coverage", "threat", "gaps"])
def test_layer_matches_golden_and_the_layer_format(layers: dict[str, bytes], suffix: str) -> None:
    assert set(layers) == {"coverage", "threat", "gaps"}
    assert_golden(f"tiny-{suffix}.json", layers[suffix])
    document = json.loads(layers[suffix])
    assert validate_layer(document) == []
    assert schema_errors(document) == []
    assert document["versions"] == {"attack": "18", "navigator": "5.1.0", "layer": "4.5"}
    assert document["domain"] == "enterprise-attack"


def _entries(layers: dict[str, bytes], suffix: str) -> dict[str, dict[str, object]]:
    return {t["techniqueID"]: t for t in json.loads(layers[suffix])["techniques"]}


def _metadata(entry: dict[str, object]) -> list[tuple[str, str]]:
    return [(m["name"], m["value"]) for m in entry["metadata"]]  # type: ignore[attr-defined]


def test_coverage_layer_scores_profile_techniques_on_a_red_to_green_scale(layers) -> None:
    document = json.loads(layers["coverage"])
    assert document["gradient"] == {
        "colors": ["#ff6666", "#ffe766", "#8ec843"],
        "minValue": 0,
        "maxValue": 100,
    }
    entries = _entries(layers, "coverage")
    assert sorted(entries) == ["T1021.007", "T1059.001", "T1078.004", "T1110.003"]  # not T1566
    cloud = entries["T1078.004"]
    assert cloud["score"] == 25
    assert cloud["comment"] == tiny_report().techniques[0].reason
    assert _metadata(cloud) == [
        ("protect", "15"),
        ("detect", "10"),
        ("control", "nist_800_53 IA-02: protects, implemented, +15"),
        (
            "control",
            "azure entra_id_protection: technique_scores (detect partial), implemented, +10",
        ),
    ]  # fmt: skip
    assert ("missing table", "DeviceProcessEvents") in _metadata(entries["T1059.001"])
    assert (
        "detection",
        "Cloud CLI sign-in from a new host [library dm-t1021-007-cli]: enabled, tested, "
        "deployable, +30",
    ) in _metadata(entries["T1021.007"])


def test_threat_layer_weights_and_procedures(layers) -> None:
    entries = _entries(layers, "threat")
    assert {t: e["score"] for t, e in entries.items()} == {
        "T1021.007": 1,
        "T1059.001": 2,
        "T1078.004": 2,
        "T1110.003": 1,
    }
    assert entries["T1059.001"]["comment"] == (
        "APT29 (G0016): APT29 ran PowerShell loaders.\nAPT28 (G0007)"
    )
    assert json.loads(layers["threat"])["gradient"]["maxValue"] == 2


def test_gaps_layer_ranks_with_next_steps(layers) -> None:
    entries = _entries(layers, "gaps")
    ranks = {t: dict(_metadata(e))["rank"] for t, e in entries.items()}
    assert ranks == {"T1059.001": "1", "T1110.003": "2", "T1078.004": "3", "T1021.007": "4"}
    assert {t: e["score"] for t, e in entries.items()} == {
        "T1059.001": 4,
        "T1110.003": 3,
        "T1078.004": 2,
        "T1021.007": 1,
    }
    assert entries["T1059.001"]["comment"] == (
        "#1: collect-table DeviceProcessEvents: enables sent-42 (+20)"
    )


# --- CSV ----------------------------------------------------------------------------------


def test_csv_golden_and_parsed_back() -> None:
    content = coverage_csv(tiny_report())
    assert content == coverage_csv(tiny_report())
    assert_golden("tiny.csv", content)
    rows = list(csv.DictReader(io.StringIO(content.decode())))
    assert tuple(rows[0]) == CSV_FIELDS
    assert [r["technique"] for r in rows] == [
        "T1021.007",
        "T1059.001",
        "T1078.004",
        "T1110.003",
        "T1566.002",
    ]
    cloud = rows[2]
    assert (cloud["tactics"], cloud["threat_weight"], cloud["score"]) == (
        "initial-access; persistence",
        "2",
        "25",
    )
    assert (cloud["protect"], cloud["detect"]) == ("15", "10")
    assert cloud["controls"].count("; ") == 1 and cloud["controls"].startswith("nist_800_53 IA-02")
    assert rows[1]["missing_tables"] == "DeviceProcessEvents"
    assert rows[1]["next_step"] == "collect-table DeviceProcessEvents: enables sent-42 (+20)"
    assert rows[0]["reason"] == "Score 30: detect 30 (tested library rule)."


# --- HTML ---------------------------------------------------------------------------------


class Page(HTMLParser):
    """Every start tag with its attributes, and the text."""

    def __init__(self, content: bytes) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(content.decode())
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def cells(self) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == "a" and "cell" in (a.get("class") or "").split()]

    def ids(self) -> set[str]:
        return {a["id"] for _, a in self.tags if a.get("id")}  # type: ignore[misc]


def assert_self_contained(page: Page) -> None:
    assert not [t for t, _ in page.tags if t in ("script", "iframe", "object", "embed", "link")]
    for tag, attrs in page.tags:
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            if name in ("src", "href", "action", "srcset"):
                assert value and (
                    value.startswith("#") or value.startswith("https://attack.mitre.org/")
                ), (tag, name, value)


def test_html_golden_and_self_contained() -> None:
    content = coverage_html(tiny_report(), tiny_matrix())
    assert content == coverage_html(tiny_report(), tiny_matrix()), "HTML must be byte-stable"
    assert_golden("tiny.html", content)
    page = Page(content)
    assert_self_contained(page)
    assert b"prefers-color-scheme:dark" in content


def test_heat_map_draws_every_matrix_cell_and_links_to_sections() -> None:
    matrix = tiny_matrix()
    page = Page(coverage_html(tiny_report(), matrix))
    cells = page.cells()
    assert len(cells) == len(matrix.cells()) == 15
    by_title = {c["title"].split(":")[0]: c for c in cells}  # type: ignore[union-attr]
    cloud = by_title["T1078.004 Cloud Accounts"]
    assert cloud["href"] == "#T1078.004" and "T1078.004" in page.ids()
    assert cloud["class"] == "cell s2 sub"  # score 25 -> the 20-29 colour step
    assert "score 25/100 (protect 15, detect 10), threat weight 2" in (cloud["title"] or "")
    # outside the profile: grey; with a section in the report it links there, else to ATT&CK
    assert by_title["T1566.002 Spearphishing Link"]["class"] == "cell out sub"
    assert by_title["T1566.002 Spearphishing Link"]["href"] == "#T1566.002"
    assert by_title["T1190 Exploit Public-Facing Application"]["href"] == (
        "https://attack.mitre.org/techniques/T1190/"
    )
    for cell in cells:
        href = cell["href"] or ""
        assert not href.startswith("#") or href[1:] in page.ids(), href


def test_html_explains_each_technique() -> None:
    page = Page(coverage_html(tiny_report(), tiny_matrix()))
    text = " ".join(page.text)
    for expected in (
        "APT29 (G0016): APT29 used compromised cloud accounts.",
        "nist_800_53 IA-02",
        "detect partial",
        "✓ tested",
        "✗ not deployable",
        "missing: DeviceProcessEvents",
        "Azure sign-in with stolen token",
        "aaaa-1111",
        "collect-table",
        "no community rules were included",
    ):
        assert expected in text, expected


def test_html_gap_list_in_rank_order_with_next_steps() -> None:
    content = coverage_html(tiny_report(), tiny_matrix()).decode()
    gaps = content.split('<ol class="gaps">', 1)[1].split("</ol>", 1)[0]
    assert re.findall(r'<li><a href="#([^"]+)"', gaps) == [
        "T1059.001",
        "T1110.003",
        "T1078.004",
        "T1021.007",
    ]
    assert "<b>collect-table</b> DeviceProcessEvents: enables sent-42 (+20)" in gaps


def hostile_report() -> CoverageReport:
    report = tiny_report()
    evil = '<script>alert(1)</script>"onerror=alert(2) x="'
    first = dataclasses.replace(
        report.techniques[2],
        name=evil,
        reason=evil,
        procedures=(Procedure("G0016", "T1059.001", "<img src=x onerror=alert(3)>"),),
        detections=(
            dataclasses.replace(
                SENTINEL_RULE, name='<script src="https://evil.example/x.js"></script>'
            ),
        ),
    )
    techniques = (*report.techniques[:2], first, *report.techniques[3:])
    return dataclasses.replace(
        report, techniques=techniques, gaps=(first,), notes=("<b onclick=x>note</b>",)
    )


def test_hostile_text_is_escaped() -> None:
    content = coverage_html(hostile_report(), tiny_matrix())
    page = Page(content)
    assert_self_contained(page)
    assert b"<script" not in content and b"<img" not in content and b"<b onclick" not in content
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;&quot;onerror=alert(2)" in content
    text = " ".join(page.text)
    assert '<script>alert(1)</script>"onerror=alert(2) x="' in text  # shown, as text
    # the layers and the CSV carry the same text as JSON strings / CSV cells, unchanged
    coverage = json.loads(coverage_layers(hostile_report(), tiny_matrix())["coverage"])
    assert validate_layer(coverage) == [] and schema_errors(coverage) == []
    rows = list(csv.DictReader(io.StringIO(coverage_csv(hostile_report()).decode())))
    assert rows[1]["name"] == '<script>alert(1)</script>"onerror=alert(2) x="'


# --- the real matrix ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def enterprise_matrix(loaded_store_path: Path) -> Iterator[Matrix]:
    store = open_store(loaded_store_path)
    try:
        yield attack_matrix(store)
    finally:
        store.close()


@pytest.mark.realdata
def test_enterprise_matrix_in_matrix_order(enterprise_matrix: Matrix) -> None:
    matrix = enterprise_matrix
    assert matrix.attack_version == "18.1"
    assert [t.shortname for t in matrix.tactics] == [
        "reconnaissance",
        "resource-development",
        "initial-access",
        "execution",
        "persistence",
        "privilege-escalation",
        "defense-evasion",
        "credential-access",
        "discovery",
        "lateral-movement",
        "collection",
        "command-and-control",
        "exfiltration",
        "impact",
    ]
    lateral = next(t for t in matrix.tactics if t.shortname == "lateral-movement")
    remote = next(t for t in lateral.techniques if t.id == "T1021")
    assert remote.name == "Remote Services"
    assert "T1021.007" in [s.id for s in remote.subtechniques]
    ids = {cell.id for _, cell in matrix.cells()}
    assert "T1086" not in ids  # revoked techniques are not drawn
    assert len(matrix.cells()) > 800


@pytest.mark.realdata
def test_heat_map_over_the_enterprise_matrix(enterprise_matrix: Matrix) -> None:
    content = coverage_html(tiny_report(), enterprise_matrix)
    page = Page(content)
    assert_self_contained(page)
    cells = page.cells()
    assert len(cells) == len(enterprise_matrix.cells())
    profile = tiny_report().inputs.profile.techniques()
    linked = {c["href"] for c in cells if (c["href"] or "").startswith("#")}
    assert linked == {f"#{t}" for t in profile} | {"#T1566.002"}
    assert all(link[1:] in page.ids() for link in linked)
    coloured = [c for c in cells if "out" not in (c["class"] or "").split()]
    # T1078.004 sits under initial-access, persistence, privilege-escalation, defense-evasion
    assert sum(1 for c in coloured if c["href"] == "#T1078.004") == 4
