-- Events of one type in time order. Without it a filter on category and name walks
-- every event of the category (seconds on millions when the name is rare), and the
-- schema editor's "latest event of this type" did the same for a type with no events.
CREATE INDEX events_by_type ON events (category, name, ts, seq, pk);
