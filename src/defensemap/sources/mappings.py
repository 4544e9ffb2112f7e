"""Parse Mappings Explorer files (the unified ``metadata`` + ``mapping_objects`` format).

Validation uses pydantic models written here from the unified schema's rules; the tests check
them against the schema file itself. Identical rows are stored once and counted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from defensemap.errors import SchemaError, SourceError, SourceLocation
from defensemap.model.mappings import (
    MappingFile,
    MappingRow,
    MappingSetInfo,
    normalize_mapping_type,
)
from defensemap.sources.files import RawDocument, read_json
from defensemap.sources.validation import first_problem, pointer_token
from defensemap.util import paused_gc

DOMAIN_OF = {"enterprise": "enterprise-attack", "mobile": "mobile-attack", "ics": "ics-attack"}
_DATE = r"^[0-9]{2}/[0-9]{2}/[0-9]{4}$"


class _Model(BaseModel):
    """Strict and closed, like the unified schema (``additionalProperties: false``)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    # Optional in the schema, but a string when present (never null).
    _not_null: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")
    @classmethod
    def _present_means_not_null(cls, value: Any, info: ValidationInfo) -> Any:
        # A field validator, so the error's location (and JSON pointer) names the field.
        if value is None and info.field_name in cls._not_null:
            raise PydanticCustomError(
                "not_null", "field '{name}' must be a string, not null", {"name": info.field_name}
            )
        return value


class MappingType(_Model):
    name: str
    description: str


class Metadata(_Model):
    _not_null = frozenset({"last_update", "mapping_framework_version_schema"})

    mapping_version: str
    attack_version: str
    technology_domain: Literal["enterprise", "mobile", "ics"]
    creation_date: str = Field(pattern=_DATE)
    last_update: str | None = Field(default=None, pattern=_DATE)
    mapping_framework: str
    mapping_framework_version: str
    mapping_framework_version_schema: Literal["FRAMEWORK_VERSION", "ACCESS_DATE"] | None = None
    author: str | None = None
    contact: str | None = None
    organization: str | None = None
    mapping_types: dict[str, MappingType]
    capability_groups: dict[str, Any]


class MappingObject(_Model):
    _not_null = frozenset(
        {
            "attack_version",
            "mapping_framework",
            "mapping_framework_version",
            "status",
            "technology_domain",
        }
    )

    author: str | None = None
    author_contact: str | None = None
    author_organization: str | None = None
    attack_object_id: str | None = None
    attack_object_name: str | None = None
    attack_version: str | None = None
    mapping_framework: str | None = None
    mapping_framework_version: str | None = None
    capability_id: str | None = None
    capability_description: str | None = None
    comments: str | None = None
    references: list[str] | None = None
    mapping_type: str | None
    capability_group: str | None
    status: Literal["complete", "in_progress", "non_mappable"] | None = None
    technology_domain: str | None = None
    score_category: Literal["protect", "detect", "respond"] | None = None
    score_value: Literal["minimal", "partial", "significant"] | None = None
    related_score: str | None = None


def collect_files(paths: list[Path]) -> list[Path]:
    """The files named, and the ``.json``/``.json.gz`` files under the folders named
    (recursively, sorted). In folders, JSON Schema files (``*schema.json``, as shipped beside
    the mappings upstream) are not mapping files and are left out."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                sorted(
                    p
                    for p in path.rglob("*")
                    if p.is_file()
                    and p.name.endswith((".json", ".json.gz"))
                    and not p.name.removesuffix(".gz").endswith("schema.json")
                )
            )
        elif path.exists():
            found.append(path)
        else:
            raise SourceError(
                "file not found", location=SourceLocation(path=str(path)), hint="check the path"
            )
    if not found:
        raise SourceError(
            "no mapping files (*.json) found",
            location=SourceLocation(path=", ".join(str(p) for p in paths)),
            hint="point at Mappings Explorer files or the folder holding them",
        )
    return found


def load_mapping_file(path: Path) -> MappingFile:
    with paused_gc():
        return parse_mapping_file(read_json(path.resolve()))


def _error(doc: RawDocument, pointer: str, message: str) -> SchemaError:
    return SchemaError(
        message,
        location=SourceLocation(path=doc.path, pointer=pointer or "/"),
        hint="this is not a Mappings Explorer mapping file in the unified format",
    )


def _validate(doc: RawDocument, model: type[_Model], value: Any, pointer: str) -> Any:
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        where, message = first_problem(exc)
        raise _error(doc, f"{pointer}{where}", message) from None


def parse_mapping_file(doc: RawDocument) -> MappingFile:
    """Turn decoded JSON into a :class:`MappingFile` or raise :class:`SchemaError`."""
    data = doc.data
    if not isinstance(data, dict) or "metadata" not in data or "mapping_objects" not in data:
        raise _error(doc, "", "expected an object with 'metadata' and 'mapping_objects'")
    unknown = sorted(set(data) - {"metadata", "mapping_objects"})
    if unknown:
        raise _error(
            doc, f"/{pointer_token(unknown[0])}", f"unexpected top-level field '{unknown[0]}'"
        )
    meta: Metadata = _validate(doc, Metadata, data["metadata"], "/metadata")
    objects = data["mapping_objects"]
    if not isinstance(objects, list):
        raise _error(doc, "/mapping_objects", "'mapping_objects' must be a list")
    rows: dict[bytes, MappingRow] = {}
    for index, raw in enumerate(objects):
        if not isinstance(raw, dict):
            raise _error(doc, f"/mapping_objects/{index}", "expected an object")
        obj: MappingObject = _validate(doc, MappingObject, raw, f"/mapping_objects/{index}")
        key = orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)
        seen = rows.get(key)
        if seen is not None:
            rows[key] = MappingRow(**{**seen.__dict__, "occurrences": seen.occurrences + 1})
            continue
        rows[key] = _row(index, obj, raw)
    warnings = []
    if len(rows) < len(objects):
        warnings.append(f"{len(objects) - len(rows)} duplicate row(s) stored once and counted")
    return MappingFile(
        info=_info(meta, data["metadata"]),
        rows=list(rows.values()),
        rows_in_file=len(objects),
        source=doc.path,
        sha256=doc.sha256,
        warnings=warnings,
    )


def _info(meta: Metadata, raw: dict[str, Any]) -> MappingSetInfo:
    return MappingSetInfo(
        framework=meta.mapping_framework,
        framework_version=meta.mapping_framework_version,
        attack_version=meta.attack_version,
        domain=DOMAIN_OF[meta.technology_domain],
        mapping_version=meta.mapping_version or None,
        creation_date=meta.creation_date,
        last_update=meta.last_update,
        author=meta.author,
        contact=meta.contact,
        organization=meta.organization,
        version_schema=meta.mapping_framework_version_schema,
        mapping_types={
            k: {"name": v.name, "description": v.description} for k, v in meta.mapping_types.items()
        },
        capability_groups={str(k): str(v) for k, v in meta.capability_groups.items()},
        metadata=raw,
    )


def _row(index: int, obj: MappingObject, raw: dict[str, Any]) -> MappingRow:
    return MappingRow(
        position=index,
        occurrences=1,
        mapping_type=normalize_mapping_type(obj.mapping_type, obj.status),
        capability_id=obj.capability_id,
        capability_description=obj.capability_description,
        capability_group=obj.capability_group,
        attack_object_id=obj.attack_object_id,
        attack_object_name=obj.attack_object_name,
        score_category=obj.score_category,
        score_value=obj.score_value,
        related_score=obj.related_score,
        comments=obj.comments,
        references=[r.strip() for r in obj.references or [] if r.strip()],
        status=obj.status,
        raw=raw,
    )
