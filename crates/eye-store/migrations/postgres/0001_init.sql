-- The Eye, PostgreSQL store, version 1: the same model as the embedded store (SQLite
-- migrations 0001-0003). Times are microseconds since the Unix epoch, UTC.

CREATE TABLE apps (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    created_at  BIGINT  NOT NULL,
    revoked_at  BIGINT
);

CREATE TABLE tokens (
    id          BIGSERIAL PRIMARY KEY,
    hash        BYTEA   NOT NULL UNIQUE,
    scope       TEXT    NOT NULL CHECK (scope IN ('ingest', 'read', 'admin')),
    app_id      BIGINT  REFERENCES apps (id),
    label       TEXT,
    created_at  BIGINT  NOT NULL,
    revoked_at  BIGINT,
    CHECK ((scope = 'ingest') = (app_id IS NOT NULL))
);

CREATE TABLE events (
    pk              BIGSERIAL PRIMARY KEY,
    id              UUID    NOT NULL UNIQUE,
    app_id          BIGINT  NOT NULL REFERENCES apps (id),
    client_id       TEXT,
    session_id      TEXT    NOT NULL,
    category        TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    data            JSONB   NOT NULL,
    ts              BIGINT  NOT NULL,
    seq             BIGINT  NOT NULL DEFAULT 0,
    received_at     BIGINT  NOT NULL,
    sent_at         BIGINT,
    schema_version  BIGINT
);
CREATE INDEX events_by_session  ON events (session_id, ts, seq, pk);
CREATE INDEX events_by_category ON events (category, ts, seq, pk);
CREATE INDEX events_by_time     ON events (ts, seq, pk);

CREATE TABLE sessions (
    session_id  TEXT    PRIMARY KEY,
    first_seen  BIGINT  NOT NULL,
    last_seen   BIGINT  NOT NULL,
    event_count BIGINT  NOT NULL
);
CREATE INDEX sessions_by_last_seen ON sessions (last_seen, session_id);

CREATE TABLE session_apps (
    session_id  TEXT    NOT NULL,
    app_id      BIGINT  NOT NULL,
    PRIMARY KEY (session_id, app_id)
);

CREATE TABLE errors (
    id          BIGSERIAL PRIMARY KEY,
    event_id    UUID    NOT NULL UNIQUE,
    app_id      BIGINT  NOT NULL REFERENCES apps (id),
    reason      TEXT    NOT NULL,
    message     TEXT    NOT NULL,
    field       TEXT,
    raw         TEXT    NOT NULL,
    session_id  TEXT,
    category    TEXT,
    name        TEXT,
    received_at BIGINT  NOT NULL,
    recorded_at BIGINT  NOT NULL,
    status      TEXT    NOT NULL DEFAULT 'open'
                CHECK (status IN ('open', 'reprocessed', 'dismissed', 'warning')),
    violations  TEXT,
    updated_at  BIGINT
);
CREATE INDEX errors_by_reason   ON errors (reason, id);
CREATE INDEX errors_by_status   ON errors (status, id);
CREATE INDEX errors_by_type     ON errors (category, name, id);
CREATE INDEX errors_by_received ON errors (received_at, id);

CREATE TABLE event_types (
    category        TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    mode            TEXT    NOT NULL DEFAULT 'enforce' CHECK (mode IN ('enforce', 'shadow')),
    schema_version  BIGINT,
    updated_at      BIGINT  NOT NULL,
    PRIMARY KEY (category, name)
);

CREATE TABLE schema_versions (
    category    TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    version     BIGINT  NOT NULL,
    schema      TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    PRIMARY KEY (category, name, version)
);

CREATE TABLE type_counts (
    category    TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    events      BIGINT  NOT NULL,
    PRIMARY KEY (category, name)
);

CREATE TABLE event_counts (
    minute      BIGINT  NOT NULL,
    category    TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    app_id      BIGINT  NOT NULL,
    events      BIGINT  NOT NULL,
    PRIMARY KEY (minute, category, name, app_id)
);

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
