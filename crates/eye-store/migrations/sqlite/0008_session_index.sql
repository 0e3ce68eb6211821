-- A session's events in time order, without one random insert per event into a big
-- index. `events_by_session` put every new event on the leaf page of its session: with
-- thousands of live sessions that is a different page per event, and once the index
-- outgrew the page cache each insert read and rewrote a 16 KiB page: the store took
-- ~48k events/s in its first million events and ~17k in its fifth (`eye-bench store
-- --events 5000000 --report-every 1000000`).
--
-- New entries now go to `session_index_fresh`, a tree of at most a few hundred thousand
-- entries that stays in the cache, and the store moves it into `session_index` in key order
-- (one pass over the big tree, each leaf page touched once) when it grows past that.
-- A session query reads both trees and merges them.
CREATE TABLE session_index (
    session_id  TEXT    NOT NULL,
    ts          INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    pk          INTEGER NOT NULL,
    PRIMARY KEY (session_id, ts, seq, pk)
) WITHOUT ROWID;

CREATE TABLE session_index_fresh (
    session_id  TEXT    NOT NULL,
    ts          INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    pk          INTEGER NOT NULL,
    PRIMARY KEY (session_id, ts, seq, pk)
) WITHOUT ROWID;

INSERT INTO session_index (session_id, ts, seq, pk)
    SELECT session_id, ts, seq, pk FROM events ORDER BY session_id, ts, seq, pk;

DROP INDEX events_by_session;
