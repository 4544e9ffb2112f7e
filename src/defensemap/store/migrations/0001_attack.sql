-- ATT&CK knowledge base: one row per release (domain + version), every STIX object and
-- relationship of it with its raw JSON, and a full-text index over all object kinds.
CREATE TABLE attack_release (
    id INTEGER PRIMARY KEY,
    domain TEXT NOT NULL,
    version TEXT NOT NULL,
    spec_version TEXT NOT NULL,
    attack_spec_version TEXT,
    source TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    imported_at TEXT NOT NULL,
    counts TEXT NOT NULL,
    warnings TEXT NOT NULL,
    UNIQUE (domain, version)
);

CREATE TABLE attack_object (
    release_id INTEGER NOT NULL REFERENCES attack_release (id) ON DELETE CASCADE,
    stix_id TEXT NOT NULL,
    type TEXT NOT NULL,
    kind TEXT NOT NULL,
    attack_id TEXT COLLATE NOCASE,
    name TEXT,
    description TEXT,
    created TEXT,
    modified TEXT,
    version TEXT,
    revoked INTEGER NOT NULL,
    deprecated INTEGER NOT NULL,
    raw TEXT NOT NULL,
    PRIMARY KEY (release_id, stix_id)
);
CREATE INDEX attack_object_by_attack_id ON attack_object (attack_id, release_id);
CREATE INDEX attack_object_by_kind ON attack_object (release_id, kind);
CREATE INDEX attack_object_by_name ON attack_object (name COLLATE NOCASE);

CREATE TABLE attack_relationship (
    release_id INTEGER NOT NULL REFERENCES attack_release (id) ON DELETE CASCADE,
    stix_id TEXT NOT NULL,
    relationship_type TEXT NOT NULL,
    source_ref TEXT NOT NULL,
    target_ref TEXT NOT NULL,
    description TEXT,
    revoked INTEGER NOT NULL,
    deprecated INTEGER NOT NULL,
    raw TEXT NOT NULL,
    PRIMARY KEY (release_id, stix_id)
);
CREATE INDEX attack_relationship_by_source ON attack_relationship (release_id, source_ref);
CREATE INDEX attack_relationship_by_target ON attack_relationship (release_id, target_ref);

-- One search index for every kind of thing defensemap knows; `scope` says which load it
-- belongs to (e.g. "attack:3") so a re-import can replace exactly its own rows.
CREATE VIRTUAL TABLE search_index USING fts5 (
    ident,
    title,
    body,
    kind UNINDEXED,
    scope UNINDEXED,
    ref UNINDEXED,
    tokenize = 'unicode61 remove_diacritics 2',
    prefix = '2 3 4'
);
