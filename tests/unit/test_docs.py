"""Documentation that users rely on stays in step with the code."""

from __future__ import annotations

import re

from tests.conftest import REPO

from defensemap.cli.attack import DESCRIBED


def test_every_query_command_has_its_json_documented() -> None:
    doc = (REPO / "docs" / "json-output.md").read_text(encoding="utf-8")
    for kind in [
        *DESCRIBED,
        "search",
        "attack-versions",
        "attack-diff",
        "status",
        "mappings",
        "capability",
        "frameworks",
        "framework",
        "import-mappings",
        "sync-mappings",
        "logs-ingest",
        "kql-check",
        "test",
        "generate-telemetry",
    ]:
        assert f"`{kind}`" in doc, kind


def test_readme_has_exactly_the_two_quickstart_commands() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    quickstart = readme.split("## Quickstart", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in quickstart.strip().splitlines()]
    assert commands == ["./dev run", "./dev test"]
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^exec \./dev test$", ci, re.MULTILINE)
