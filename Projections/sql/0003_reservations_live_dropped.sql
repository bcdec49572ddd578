-- The index reservations_live (schedule_id, status) served one query, the writer's load of a
-- schedule's live reservations, once per schedule per server start, and cost every hold, payment,
-- release, cancellation and expiry an index update: 8% of the pages the writer wrote under the
-- rush (WAL frames by table, `slam bench --max`). That load now goes through the seat map
-- (seats.reservation_id names the live reservation of each HELD or SOLD seat).
DROP INDEX reservations_live;
