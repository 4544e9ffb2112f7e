-- Mappings Explorer: one row per mapping file (framework + version + ATT&CK version + domain)
-- and its mapping objects, identical rows stored once with their count.
CREATE TABLE mapping_set (
    id INTEGER PRIMARY KEY,
    framework TEXT NOT NULL,
    framework_version TEXT NOT NULL,
    attack_version TEXT NOT NULL,
    domain TEXT NOT NULL,
    mapping_version TEXT,
    creation_date TEXT,
    last_update TEXT,
    author TEXT,
    contact TEXT,
    organization TEXT,
    version_schema TEXT,
    mapping_types TEXT NOT NULL,
    capability_groups TEXT NOT NULL,
    metadata TEXT NOT NULL,
    source TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    imported_at TEXT NOT NULL,
    rows_in_file INTEGER NOT NULL,
    UNIQUE (framework, framework_version, attack_version, domain)
);

CREATE TABLE mapping (
    set_id INTEGER NOT NULL REFERENCES mapping_set (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    occurrences INTEGER NOT NULL,
    mapping_type TEXT NOT NULL,
    capability_id TEXT COLLATE NOCASE,
    capability_description TEXT,
    capability_group TEXT,
    attack_object_id TEXT COLLATE NOCASE,
    attack_object_name TEXT,
    score_category TEXT,
    score_value TEXT,
    related_score TEXT,
    comments TEXT,
    refs TEXT NOT NULL,
    status TEXT,
    raw TEXT NOT NULL,
    PRIMARY KEY (set_id, position)
);
CREATE INDEX mapping_by_attack_id ON mapping (attack_object_id);
CREATE INDEX mapping_by_capability ON mapping (capability_id, set_id);
