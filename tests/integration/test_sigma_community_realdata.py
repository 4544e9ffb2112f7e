"""The whole SigmaHQ snapshot in ../shared/data/sigma as community rules: every rule file
found and loaded (checked against an independent count), attributed on the technique page,
and run by `hunt --community` over the real EVTX samples SigmaHQ ships for its rules."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from functools import cache
from pathlib import Path

import pytest
import yaml
from tests.conftest import SHARED_DATA, require_shared_data

SIGMA = SHARED_DATA / "sigma"
EVTX = SHARED_DATA / "evtx"
BLOB = "https://github.com/SigmaHQ/sigma/blob/master/"


@cache
def _independent_count() -> tuple[int, dict[str, dict]]:
    """Rule files, and the usable rules by id with their file, read with plain PyYAML."""
    files = sorted(p for p in SIGMA.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())
    rules: dict[str, dict] = {}
    for path in files:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(document, dict) and "detection" in document and document.get("id"):
            rules[str(document["id"])] = {**document, "_path": path.relative_to(SIGMA).as_posix()}
    return len(files), rules


def _logsource(rule: dict) -> str:
    source = rule.get("logsource") or {}
    parts = (source.get("product"), source.get("category") or source.get("service"))
    return "/".join(p for p in parts if p) or "(none)"


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory, loaded_store_path: Path) -> Path:
    """A store with ATT&CK, the mappings and every SigmaHQ rule, built once."""
    from defensemap.sources.sigma_rules import scan_rules
    from defensemap.store.db import open_store
    from defensemap.store.sigma import replace_rules

    home = tmp_path_factory.mktemp("sigma-home")
    shutil.copy(loaded_store_path, home / "defensemap.sqlite")
    store = open_store(home / "defensemap.sqlite", write=True)
    replace_rules(store, scan_rules([SIGMA]))
    store.close()
    return home


@pytest.fixture
def sigma_home(imported: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DEFENSEMAP_HOME", str(imported))
    return imported


def test_import_loads_every_rule_file(cli, loaded_home: Path) -> None:
    require_shared_data()
    found, rules = _independent_count()
    result = cli("import", "sigma", str(SIGMA), "--json")
    assert result.exit_code == 0, result.stderr
    data = result.json()["data"]
    assert found == 3777  # the snapshot's rule count (../shared/data/README.md)
    assert (data["found"], data["loaded"]) == (found, len(rules))
    assert len(data["skipped"]) == found - len(rules)
    assert data["by_logsource"] == dict(Counter(_logsource(r) for r in rules.values()))
    listed = cli("detections", "--source", "community", "--json").json()["data"]["detections"]
    assert {d["id"] for d in listed} == set(rules)
    by_id = {d["id"]: d for d in listed}
    for rule_id, rule in rules.items():
        attribution = by_id[rule_id]["attribution"]
        assert attribution["source_url"] == BLOB + rule["_path"]
        assert attribution["author"] == (rule.get("author") or "").strip()


def test_technique_page_lists_the_rules_tagged_with_it(cli, sigma_home: Path) -> None:
    _, rules = _independent_count()
    tagged = {i for i, r in rules.items() if "attack.t1021.007" in (r.get("tags") or [])}
    assert tagged
    data = cli("technique", "T1021.007", "--json").json()["data"]
    assert {r["id"] for r in data["community_rules"]} == tagged
    for item in data["community_rules"]:
        assert item["attribution"]["author"] == rules[item["id"]]["author"].strip()
        assert item["attribution"]["licence"] == "DRL-1.1"
    human = cli("technique", "T1021.007").stdout
    section = " ".join(human.split("How to detect it", 1)[1].split())
    assert f"Community rules — SigmaHQ ({len(tagged)})" in section
    assert "Detection Rule License 1.1" in section


def test_a_parent_technique_page_caps_the_table_not_the_json(cli, sigma_home: Path) -> None:
    _, rules = _independent_count()
    tagged = {
        i
        for i, r in rules.items()
        if any(str(t).lower().startswith("attack.t1059") for t in r.get("tags") or [])
    }
    data = cli("technique", "T1059", "--json").json()["data"]
    assert {r["id"] for r in data["community_rules"]} == tagged
    levels = [r["severity"] for r in data["community_rules"]]
    order = ["critical", "high", "medium", "low", "informational"]
    assert levels == sorted(levels, key=order.index)  # most severe first
    human = cli("technique", "T1059").stdout
    assert f"… {len(tagged) - 25} more: `defensemap detections --technique T1059" in human


def test_community_rule_page_carries_the_published_yaml(cli, sigma_home: Path) -> None:
    _, rules = _independent_count()
    rule_id, rule = next(iter(rules.items()))
    data = cli("detection", rule_id, "--json").json()["data"]
    assert data["yaml"] == (SIGMA / rule["_path"]).read_text(encoding="utf-8")
    assert data["attribution"]["source_url"] == BLOB + rule["_path"]
    found = cli("search", rule_id, "--json").json()["data"]["results"]
    assert found[0]["id"] == rule_id and found[0]["kind"] == "sigma-rule"


def test_hunt_community_fires_each_evtx_samples_rule(cli, sigma_home: Path) -> None:
    samples = sorted(p for p in EVTX.iterdir() if (p / "info.yml").exists())
    assert len(samples) == 4
    logs = [str(next(s.glob("*.evtx"))) for s in samples]
    args = [a for log in logs for a in ("--logs", log)]
    result = cli("hunt", "--community", *args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    alerts = [json.loads(line) for line in result.stdout.splitlines()]
    for sample, log in zip(samples, logs, strict=True):
        info = yaml.safe_load((sample / "info.yml").read_text(encoding="utf-8"))
        rule_id = info["rule_metadata"][0]["id"]
        count = info["regression_tests_info"][0]["match_count"]
        source = str(Path(log).resolve())  # provenance names the resolved file
        hits = [a for a in alerts if a["rule_id"] == rule_id and a["source"].startswith(source)]
        assert len(hits) == count, (sample.name, rule_id)
    assert "Detection Rule License 1.1" in result.stderr
