-- Events partitioned by the time they were received (see src/postgres/partitions.rs).
--
-- A unique key on a partitioned table must hold the partition key, so the idempotency
-- key (the event id) gets a table of its own, `event_ids`, which the writer inserts
-- into first. The existing table becomes the first partition, for everything received
-- until now: no row is copied, and retention drops it once it is wholly expired. The
-- workers create the later partitions, one interval ahead (`event_partitions` lists
-- them all with their bounds, in microseconds; -2^63 is "from the beginning").

CREATE TABLE event_ids (
    id          UUID    PRIMARY KEY,
    app_id      BIGINT  NOT NULL,
    received_at BIGINT  NOT NULL
);
CREATE INDEX event_ids_by_received ON event_ids (received_at);
INSERT INTO event_ids (id, app_id, received_at) SELECT id, app_id, received_at FROM events;

CREATE TABLE event_partitions (
    name TEXT   PRIMARY KEY,
    lo   BIGINT NOT NULL,
    hi   BIGINT NOT NULL,
    CHECK (lo < hi)
);

ALTER TABLE events RENAME TO events_before_partitioning;
ALTER TABLE events_before_partitioning DROP CONSTRAINT events_id_key;
ALTER INDEX events_by_session RENAME TO events_before_partitioning_by_session;
ALTER INDEX events_by_category RENAME TO events_before_partitioning_by_category;
ALTER INDEX events_by_time RENAME TO events_before_partitioning_by_time;
ALTER INDEX events_by_type RENAME TO events_before_partitioning_by_type;
ALTER INDEX events_by_app_received RENAME TO events_before_partitioning_by_app_received;
-- Its primary key becomes (pk, received_at), as every partition's.
ALTER TABLE events_before_partitioning DROP CONSTRAINT events_pkey;
ALTER SEQUENCE events_pk_seq OWNED BY NONE;

CREATE TABLE events (
    pk              BIGINT  NOT NULL DEFAULT nextval('events_pk_seq'),
    id              UUID    NOT NULL,
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
    schema_version  BIGINT,
    PRIMARY KEY (pk, received_at)
) PARTITION BY RANGE (received_at);
ALTER SEQUENCE events_pk_seq OWNED BY events.pk;
-- The same indexes as before; the first partition's own match them and are attached
-- rather than built again.
CREATE INDEX events_by_session  ON events (session_id, ts, seq, pk);
CREATE INDEX events_by_category ON events (category, ts, seq, pk);
CREATE INDEX events_by_time     ON events (ts, seq, pk);
CREATE INDEX events_by_type     ON events (category, name, ts, seq, pk);
CREATE INDEX events_by_app_received ON events (app_id, received_at);

DO $$
DECLARE
    until BIGINT := (extract(epoch FROM clock_timestamp()) * 1000000)::bigint;
BEGIN
    EXECUTE format(
        'ALTER TABLE events ATTACH PARTITION events_before_partitioning
             FOR VALUES FROM (MINVALUE) TO (%s)', until);
    INSERT INTO event_partitions (name, lo, hi)
        VALUES ('events_before_partitioning', -9223372036854775808, until);
END $$;
