-- The event store: events in streams, the outbox the relay publishes, idempotency records and
-- store metadata. Released migrations are never edited; add a new file instead.

-- Every event, in commit order. `position` is the global position: INTEGER PRIMARY KEY without
-- AUTOINCREMENT, so with one writer it is contiguous even after rolled-back savepoints.
CREATE TABLE events (
    position       INTEGER PRIMARY KEY,
    stream_id      TEXT    NOT NULL,
    stream_version INTEGER NOT NULL,
    type           TEXT    NOT NULL,
    body           TEXT    NOT NULL,
    occurred_at    INTEGER NOT NULL,   -- Unix milliseconds
    causation_id   TEXT    NOT NULL,
    UNIQUE (stream_id, stream_version)
);

-- Every event as published (PROTOCOL.md section 7), written in the same transaction as `events`.
-- `seq` is contiguous for the same reason as `position`; `category_seq` counts within a category.
CREATE TABLE outbox (
    seq          INTEGER PRIMARY KEY,
    category     TEXT    NOT NULL,
    category_seq INTEGER NOT NULL,
    position     INTEGER NOT NULL,
    topic        TEXT    NOT NULL,
    header       TEXT    NOT NULL,
    body         TEXT    NOT NULL,
    UNIQUE (category, category_seq)
);

-- One row per executed command key: the fingerprint (type + canonical body) and the reply sent.
CREATE TABLE idempotency (
    key         TEXT    PRIMARY KEY,
    fingerprint TEXT    NOT NULL,
    ok          INTEGER NOT NULL,
    reply       TEXT    NOT NULL,
    position    INTEGER NOT NULL,
    created_at  INTEGER NOT NULL        -- Unix milliseconds, for retention
) WITHOUT ROWID;
CREATE INDEX idempotency_by_age ON idempotency (created_at);

-- Store-wide values: storeId, commands executed, how far the relay has published.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
