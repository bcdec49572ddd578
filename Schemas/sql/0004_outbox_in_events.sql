-- The outbox folded into the events table. Every event had exactly one outbox row, written in the
-- same transaction, with seq = position and the event's body a second time: under the rush the
-- outbox and its index were 11% of the pages the writer wrote (WAL frames by table, `slam bench
-- --max`) and half of the store's bytes. An event now carries its category and categorySeq; the
-- published message (PROTOCOL.md section 7) is built from the event row when it is read
-- (`EventStore.readOutbox`): seq is the position, the header is made of the row's columns.
--
-- The writer always gave an event's outbox row seq = position; a store whose outbox lacks that
-- row for some event fails this migration (category is NOT NULL) rather than lose the event.
CREATE TABLE events_new (
    position       INTEGER PRIMARY KEY,
    stream_id      TEXT    NOT NULL,
    stream_version INTEGER NOT NULL,
    type           TEXT    NOT NULL,
    body           TEXT    NOT NULL,
    occurred_at    INTEGER NOT NULL,   -- Unix milliseconds
    causation_id   TEXT    NOT NULL,
    category       TEXT    NOT NULL,   -- the first part of the topic
    category_seq   INTEGER NOT NULL,   -- counts within the category, from 1, with no gaps
    UNIQUE (stream_id, stream_version),
    UNIQUE (category, category_seq)
);
INSERT INTO events_new (position, stream_id, stream_version, type, body, occurred_at, causation_id, category, category_seq)
SELECT e.position, e.stream_id, e.stream_version, e.type, e.body, e.occurred_at, e.causation_id, o.category, o.category_seq
FROM events e LEFT JOIN outbox o ON o.seq = e.position AND o.position = e.position
ORDER BY e.position;
DROP TABLE outbox;
DROP TABLE events;
ALTER TABLE events_new RENAME TO events;

-- The outbox as SQL sees it, for tools and ad-hoc queries (the header is built in Swift).
CREATE VIEW outbox AS
SELECT position AS seq, category, category_seq, position, category || '.' || type AS topic, body FROM events;
