"""Library detections in the formats SIEMs and tools import: Sentinel analytic rule YAML and
ARM, Defender XDR custom detection JSON, Kibana NDJSON, Splunk savedsearches.conf, plain Sigma
and an ATT&CK Navigator layer.

Outputs are deterministic (detections in library order, keys in a fixed order, no export
timestamps) so golden files pin them. A detection a format cannot carry (no KQL, a refused
conversion, Sentinel-only tables for Defender) is skipped with its reason, never written as
a broken rule.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import yaml

from defensemap.catalog import load_catalog
from defensemap.errors import ExportError, SchemaError, SourceLocation
from defensemap.export.navigator import LayerTechnique, layer
from defensemap.kb.vocabulary import AttackVocabulary, TacticInfo, TechniqueInfo
from defensemap.library.convert import Conversion, convert_detection
from defensemap.library.sigma import effective_sigma
from defensemap.model.detection import TIMESPAN_PATTERN, Detection
from defensemap.sources.detections import LoadedDetection
from defensemap.store.db import LOAD_HINT

FORMATS: tuple[str, ...] = (
    "sentinel-yaml",
    "sentinel-arm",
    "defender-custom",
    "elastic-ndjson",
    "splunk",
    "sigma",
    "navigator",
)
# Formats that name tactics or technique names, which only the ATT&CK knowledge base knows.
NEEDS_ATTACK: frozenset[str] = frozenset(
    {"sentinel-yaml", "sentinel-arm", "defender-custom", "elastic-ndjson", "navigator"}
)

# Microsoft Sentinel data connector ids by the table they fill (facts from the connectors).
TABLE_CONNECTORS: dict[str, str] = {
    "SigninLogs": "AzureActiveDirectory",
    "AuditLogs": "AzureActiveDirectory",
    "AADNonInteractiveUserSignInLogs": "AzureActiveDirectory",
    "AADServicePrincipalSignInLogs": "AzureActiveDirectory",
    "AADManagedIdentitySignInLogs": "AzureActiveDirectory",
    "AADRiskyUsers": "AzureActiveDirectory",
    "AADUserRiskEvents": "AzureActiveDirectory",
    "SecurityEvent": "SecurityEvents",
    "WindowsEvent": "WindowsForwardedEvents",
    "OfficeActivity": "Office365",
    "AzureActivity": "AzureActivity",
    "AWSCloudTrail": "AWS",
    "Syslog": "Syslog",
    "DnsEvents": "DNS",
}
# Tables of Microsoft Defender XDR (connector MicrosoftThreatProtection) by name prefix.
_XDR_PREFIXES = ("Device", "Email", "Identity", "CloudAppEvents", "UrlClickEvents", "Alert")
_XDR_CONNECTOR = "MicrosoftThreatProtection"

_SENTINEL_SEVERITY = {
    "informational": "Informational",
    "low": "Low",
    "medium": "Medium",
    "high": "High",
    "critical": "High",
}
_ELASTIC = {  # severity -> (Kibana severity, risk score)
    "informational": ("low", 21),
    "low": ("low", 21),
    "medium": ("medium", 47),
    "high": ("high", 73),
    "critical": ("critical", 99),
}
_SPLUNK_SEVERITY = {"informational": 1, "low": 2, "medium": 3, "high": 4, "critical": 5}
_DEFENDER_PERIODS = ((1, "1H"), (3, "3H"), (12, "12H"))
_DEVICE_IDS = frozenset(
    {"deviceId", "deviceName", "remoteDeviceName", "targetDeviceName", "destinationDeviceName"}
)
_USER_IDS = frozenset(
    {
        "accountObjectId",
        "accountSid",
        "accountUpn",
        "accountName",
        "accountDomain",
        "accountId",
        "initiatingAccountSid",
        "initiatingAccountName",
        "initiatingAccountDomain",
        "initiatingProcessAccountUpn",
        "processAccountObjectId",
        "targetAccountUpn",
        "servicePrincipalId",
        "servicePrincipalName",
    }
)
_ARM_API_VERSION = "2023-12-01-preview"
# uuid5 namespace of the Sentinel alert rule names derived from detection ids.
_RULE_NAMESPACE = uuid.UUID("6f1c2a8e-3d4b-5c6d-8e7f-9a0b1c2d3e4f")
_TIMESPAN = re.compile(TIMESPAN_PATTERN)


# -- ATT&CK names --------------------------------------------------------------------------------


def _sentinel_tactic(tactic: TacticInfo) -> str:
    """Sentinel's spelling: ``lateral-movement`` -> ``LateralMovement``."""
    return "".join(part.capitalize() for part in tactic.shortname.split("-"))


def _technique(attack: AttackVocabulary, technique_id: str) -> TechniqueInfo:
    info = attack.technique(technique_id)
    if info is None:
        raise ExportError(
            f"technique {technique_id} is not in ATT&CK {attack.release}",
            hint="run `defensemap content validate` to find the detection naming it",
        )
    return info


# -- result -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Skipped:
    detection_id: str
    title: str
    reason: str


@dataclass
class DetectionExport:
    """Files to write (relative name -> bytes), the detections written and those skipped."""

    format: str
    files: dict[str, bytes] = field(default_factory=dict)
    exported: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def skip(self, detection: Detection, reason: str) -> None:
        self.skipped.append(Skipped(str(detection.id), detection.title, reason))


# -- shared helpers -----------------------------------------------------------------------------


def parse_timespan(text: str, where: LoadedDetection) -> timedelta:
    """A schedule timespan (``5m``, ``1h``, ``14d``)."""
    match = _TIMESPAN.match(text)
    if not match:
        raise SchemaError(
            f"schedule timespan {text!r} is not like 5m, 1h or 14d",
            location=SourceLocation(path=str(where.path), pointer="/schedule"),
        )
    amount, unit = int(match[1]), match[2]
    return timedelta(**{{"m": "minutes", "h": "hours", "d": "days"}[unit]: amount})


def iso_duration(span: timedelta) -> str:
    """``PT1H``, ``PT5M``, ``P14D`` (ARM and Kibana want ISO-8601 durations)."""
    minutes = int(span.total_seconds()) // 60
    days, rest = divmod(minutes, 1440)
    if days and not rest:
        return f"P{days}D"
    hours, mins = divmod(minutes, 60)
    text = "PT" + (f"{hours}H" if hours else "") + (f"{mins}M" if mins else "")
    return f"P{days}D{text[1:]}" if days else text


def _split_techniques(techniques: Sequence[str]) -> tuple[list[str], list[str]]:
    """Parent technique ids (every technique's parent) and sub-technique ids, sorted."""
    parents = sorted({t.split(".", 1)[0] for t in techniques})
    subs = sorted({t for t in techniques if "." in t})
    return parents, subs


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _slug(loaded: LoadedDetection) -> str:
    return loaded.path.stem


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings so queries read as in the source."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _yaml(document: Any) -> bytes:
    text = yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    return text.encode("utf-8")


def _json(document: Any) -> bytes:
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _kql(detection: Detection) -> str | None:
    return detection.queries.kql.rstrip() + "\n" if detection.queries.kql else None


# -- Sentinel -----------------------------------------------------------------------------------


def data_connectors(tables: Sequence[str]) -> list[dict[str, Any]]:
    """``requiredDataConnectors``: each known connector with the tables it fills."""
    by_connector: dict[str, set[str]] = {}
    for table in tables:
        connector = TABLE_CONNECTORS.get(table) or (
            _XDR_CONNECTOR if table.startswith(_XDR_PREFIXES) else None
        )
        if connector:
            by_connector.setdefault(connector, set()).add(table)
    return [
        {"connectorId": connector, "dataTypes": sorted(tables)}
        for connector, tables in sorted(by_connector.items())
    ]


def _entity_mappings(detection: Detection) -> list[dict[str, Any]]:
    return [
        {
            "entityType": entity.entity,
            "fieldMappings": [
                {"identifier": identifier, "columnName": column}
                for identifier, column in entity.fields.items()
            ],
        }
        for entity in detection.entities
    ]


def _sentinel_rule(loaded: LoadedDetection, attack: AttackVocabulary) -> dict[str, Any]:
    detection = loaded.detection
    parents, subs = _split_techniques(detection.techniques)
    schedule = detection.schedule
    parse_timespan(schedule.frequency, loaded)
    parse_timespan(schedule.period, loaded)
    rule: dict[str, Any] = {
        "id": str(detection.id),
        "name": detection.title,
        "description": detection.description.strip() or detection.title,
        "severity": _SENTINEL_SEVERITY[detection.severity],
        "requiredDataConnectors": data_connectors(detection.required_tables),
        "queryFrequency": schedule.frequency,
        "queryPeriod": schedule.period,
        "triggerOperator": "gt",
        "triggerThreshold": schedule.threshold,
        "tactics": [_sentinel_tactic(t) for t in attack.tactics(detection.techniques)],
        "relevantTechniques": parents,
    }
    if subs:
        rule["subTechniques"] = subs
    rule["query"] = _kql(detection)
    if detection.entities:
        rule["entityMappings"] = _entity_mappings(detection)
    rule["version"] = f"{detection.version}.0.0"
    rule["kind"] = "Scheduled"
    return rule


def _sentinel_yaml(
    detections: Sequence[LoadedDetection], attack: AttackVocabulary | None, out: DetectionExport
) -> None:
    assert attack is not None
    for loaded in detections:
        if not loaded.detection.queries.kql:
            out.skip(loaded.detection, "no KQL query (queries.kql)")
            continue
        out.files[f"{_slug(loaded)}.yaml"] = _yaml(_sentinel_rule(loaded, attack))
        out.exported.append(str(loaded.detection.id))


def _arm_resource(loaded: LoadedDetection, attack: AttackVocabulary) -> dict[str, Any]:
    detection = loaded.detection
    rule = _sentinel_rule(loaded, attack)
    name = str(uuid.uuid5(_RULE_NAMESPACE, str(detection.id)))
    properties: dict[str, Any] = {
        "displayName": rule["name"],
        "description": rule["description"],
        "severity": rule["severity"],
        "enabled": True,
        "query": rule["query"],
        "queryFrequency": iso_duration(parse_timespan(detection.schedule.frequency, loaded)),
        "queryPeriod": iso_duration(parse_timespan(detection.schedule.period, loaded)),
        "triggerOperator": "GreaterThan",
        "triggerThreshold": detection.schedule.threshold,
        "suppressionDuration": "PT1H",
        "suppressionEnabled": False,
        "tactics": rule["tactics"],
        "techniques": rule["relevantTechniques"],
        "subTechniques": rule.get("subTechniques", []),
        "entityMappings": rule.get("entityMappings", []),
        "templateVersion": rule["version"],
    }
    return {
        "type": "Microsoft.OperationalInsights/workspaces/providers/alertRules",
        "apiVersion": _ARM_API_VERSION,
        "name": f"[concat(parameters('workspace'), '/Microsoft.SecurityInsights/{name}')]",
        "kind": "Scheduled",
        "properties": properties,
    }


def _sentinel_arm(
    detections: Sequence[LoadedDetection], attack: AttackVocabulary | None, out: DetectionExport
) -> None:
    assert attack is not None
    resources = []
    for loaded in detections:
        if not loaded.detection.queries.kql:
            out.skip(loaded.detection, "no KQL query (queries.kql)")
            continue
        resources.append(_arm_resource(loaded, attack))
        out.exported.append(str(loaded.detection.id))
    template = {
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "parameters": {
            "workspace": {
                "type": "string",
                "metadata": {"description": "Name of the Log Analytics workspace with Sentinel"},
            }
        },
        "resources": resources,
    }
    out.files["sentinel-analytic-rules.json"] = _json(template)


# -- Defender XDR -------------------------------------------------------------------------------


def _defender_query(detection: Detection) -> tuple[str | None, str]:
    """The Defender XDR query, or None and why there is none."""
    if detection.queries.defender_kql:
        return detection.queries.defender_kql.rstrip() + "\n", ""
    if not detection.queries.kql:
        return None, "no KQL query"
    catalog = load_catalog()
    sentinel_only = [
        t
        for t in detection.required_tables
        if (table := catalog.table(t)) is None or table.source not in ("defender-xdr", "both")
    ]
    if sentinel_only or not detection.required_tables:
        tables = ", ".join(sentinel_only) or "none declared"
        return None, f"no queries.defender_kql and the KQL uses non-Defender XDR tables: {tables}"
    return _kql(detection), ""


def _impacted_assets(detection: Detection) -> list[dict[str, str]]:
    assets: list[dict[str, str]] = []
    kinds = {
        "Host": ("impactedDeviceAsset", _DEVICE_IDS),
        "Account": ("impactedUserAsset", _USER_IDS),
    }
    for entity in detection.entities:
        if entity.entity not in kinds:
            continue
        odata, allowed = kinds[entity.entity]
        for column in entity.fields.values():
            identifier = column[:1].lower() + column[1:]
            asset = {"@odata.type": f"#microsoft.graph.security.{odata}", "identifier": identifier}
            if identifier in allowed and asset not in assets:
                assets.append(asset)
    return assets


def _defender_period(loaded: LoadedDetection) -> str:
    hours = parse_timespan(loaded.detection.schedule.frequency, loaded).total_seconds() / 3600
    return next((p for limit, p in _DEFENDER_PERIODS if hours <= limit), "24H")


def _defender_custom(
    detections: Sequence[LoadedDetection], attack: AttackVocabulary | None, out: DetectionExport
) -> None:
    assert attack is not None
    for loaded in detections:
        detection = loaded.detection
        query, why = _defender_query(detection)
        assets = _impacted_assets(detection)
        if query is None:
            out.skip(detection, why)
            continue
        if not assets:
            out.skip(
                detection, "no Host or Account entity column Defender accepts as an impacted asset"
            )
            continue
        tactics = attack.tactics(detection.techniques)
        severity = "high" if detection.severity == "critical" else detection.severity
        rule = {
            "displayName": detection.title,
            "isEnabled": True,
            "queryCondition": {"queryText": query},
            "schedule": {"period": _defender_period(loaded)},
            "detectionAction": {
                "alertTemplate": {
                    "title": detection.title,
                    "description": detection.description.strip() or detection.title,
                    "severity": severity,
                    "category": _sentinel_tactic(tactics[0]) if tactics else "SuspiciousActivity",
                    "recommendedActions": "\n".join(detection.response.containment) or None,
                    "mitreTechniques": sorted(detection.techniques),
                    "impactedAssets": assets,
                },
                "organizationalScope": None,
                "responseActions": [],
            },
        }
        out.files[f"{_slug(loaded)}.json"] = _json(rule)
        out.exported.append(str(detection.id))


# -- converted formats --------------------------------------------------------------------------


def _first_converted(detection: Detection, targets: Sequence[str]) -> tuple[Conversion, list[str]]:
    """The first of ``targets`` that converts (else the last refusal), and the refusal
    reasons of those tried."""
    reasons: list[str] = []
    for target in targets:
        result = convert_detection(detection, target)
        if result.status != "refused":
            break
        reasons.append(f"{target} refused: {'; '.join(result.notes)}")
    return result, reasons


def _threat(detection: Detection, attack: AttackVocabulary) -> list[dict[str, Any]]:
    """Elastic's ``threat`` block: per tactic, its techniques with their sub-techniques."""
    blocks = []
    for tactic in attack.tactics(detection.techniques):
        techniques: dict[str, dict[str, Any]] = {}
        for technique_id in sorted(detection.techniques):
            technique = _technique(attack, technique_id)
            if tactic not in technique.tactics:
                continue
            parent = _technique(attack, technique.parent or technique.id)
            entry = techniques.setdefault(
                parent.id,
                {"id": parent.id, "name": parent.name, "reference": parent.url, "subtechnique": []},
            )
            if technique.id != parent.id:
                entry["subtechnique"].append(
                    {"id": technique.id, "name": technique.name, "reference": technique.url}
                )
        blocks.append(
            {
                "framework": "MITRE ATT&CK",
                "tactic": {"id": tactic.id, "name": tactic.name, "reference": tactic.url},
                "technique": list(techniques.values()),
            }
        )
    return blocks


def _elastic_rule(
    loaded: LoadedDetection, result: Conversion, attack: AttackVocabulary
) -> dict[str, Any]:
    detection = loaded.detection
    severity, risk = _ELASTIC[detection.severity]
    esql = result.target == "elastic-esql"
    period = parse_timespan(detection.schedule.period, loaded)
    frequency = parse_timespan(detection.schedule.frequency, loaded)
    rule: dict[str, Any] = {
        "rule_id": str(detection.id),
        "name": detection.title,
        "description": detection.description.strip() or detection.title,
        "type": "esql" if esql else "query",
        "language": "esql" if esql else "lucene",
        "query": result.query,
    }
    if not esql:
        rule["index"] = ["logs-*", "winlogbeat-*"]
    rule.update(
        {
            "severity": severity,
            "risk_score": risk,
            "enabled": result.status == "exact",
            "interval": f"{int(frequency.total_seconds()) // 60}m",
            "from": f"now-{int(period.total_seconds())}s",
            "max_signals": 100,
            "author": [detection.author] if detection.author else [],
            "references": list(detection.references),
            "false_positives": list(detection.false_positives),
            "tags": ["defensemap", *sorted(detection.techniques)],
            "threat": _threat(detection, attack),
            "note": _conversion_note(result),
            "version": detection.version,
        }
    )
    return rule


def _conversion_note(result: Conversion) -> str:
    lines = [
        f"Converted by defensemap from the detection's Sigma rule with pySigma backend "
        f"`{result.backend}` and pipelines {', '.join(result.pipelines) or 'none'}: "
        f"{result.status}."
    ]
    lines += [f"- {note}" for note in result.notes]
    return "\n".join(lines)


def _elastic_ndjson(
    detections: Sequence[LoadedDetection], attack: AttackVocabulary | None, out: DetectionExport
) -> None:
    assert attack is not None
    lines = []
    for loaded in detections:
        result, reasons = _first_converted(loaded.detection, ("elastic-esql", "elastic-lucene"))
        if result.status == "refused":
            out.skip(loaded.detection, "; ".join(reasons))
            continue
        rule = _elastic_rule(loaded, result, attack)
        lines.append(json.dumps(rule, ensure_ascii=False, sort_keys=False))
        out.exported.append(str(loaded.detection.id))
    out.files["detection-rules.ndjson"] = ("\n".join(lines) + "\n" if lines else "").encode()


def splunk_cron(span: timedelta) -> str:
    """A cron schedule running every ``span`` (rounded to what cron can say)."""
    minutes = max(1, int(span.total_seconds()) // 60)
    if minutes < 60:
        return f"*/{minutes} * * * *" if minutes > 1 else "* * * * *"
    hours = minutes // 60
    if hours < 24:
        return "0 * * * *" if hours == 1 else f"0 */{hours} * * *"
    return "0 0 * * *"


def _splunk_stanza(loaded: LoadedDetection, result: Conversion) -> list[str]:
    detection = loaded.detection
    period = parse_timespan(detection.schedule.period, loaded)
    annotations = json.dumps({"mitre_attack": sorted(detection.techniques)})
    pairs = [
        ("description", _one_line(detection.description) or detection.title),
        ("search", " ".join((result.query or "").splitlines())),  # literals keep their spaces
        ("enableSched", "1" if result.status == "exact" else "0"),
        ("cron_schedule", splunk_cron(parse_timespan(detection.schedule.frequency, loaded))),
        ("dispatch.earliest_time", f"-{int(period.total_seconds()) // 60}m"),
        ("dispatch.latest_time", "now"),
        ("counttype", "number of events"),
        ("relation", "greater than"),
        ("quantity", str(detection.schedule.threshold)),
        ("alert.severity", str(_SPLUNK_SEVERITY[detection.severity])),
        ("alert.track", "1"),
        ("action.correlationsearch.enabled", "1"),
        ("action.correlationsearch.label", detection.title),
        ("action.correlationsearch.annotations", annotations),
        ("defensemap.id", str(detection.id)),
        ("defensemap.conversion", f"{result.status}; pipelines: {', '.join(result.pipelines)}"),
    ]
    title = detection.title.replace("[", "(").replace("]", ")")
    return [f"[{title}]", *(f"{key} = {value}" for key, value in pairs), ""]


def _splunk(
    detections: Sequence[LoadedDetection], attack: AttackVocabulary | None, out: DetectionExport
) -> None:
    lines = ["# Splunk saved searches generated by defensemap from the detections' Sigma rules", ""]
    for loaded in detections:
        result, reasons = _first_converted(loaded.detection, ("splunk",))
        if result.status == "refused":
            out.skip(loaded.detection, "; ".join(reasons))
            continue
        lines += _splunk_stanza(loaded, result)
        out.exported.append(str(loaded.detection.id))
    out.files["savedsearches.conf"] = "\n".join(lines).encode("utf-8")


# -- Sigma and Navigator ------------------------------------------------------------------------


def _sigma(
    detections: Sequence[LoadedDetection], attack: AttackVocabulary | None, out: DetectionExport
) -> None:
    for loaded in detections:
        rule = effective_sigma(loaded.detection)
        if rule is None:
            out.skip(loaded.detection, "no Sigma rule")
            continue
        out.files[f"{_slug(loaded)}.yml"] = _yaml(rule)
        out.exported.append(str(loaded.detection.id))


def _navigator(
    detections: Sequence[LoadedDetection], attack: AttackVocabulary | None, out: DetectionExport
) -> None:
    assert attack is not None
    covering: dict[str, list[Detection]] = {}
    for loaded in detections:
        for technique in loaded.detection.techniques:
            covering.setdefault(technique, []).append(loaded.detection)
        out.exported.append(str(loaded.detection.id))
    techniques = [
        LayerTechnique(
            technique_id,
            score=len(found),
            color="",
            comment="; ".join(d.title for d in found),
            metadata=[("detection", str(d.id)) for d in found],
        )
        for technique_id, found in covering.items()
    ]
    document = layer(
        name="defensemap detections",
        description="Techniques covered by the exported defensemap detections"
        " (score: number of detections)",
        domain="enterprise-attack",
        attack_version=attack.version,
        techniques=techniques,
        gradient=("#ffffff", "#66b1ff"),
        metadata=[("detections", str(len(out.exported)))],
    )
    out.files["detections.layer.json"] = _json(document)


_WRITERS: dict[
    str,
    Callable[[Sequence[LoadedDetection], AttackVocabulary | None, DetectionExport], None],
] = {
    "sentinel-yaml": _sentinel_yaml,
    "sentinel-arm": _sentinel_arm,
    "defender-custom": _defender_custom,
    "elastic-ndjson": _elastic_ndjson,
    "splunk": _splunk,
    "sigma": _sigma,
    "navigator": _navigator,
}


def export_detections(
    detections: Sequence[LoadedDetection], fmt: str, attack: AttackVocabulary | None
) -> DetectionExport:
    """Every detection in ``fmt``; ``attack`` is required for the formats in NEEDS_ATTACK."""
    if fmt in NEEDS_ATTACK and attack is None:
        raise ExportError(f"the {fmt} export needs ATT&CK loaded", hint=LOAD_HINT)
    out = DetectionExport(fmt)
    _WRITERS[fmt](detections, attack, out)
    return out
