-- Idempotency records in the order they are recorded. The table was keyed by the client's key
-- (WITHOUT ROWID, each row holding the fingerprint and the reply, about 330 bytes), with an index
-- by age for pruning. Under the rush at 10,000 commands/s, batches of about ten commands, the two
-- were 42% of the pages the writer wrote (WAL frames by table): every record dirtied a page of its
-- own, wherever its key fell. Now a record is appended at the end of the table (the records of a
-- batch share its last pages), and the key is found through a narrow unique index (the key and
-- the row's seq). Pruning goes in recorded order, stopping at the first record not older than the
-- cutoff (StoreWriter.pruneIdempotency), so the index by age is gone.
CREATE TABLE idempotency_new (
    seq         INTEGER PRIMARY KEY,    -- the order recorded
    key         TEXT    NOT NULL UNIQUE,
    fingerprint TEXT    NOT NULL,
    ok          INTEGER NOT NULL,
    reply       TEXT    NOT NULL,
    position    INTEGER NOT NULL,
    created_at  INTEGER NOT NULL        -- Unix milliseconds, for retention
);
INSERT INTO idempotency_new (key, fingerprint, ok, reply, position, created_at)
SELECT key, fingerprint, ok, reply, position, created_at FROM idempotency ORDER BY created_at, key;
DROP TABLE idempotency;
ALTER TABLE idempotency_new RENAME TO idempotency;
