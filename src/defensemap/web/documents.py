"""Documents the pages and the API share, built the way the CLI builds them."""

from __future__ import annotations

from defensemap.kb.attack import describe
from defensemap.kb.detections import with_detections
from defensemap.kb.documents import TechniqueDoc
from defensemap.library.loader import Library
from defensemap.store.db import Store


def technique_document(
    store: Store, library: Library, technique_id: str, attack_version: str | None
) -> TechniqueDoc:
    doc = describe(store, "technique", technique_id.strip(), attack_version, None)
    assert isinstance(doc, TechniqueDoc)
    enriched = with_detections(store, doc, library.detections)
    assert isinstance(enriched, TechniqueDoc)
    return enriched
