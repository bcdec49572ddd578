-- The read models. Each is a pure fold of the event log (Projections/*.swift), applied inline in
-- the writer's transaction and rebuilt from the log by `slam projections rebuild`.

-- Users and wallets.
CREATE TABLE users (
    user_id       TEXT    PRIMARY KEY,
    name          TEXT    NOT NULL,
    balance       INTEGER NOT NULL,
    history_count INTEGER NOT NULL
) WITHOUT ROWID;

-- Point history: entry n of a user, n from 1.
CREATE TABLE point_history (
    user_id        TEXT    NOT NULL,
    n              INTEGER NOT NULL,
    kind           TEXT    NOT NULL,      -- CHARGE | USE | REFUND
    amount         INTEGER NOT NULL,      -- positive; kind gives the sign
    balance        INTEGER NOT NULL,      -- after the entry
    reservation_id TEXT,
    at             INTEGER NOT NULL,      -- Unix milliseconds
    PRIMARY KEY (user_id, n)
) WITHOUT ROWID;

CREATE TABLE concerts (
    concert_id TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    artist     TEXT NOT NULL
) WITHOUT ROWID;

-- Schedules with their seat counts by status.
CREATE TABLE schedules (
    schedule_id        TEXT    PRIMARY KEY,
    concert_id         TEXT    NOT NULL,
    starts_at          INTEGER NOT NULL,
    opens_at           INTEGER NOT NULL,
    closes_at          INTEGER NOT NULL,
    seat_count         INTEGER NOT NULL,
    available          INTEGER NOT NULL,
    held               INTEGER NOT NULL,
    sold               INTEGER NOT NULL,
    sold_out           INTEGER NOT NULL,
    max_seats_per_user INTEGER NOT NULL,
    sections           TEXT    NOT NULL,  -- JSON [{name, seatCount, price}]
    queue_max_active   INTEGER,           -- NULL: no waiting queue
    queue_active_ttl   INTEGER,
    queue_waiting_ttl  INTEGER,
    position           INTEGER NOT NULL   -- of ConcertScheduled: listing order
) WITHOUT ROWID;
CREATE INDEX schedules_by_concert ON schedules (concert_id, position);

-- The seat map.
CREATE TABLE seats (
    schedule_id    TEXT    NOT NULL,
    number         INTEGER NOT NULL,
    section        TEXT    NOT NULL,
    price          INTEGER NOT NULL,
    status         TEXT    NOT NULL,      -- AVAILABLE | HELD | SOLD
    reservation_id TEXT,                  -- the live reservation, when HELD or SOLD
    PRIMARY KEY (schedule_id, number)
) WITHOUT ROWID;

CREATE TABLE reservations (
    reservation_id TEXT    PRIMARY KEY,
    user_id        TEXT    NOT NULL,
    schedule_id    TEXT    NOT NULL,
    seat_numbers   TEXT    NOT NULL,      -- JSON array, ascending
    price          INTEGER NOT NULL,
    status         TEXT    NOT NULL,
    expires_at     INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    position       INTEGER NOT NULL       -- of SeatsHeld: newest-first order
) WITHOUT ROWID;
CREATE INDEX reservations_by_user ON reservations (user_id, position);
CREATE INDEX reservations_live ON reservations (schedule_id, status);
-- Holds ordered by expiry, for the sweep: it never scans every reservation.
CREATE INDEX reservations_held_by_expiry ON reservations (expires_at) WHERE status = 'HELD';

-- Waiting-queue tokens. wait_seq numbers a schedule's joins from 1 (every token starts WAITING,
-- and one admitted at once is activated in the same transaction).
CREATE TABLE queue_tokens (
    token_id     TEXT    PRIMARY KEY,
    schedule_id  TEXT    NOT NULL,
    user_id      TEXT    NOT NULL,
    status       TEXT    NOT NULL,        -- WAITING | ACTIVE | EXPIRED
    wait_seq     INTEGER NOT NULL,        -- order of joining, per schedule
    left_waiting INTEGER NOT NULL,        -- 1: left (LeaveQueue) while waiting
    joined_at    INTEGER NOT NULL,
    active_until INTEGER
) WITHOUT ROWID;
CREATE INDEX queue_tokens_by_user ON queue_tokens (schedule_id, user_id, status);
-- left_waiting is in the key too, so the index covers GetQueueStatus's count: without it SQLite
-- looks each entry up in the table (WITHOUT ROWID) to test the term, about 15x slower.
CREATE INDEX queue_tokens_left_waiting ON queue_tokens (schedule_id, wait_seq, left_waiting) WHERE left_waiting = 1;

-- Per-schedule queue counters, so a token's place is arithmetic, not a scan. Waiting tokens
-- leave either from the front (admission, expiry: every token shares the TTL) or by LeaveQueue.
-- A waiting token t has ahead = (t.wait_seq - 1) - front_removed - (tokens that left by
-- LeaveQueue while waiting with a smaller wait_seq), an index range over the few who left.
CREATE TABLE queues (
    schedule_id   TEXT    PRIMARY KEY,
    waits         INTEGER NOT NULL,   -- tokens ever joined
    front_removed INTEGER NOT NULL,   -- waiting tokens admitted or expired
    active        INTEGER NOT NULL,
    waiting       INTEGER NOT NULL
) WITHOUT ROWID;
