-- The Eye, embedded store, version 1. Times are microseconds since the Unix epoch, UTC.

CREATE TABLE apps (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

-- Only the SHA-256 of a token is kept. Ingest tokens belong to an application.
CREATE TABLE tokens (
    id          INTEGER PRIMARY KEY,
    hash        BLOB    NOT NULL UNIQUE,
    scope       TEXT    NOT NULL CHECK (scope IN ('ingest', 'read', 'admin')),
    app_id      INTEGER REFERENCES apps (id),
    label       TEXT,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER,
    CHECK ((scope = 'ingest') = (app_id IS NOT NULL))
);

-- `pk` is the arrival order: the worker inserts in queue order, and it breaks ties
-- between events with the same timestamp and seq. `id` is the event id (16 bytes),
-- unique so that a redelivered message or a resent client id is stored once.
CREATE TABLE events (
    pk          INTEGER PRIMARY KEY,
    id          BLOB    NOT NULL UNIQUE,
    app_id      INTEGER NOT NULL REFERENCES apps (id),
    client_id   TEXT,
    session_id  TEXT    NOT NULL,
    category    TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    data        TEXT    NOT NULL,
    ts          INTEGER NOT NULL,
    seq         INTEGER NOT NULL DEFAULT 0,
    received_at INTEGER NOT NULL,
    sent_at     INTEGER
);
CREATE INDEX events_by_session  ON events (session_id, ts, seq, pk);
CREATE INDEX events_by_category ON events (category, ts, seq, pk);
CREATE INDEX events_by_time     ON events (ts, seq, pk);

CREATE TABLE sessions (
    session_id  TEXT    PRIMARY KEY,
    first_seen  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    event_count INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE session_apps (
    session_id  TEXT    NOT NULL,
    app_id      INTEGER NOT NULL,
    PRIMARY KEY (session_id, app_id)
) WITHOUT ROWID;

-- Everything refused, by the API or the worker, with its reason and the raw event.
CREATE TABLE errors (
    id          INTEGER PRIMARY KEY,
    event_id    BLOB    NOT NULL UNIQUE,
    app_id      INTEGER NOT NULL REFERENCES apps (id),
    reason      TEXT    NOT NULL,
    message     TEXT    NOT NULL,
    field       TEXT,
    raw         TEXT    NOT NULL,
    session_id  TEXT,
    category    TEXT,
    name        TEXT,
    received_at INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL,
    status      TEXT    NOT NULL DEFAULT 'open'
);
CREATE INDEX errors_by_reason ON errors (reason, id);
