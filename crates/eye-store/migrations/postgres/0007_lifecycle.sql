-- Retention and erasure: each application's own retention (NULL: the global one), the
-- index that finds an application's oldest events, refused events by session, and the
-- erasures, whose records worker batches respect (see src/lifecycle.rs).
ALTER TABLE apps ADD COLUMN retention TEXT;

CREATE INDEX events_by_app_received ON events (app_id, received_at);
CREATE INDEX errors_by_session ON errors (session_id);

CREATE TABLE erasures (
    id          BIGSERIAL PRIMARY KEY,
    filter      TEXT    NOT NULL,
    until       BIGINT  NOT NULL,
    actor       TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    finished_at BIGINT,
    events      BIGINT  NOT NULL DEFAULT 0,
    sessions    BIGINT  NOT NULL DEFAULT 0,
    refused     BIGINT  NOT NULL DEFAULT 0
);
CREATE INDEX erasures_by_until ON erasures (until);
