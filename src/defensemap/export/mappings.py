"""Export a mapping set in the formats Mappings Explorer publishes.

Every writer takes the same :class:`MappingExport` and returns bytes; output is byte-stable
(sorted, no timestamps but the mapping file's own dates) so exports diff cleanly.
"""

from __future__ import annotations

import csv
import io
import uuid
import zipfile
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from defensemap.errors import ExportError, NotFoundError
from defensemap.export import navigator
from defensemap.kb.mappings import select_sets
from defensemap.model.attack import AttackObject
from defensemap.model.mappings import (
    NON_MAPPABLE,
    MappingRow,
    MappingSet,
    framework_label,
    mapping_type_label,
)
from defensemap.store import attack as attack_store
from defensemap.store import mappings as mapping_store
from defensemap.store.db import Store

CSV_FIELDS = (
    "mapping_framework",
    "mapping_framework_version",
    "attack_version",
    "technology_domain",
    "capability_group",
    "capability_group_name",
    "capability_id",
    "capability_description",
    "mapping_type",
    "mapping_type_label",
    "attack_object_id",
    "attack_object_name",
    "score_category",
    "score_value",
    "related_score",
    "comments",
    "references",
    "status",
    "occurrences",
)
_NAMESPACE = uuid.UUID("6f1c6f52-7d0a-4a53-9d0e-64e7bb6f3a10")
_FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
SCORE_COLORS = {"significant": "#1a9850", "partial": "#91cf60", "minimal": "#d9ef8b"}
TYPE_COLORS = {
    "Protects": "#66b1ff",
    "Related To": "#b39ddb",
    "Exploitation Technique": "#ef6c00",
    "Primary Impact": "#e53935",
    "Secondary Impact": "#ffb74d",
}


@dataclass(frozen=True)
class MappingExport:
    """One mapping set, optionally narrowed to a capability group or a capability."""

    item: MappingSet
    rows: list[MappingRow]
    scope: str
    techniques: dict[str, AttackObject]

    @property
    def title(self) -> str:
        info = self.item.info
        base = f"{framework_label(info.framework)} {info.framework_version}"
        base += f" (ATT&CK {info.attack_version})"
        return f"{base} — {self.scope}" if self.scope else base


def build_export(
    store: Store,
    framework: str,
    *,
    framework_version: str | None = None,
    mapped_on: str | None = None,
    domain: str | None = None,
    capability_group: str | None = None,
    capability: str | None = None,
    with_techniques: bool = False,
) -> MappingExport:
    """Choose the set (newest unless narrowed) and the rows to export; ``with_techniques``
    also looks up the mapped ATT&CK objects (only the STIX export needs them)."""
    item = select_sets(
        store,
        framework=framework,
        framework_version=framework_version,
        mapped_on=mapped_on,
        domain=domain,
    )[0]
    rows = [r for _, r in mapping_store.rows_for(store, [item.id])]
    scope = ""
    if capability_group:
        groups = item.info.capability_groups
        match = next((g for g in groups if g.lower() == capability_group.lower()), None)
        if match is None:
            raise NotFoundError(
                f"no capability group {capability_group!r} in {item.label}",
                hint=f"groups: {', '.join(sorted(groups))}",
            )
        rows = [r for r in rows if r.capability_group == match]
        scope = groups[match]
    if capability:
        rows = [r for r in rows if (r.capability_id or "").lower() == capability.lower()]
        if not rows:
            raise NotFoundError(f"no capability {capability!r} in {item.label}")
        scope = f"{rows[0].capability_id} {rows[0].capability_description or ''}".strip()
    techniques = _techniques(store, item, rows) if with_techniques else {}
    return MappingExport(item, rows, scope, techniques)


def _techniques(store: Store, item: MappingSet, rows: list[MappingRow]) -> dict[str, AttackObject]:
    """The mapped techniques as ATT&CK has them (STIX ids are stable across versions): the
    set's own domain and version first, then any loaded release (files do map a few ids across
    domains)."""
    wanted = {r.attack_object_id for r in rows if r.attack_object_id}
    found: dict[str, AttackObject] = {}
    releases = attack_store.list_releases(store)
    releases.sort(
        key=lambda r: (r.domain != item.info.domain, r.version != item.info.attack_version)
    )
    for release in releases:
        for attack_id in sorted(wanted - set(found)):
            for obj in attack_store.find_by_attack_id(store, attack_id, release.id):
                if obj.kind == "technique":
                    found[attack_id] = obj
    return found


# --- tabular ---------------------------------------------------------------------------------


def _record(export: MappingExport, row: MappingRow) -> dict[str, Any]:
    info = export.item.info
    return {
        "mapping_framework": info.framework,
        "mapping_framework_version": info.framework_version,
        "attack_version": info.attack_version,
        "technology_domain": info.domain.removesuffix("-attack"),
        "capability_group": row.capability_group or "",
        "capability_group_name": info.capability_groups.get(row.capability_group or "", ""),
        "capability_id": row.capability_id or "",
        "capability_description": row.capability_description or "",
        "mapping_type": row.mapping_type,
        "mapping_type_label": mapping_type_label(row.mapping_type, info.mapping_types),
        "attack_object_id": row.attack_object_id or "",
        "attack_object_name": row.attack_object_name or "",
        "score_category": row.score_category or "",
        "score_value": row.score_value or "",
        "related_score": row.related_score or "",
        "comments": row.comments or "",
        "references": "; ".join(row.references),
        "status": row.status or "",
        "occurrences": row.occurrences,
    }


def export_csv(export: MappingExport) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in export.rows:
        writer.writerow(_record(export, row))
    return buffer.getvalue().encode()


def _metadata_pairs(export: MappingExport) -> list[tuple[str, str]]:
    info = export.item.info
    return [
        ("mapping_framework", info.framework),
        ("framework_label", framework_label(info.framework)),
        ("mapping_framework_version", info.framework_version),
        ("attack_version", info.attack_version),
        ("technology_domain", info.domain.removesuffix("-attack")),
        ("mapping_version", info.mapping_version or ""),
        ("creation_date", info.creation_date or ""),
        ("last_update", info.last_update or ""),
        ("author", info.author or ""),
        ("contact", info.contact or ""),
        ("organization", info.organization or ""),
        ("scope", export.scope),
        ("rows", str(len(export.rows))),
    ]


def export_xlsx(export: MappingExport) -> bytes:
    """One sheet per table: metadata, mappings, capability groups, mapping types,
    non-mappable rows; typed cells (counts are numbers)."""
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("Metadata")
    sheet.append(["field", "value"])
    for name, value in _metadata_pairs(export):
        sheet.append([name, int(value) if name == "rows" else value])
    mapped = [r for r in export.rows if r.mapping_type != NON_MAPPABLE]
    unmapped = [r for r in export.rows if r.mapping_type == NON_MAPPABLE]
    for title, rows in (("Mappings", mapped), ("Non-mappable", unmapped)):
        table = book.create_sheet(title)
        table.append(list(CSV_FIELDS))
        for row in rows:
            record = _record(export, row)
            # an empty cell, not an empty string: smaller, faster, and what Excel users expect
            table.append([record[f] if record[f] != "" else None for f in CSV_FIELDS])
    groups = book.create_sheet("Capability Groups")
    groups.append(["capability_group", "name"])
    for key, name in sorted(export.item.info.capability_groups.items()):
        groups.append([key, name])
    types = book.create_sheet("Mapping Types")
    types.append(["mapping_type", "name", "description", "label"])
    declared = export.item.info.mapping_types
    for key, declaration in sorted(declared.items()):
        label = mapping_type_label(key, declared)
        types.append([key, declaration.get("name", ""), declaration.get("description", ""), label])
    from openpyxl.writer.excel import ExcelWriter

    fixed = datetime(2000, 1, 1)
    book.properties.creator = "defensemap"
    book.properties.created = fixed
    book.properties.modified = fixed
    buffer = io.BytesIO()
    ExcelWriter(book, _StableZip(buffer, "w", zipfile.ZIP_DEFLATED)).save()
    return buffer.getvalue()


class _StableZip(zipfile.ZipFile):
    """A zip whose entries all carry one fixed time, so equal workbooks give equal bytes."""

    def writestr(  # type: ignore[override]
        self, zinfo_or_arcname: str | zipfile.ZipInfo, data: str | bytes, *args: Any, **kwargs: Any
    ) -> None:
        name = (
            zinfo_or_arcname.filename
            if isinstance(zinfo_or_arcname, zipfile.ZipInfo)
            else zinfo_or_arcname
        )
        info = zipfile.ZipInfo(name, date_time=_FIXED_ZIP_TIME)
        info.compress_type = zipfile.ZIP_DEFLATED
        super().writestr(info, data)

    def write(self, filename: Any, arcname: Any = None, *args: Any, **kwargs: Any) -> None:
        self.writestr(str(arcname or filename), Path(filename).read_bytes())


# --- documents -------------------------------------------------------------------------------


def unified_document(export: MappingExport) -> dict[str, Any]:
    """The Mappings Explorer unified format: metadata plus each stored row once."""
    return {"metadata": export.item.info.metadata, "mapping_objects": [r.raw for r in export.rows]}


def export_json(export: MappingExport) -> bytes:
    return orjson.dumps(unified_document(export), option=orjson.OPT_INDENT_2) + b"\n"


def export_yaml(export: MappingExport) -> bytes:
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    text: str = yaml.dump(
        unified_document(export), Dumper=dumper, sort_keys=False, allow_unicode=True, width=100
    )
    return text.encode()


def _iso(date: str | None) -> str:
    """``MM/DD/YYYY`` -> a STIX timestamp (the mapping file's own dates keep output stable)."""
    if date and date.count("/") == 2:
        month, day, year = date.split("/")
        if (month + day + year).isdecimal():
            return f"{int(year):04d}-{int(month):02d}-{int(day):02d}T00:00:00.000Z"
    return "2000-01-01T00:00:00.000Z"


def _sid(kind: str, *parts: str) -> str:
    return f"{kind}--{uuid.uuid5(_NAMESPACE, '|'.join(parts))}"


def _relationship_type(row: MappingRow) -> str:
    if row.mapping_type in ("protects", "mitigates"):
        return "mitigates"
    if row.mapping_type == "technique_scores" and row.score_category == "protect":
        return "mitigates"
    return "related-to"


def export_stix(export: MappingExport) -> bytes:
    """A STIX 2.1 bundle: the organisation, each capability (a course-of-action, or a
    vulnerability for KEV), the ATT&CK techniques (by their real STIX ids) and one
    relationship per mapping carrying its type, score, comments and references."""
    info = export.item.info
    created, modified = _iso(info.creation_date), _iso(info.last_update or info.creation_date)
    org = info.organization or info.author or f"{framework_label(info.framework)} mapping authors"
    identity_id = _sid("identity", org)
    common = {"spec_version": "2.1", "created": created, "modified": modified}
    objects: dict[str, dict[str, Any]] = {
        identity_id: {
            "type": "identity",
            "id": identity_id,
            **common,
            "name": org,
            "identity_class": "organization",
        }
    }
    mapped = [
        r
        for r in export.rows
        if r.mapping_type != NON_MAPPABLE and r.capability_id and r.attack_object_id
    ]
    missing = sorted({r.attack_object_id or "" for r in mapped} - set(export.techniques))
    if missing:
        more = " …" if len(missing) > 5 else ""
        raise ExportError(
            f"ATT&CK techniques not in the store: {', '.join(missing[:5])}{more}",
            hint="import the ATT&CK release(s) defining them (any domain or version) with"
            " `defensemap import attack`",
        )
    for row in mapped:
        cap_type = "vulnerability" if info.framework == "kev" else "course-of-action"
        cap_id = _sid(cap_type, info.framework, info.framework_version, row.capability_id or "")
        objects.setdefault(
            cap_id, _capability_object(cap_type, cap_id, row, export, identity_id, common)
        )
        technique = export.techniques[row.attack_object_id or ""]
        technique_id = technique.stix_id
        objects.setdefault(technique_id, _technique_object(technique))
        rel_id = _sid(
            "relationship",
            info.framework,
            info.framework_version,
            info.attack_version,
            info.domain,
            str(row.position),
        )
        relationship: dict[str, Any] = {
            "type": "relationship",
            "id": rel_id,
            **common,
            "created_by_ref": identity_id,
            "relationship_type": _relationship_type(row),
            "source_ref": cap_id,
            "target_ref": technique_id,
            "x_mapex_mapping_type": row.mapping_type,
        }
        if row.comments:
            relationship["description"] = row.comments
        for key in ("score_category", "score_value", "related_score"):
            if getattr(row, key):
                relationship[f"x_mapex_{key}"] = getattr(row, key)
        if row.references:
            relationship["external_references"] = [
                {"source_name": "reference", "url": url} for url in row.references
            ]
        objects[rel_id] = relationship
    bundle = {
        "type": "bundle",
        "id": _sid(
            "bundle",
            info.framework,
            info.framework_version,
            info.attack_version,
            info.domain,
            export.scope,
        ),
        "objects": [objects[k] for k in sorted(objects)],
    }
    return orjson.dumps(bundle, option=orjson.OPT_INDENT_2) + b"\n"


def _technique_object(technique: AttackObject) -> dict[str, Any]:
    """A reference copy of the ATT&CK technique with its own dates and name, so merging the
    bundle with ATT&CK never replaces the real object with an older or different one."""
    refs = [
        {k: v for k, v in ref.items() if k in ("source_name", "external_id", "url")}
        for ref in technique.raw.get("external_references") or []
        if isinstance(ref, dict) and ref.get("external_id") == technique.attack_id
    ]
    return {
        "type": "attack-pattern",
        "spec_version": "2.1",
        "id": technique.stix_id,
        "created": technique.created,
        "modified": technique.modified,
        "name": technique.name,
        "external_references": refs,
    }


def _capability_object(
    cap_type: str,
    cap_id: str,
    row: MappingRow,
    export: MappingExport,
    identity_id: str,
    common: dict[str, Any],
) -> dict[str, Any]:
    info = export.item.info
    obj: dict[str, Any] = {
        "type": cap_type,
        "id": cap_id,
        **common,
        "created_by_ref": identity_id,
        "name": row.capability_id,
        "external_references": [
            {"source_name": framework_label(info.framework), "external_id": row.capability_id}
        ],
        "x_mapex_framework": info.framework,
        "x_mapex_framework_version": info.framework_version,
    }
    if row.capability_description:
        obj["description"] = row.capability_description
    if row.capability_group:
        obj["x_mapex_capability_group"] = row.capability_group
    return obj


def export_navigator(export: MappingExport) -> bytes:
    """One layer: score = number of mappings, colour by the strongest technique score (or by
    mapping type), each capability in the comment and the metadata."""
    info = export.item.info
    per_technique: dict[str, list[MappingRow]] = defaultdict(list)
    for row in export.rows:
        if row.mapping_type != NON_MAPPABLE and row.attack_object_id:
            per_technique[row.attack_object_id].append(row)
    techniques = []
    for technique_id, unsorted in per_technique.items():
        rows = sorted(unsorted, key=lambda r: (r.capability_id or "", r.score_category or ""))
        labels = [_label(info.mapping_types, r) for r in rows]
        techniques.append(
            navigator.LayerTechnique(
                technique_id=technique_id,
                score=len(rows),
                color=_color(rows, info.mapping_types),
                comment="; ".join(
                    f"{r.capability_id} ({label})" for r, label in zip(rows, labels, strict=True)
                ),
                metadata=[
                    (r.capability_id or "", label) for r, label in zip(rows, labels, strict=True)
                ],
            )
        )
    legend = [(f"{value} technique score", color) for value, color in SCORE_COLORS.items()]
    if not any(r.score_value for r in export.rows):
        used = {mapping_type_label(r.mapping_type, info.mapping_types) for r in export.rows}
        legend = [(label, color) for label, color in TYPE_COLORS.items() if label in used]
    document = navigator.layer(
        name=export.title,
        description=f"Mappings Explorer mappings of {export.title}; score = number of mappings.",
        domain=info.domain,
        attack_version=info.attack_version,
        techniques=techniques,
        legend=legend,
        metadata=[(k, v) for k, v in _metadata_pairs(export) if v],
    )
    return orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n"


def _label(declared: dict[str, dict[str, str]], row: MappingRow) -> str:
    label = mapping_type_label(row.mapping_type, declared)
    score = " ".join(x for x in (row.score_category, row.score_value) if x)
    return f"{label}: {score}" if score else label


def _color(rows: list[MappingRow], declared: dict[str, dict[str, str]]) -> str:
    for value, color in SCORE_COLORS.items():
        if any(r.score_value == value for r in rows):
            return color
    labels = {mapping_type_label(r.mapping_type, declared) for r in rows}
    return next((color for label, color in TYPE_COLORS.items() if label in labels), "")


EXPORTERS: dict[str, Callable[[MappingExport], bytes]] = {
    "csv": export_csv,
    "xlsx": export_xlsx,
    "json": export_json,
    "yaml": export_yaml,
    "stix": export_stix,
    "navigator": export_navigator,
}
