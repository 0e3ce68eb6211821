-- Indexed payload fields. `indexed_fields` holds each type's declarations (a JSON
-- Pointer per row); `field_indexes` one index per distinct path, named
-- `events_field_<id>` (on every partition), built in the background and `ready` once
-- built; `dropping` once no type declares it, until the builder has dropped it.
CREATE TABLE field_indexes (
    id BIGSERIAL PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL CHECK (state IN ('building', 'ready', 'dropping')),
    error TEXT,
    created_at BIGINT NOT NULL,
    ready_at BIGINT
);
CREATE TABLE indexed_fields (
    category TEXT NOT NULL,
    name TEXT NOT NULL,
    path TEXT NOT NULL REFERENCES field_indexes (path),
    PRIMARY KEY (category, name, path)
);
CREATE INDEX indexed_fields_by_path ON indexed_fields (path);
