-- Events of one name in time order, whatever their category: `GET /events?name=...`
-- without `category` otherwise walks every event newest first until it has a page
-- (seconds on millions when the name is rare).
CREATE INDEX events_by_name ON events (name, ts, seq, pk);
