-- Facts about the store itself, by name.
--
-- `legacy_v7_client_ids_until_ms`: a client id written as a UUIDv7 now derives an event
-- id that keeps the client id's time prefix (eye-core's `ids`), so that such ids land at
-- the right edge of the unique index instead of at random. A store that already held
-- events may hold ids derived by the old rule (the whole id a hash): until this time
-- (Unix milliseconds: the upgrade plus a day for client clocks), the writer also
-- checks for an event's old-rule id, so that a retry across the upgrade is stored once.
-- A new store has no such ids and no such row.
CREATE TABLE store_meta (
    key   TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;

INSERT INTO store_meta (key, value)
    SELECT 'legacy_v7_client_ids_until_ms', CAST(strftime('%s', 'now') AS INTEGER) * 1000 + 86400000
    WHERE EXISTS (SELECT 1 FROM events);
