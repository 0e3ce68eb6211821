-- Facts about the store itself, by name. See the embedded store's migration 0009:
-- `legacy_v7_client_ids_until_ms` is set when a store with events is upgraded, and
-- until then the writer also checks for a UUIDv7 client id's old-rule event id, so
-- that a retry across the upgrade is stored once.
CREATE TABLE store_meta (
    key   TEXT   PRIMARY KEY,
    value BIGINT NOT NULL
);

INSERT INTO store_meta (key, value)
    SELECT 'legacy_v7_client_ids_until_ms',
           (extract(epoch FROM now()) * 1000)::bigint + 86400000
    WHERE EXISTS (SELECT 1 FROM events);
