-- Who did what to the management state, and when: never updated, never deleted.
CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY,
    at      INTEGER NOT NULL,
    actor   TEXT    NOT NULL,
    action  TEXT    NOT NULL,
    target  TEXT    NOT NULL,
    details TEXT
);
CREATE INDEX audit_log_by_time ON audit_log (at);

-- Browser origins allowed to send this application's events (CORS), one per line.
ALTER TABLE apps ADD COLUMN allowed_origins TEXT NOT NULL DEFAULT '';
