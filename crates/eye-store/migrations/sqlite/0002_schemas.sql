-- The Eye, embedded store, version 2: event-type schemas and the error workflow.

-- The registry. A registered type has a mode and, unless its schema was deleted, a
-- current schema version. Unregistered types follow the unknown-type policy.
CREATE TABLE event_types (
    category        TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    mode            TEXT    NOT NULL DEFAULT 'enforce' CHECK (mode IN ('enforce', 'shadow')),
    schema_version  INTEGER,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (category, name)
) WITHOUT ROWID;

-- Every schema ever set: setting a new one adds a version and keeps the old ones.
CREATE TABLE schema_versions (
    category    TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    schema      TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (category, name, version)
) WITHOUT ROWID;

-- Events stored per type, kept by the worker in the same transaction as the events,
-- so that listing types with their counts never scans the events.
CREATE TABLE type_counts (
    category    TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    events      INTEGER NOT NULL,
    PRIMARY KEY (category, name)
) WITHOUT ROWID;
INSERT INTO type_counts (category, name, events)
    SELECT category, name, count(*) FROM events GROUP BY category, name;

-- The schema version an event was checked against (NULL: its type had none).
ALTER TABLE events ADD COLUMN schema_version INTEGER;

-- Errors gain the schema violations (a JSON array) and the time of their last change.
-- Status: 'open', 'reprocessed', 'dismissed', or 'warning' (a shadow-mode violation
-- of an event that was stored).
ALTER TABLE errors ADD COLUMN violations TEXT;
ALTER TABLE errors ADD COLUMN updated_at INTEGER;
CREATE INDEX errors_by_status ON errors (status, id);
CREATE INDEX errors_by_type ON errors (category, name, id);
CREATE INDEX errors_by_received ON errors (received_at, id);

-- The three known types ship with a schema each, which an operator can replace.
INSERT INTO schema_versions (category, name, version, schema, created_at) VALUES
    ('page interaction', 'pageview', 1,
     '{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","required":["host","path"],"properties":{"host":{"type":"string"},"path":{"type":"string"}}}',
     0),
    ('page interaction', 'cta click', 1,
     '{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","required":["host","path","element"],"properties":{"host":{"type":"string"},"path":{"type":"string"},"element":{"type":"string"}}}',
     0),
    ('form interaction', 'submit', 1,
     '{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","required":["host","path","form"],"properties":{"host":{"type":"string"},"path":{"type":"string"},"form":{"type":"object"}}}',
     0);
INSERT INTO event_types (category, name, mode, schema_version, updated_at) VALUES
    ('page interaction', 'pageview', 'enforce', 1, 0),
    ('page interaction', 'cta click', 'enforce', 1, 0),
    ('form interaction', 'submit', 'enforce', 1, 0);
