"""`/api/docs`: the OpenAPI description as a plain page. FastAPI's Swagger UI loads its
script from a CDN and runs inline script, which the CSP forbids and an air-gapped SOC cannot
fetch; this page is rendered on the server from the same OpenAPI document."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request, Response

from defensemap.web.context import web

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class Parameter:
    name: str
    where: str
    required: bool
    kind: str
    description: str


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    summary: str
    description: str
    parameters: tuple[Parameter, ...]


def _kind(schema: dict[str, Any]) -> str:
    """``string``, ``integer``, ``string (≤ 16, pattern …)``: what a caller may send."""
    options = [s for s in schema.get("anyOf", [schema]) if s.get("type") != "null"]
    first = options[0] if options else {}
    limits = [f"≤ {first['maxLength']} characters"] if "maxLength" in first else []
    if "enum" in first:
        limits.append("one of " + ", ".join(map(str, first["enum"])))
    if "pattern" in first:
        limits.append(f"pattern {first['pattern']}")
    kind = str(first.get("type", "value"))
    if kind == "array":
        kind = f"list of {first.get('items', {}).get('type', 'value')}"
    return f"{kind} ({'; '.join(limits)})" if limits else kind


def endpoints(spec: dict[str, Any]) -> list[Endpoint]:
    found = []
    for path, operations in sorted(spec.get("paths", {}).items()):
        for method, operation in operations.items():
            parameters = tuple(
                Parameter(
                    p["name"],
                    p["in"],
                    bool(p.get("required")),
                    _kind(p.get("schema", {})),
                    p.get("description", ""),
                )
                for p in operation.get("parameters", [])
            )
            found.append(
                Endpoint(
                    method.upper(),
                    path,
                    operation.get("summary", ""),
                    operation.get("description", ""),
                    parameters,
                )
            )
    return found


@router.get("/api/docs")
def api_docs(request: Request) -> Response:
    """Every endpoint with its parameters; the machine-readable form is /api/openapi.json."""
    spec = request.app.openapi()
    return web(request).page(
        request, "api_docs.html", endpoints=endpoints(spec), version=spec["info"]["version"]
    )
