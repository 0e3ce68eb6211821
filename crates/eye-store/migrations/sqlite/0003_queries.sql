-- The Eye, embedded store, version 3: what the analyst's API needs to stay fast.

-- Sessions listed most recent first, and filtered by time range.
CREATE INDEX sessions_by_last_seen ON sessions (last_seen, session_id);

-- Events per minute, type and application, kept by the worker in the same transaction
-- as the events: counts over days read thousands of these rows instead of millions of
-- events. `minute` is the start of the minute, in microseconds.
CREATE TABLE event_counts (
    minute      INTEGER NOT NULL,
    category    TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    app_id      INTEGER NOT NULL,
    events      INTEGER NOT NULL,
    PRIMARY KEY (minute, category, name, app_id)
) WITHOUT ROWID;
INSERT INTO event_counts (minute, category, name, app_id, events)
    SELECT (ts / 60000000 - (ts < 0 AND ts % 60000000 != 0)) * 60000000, category, name, app_id,
           count(*)
    FROM events GROUP BY 1, 2, 3, 4;
