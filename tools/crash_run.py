#!/usr/bin/env python3
"""Crash harness (DESIGN.md section 5): run `slam serve` under load, kill it with SIGKILL at
random moments, restart it on the same database, and check what the clients were told:

- every acknowledged command survived: resent with the same key it replays (`replayed: true`)
  with the same body and position, and an accepted one's last event is in the store at that
  position with the key as its `causationId` (invariants 4 and 5);
- every command in flight when the server died (sent, never answered) is executed at most once:
  resent right after the restart, as its client would, and again at the end (after the later
  kills), the second reply replays the first;
- `slam verify` passes on the database: no seat held or sold twice, every balance equal to its
  history, one deduction per payment and one refund per cancellation, contiguous positions and
  outbox (invariants 1-3, 6, 7);
- no expiry was recorded more than a second late while a server ran, and the ones overdue at a
  restart within a second of it (invariant 8): each hold not paid for or released by its
  `expiresAt` has its `HoldExpired` at most one second after the later of its `expiresAt` and
  the moment the first server up then (and not killed within that second) was ready; a hold
  with none by such a second before the last event read fails too.

The load holds 1-3 seats at a time, pays, releases holds, cancels paid reservations (refunds)
and leaves holds to expire (the server runs with `--hold-ttl 2`, so its sweep records expiries
between the kills). A round in which no hold, payment, release or cancellation was acknowledged,
or a load thread that failed, fails the run.

    python3 tools/crash_run.py [--rounds 5] [--clients 4]
"""
import argparse
import datetime
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import traceback
import uuid

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import slamproc  # noqa: E402

SEATS = 5000
HOLD_TTL_S = 2


class Client:
    def __init__(self, ctx, endpoint):
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)

    def call(self, type_, body, key=None, timeout=5000):
        rid = uuid.uuid4().hex
        header = {"type": type_, "requestId": rid}
        if key:
            header["idempotencyKey"] = key
        self.sock.send_multipart([b"", b"SLAM/1", json.dumps(header).encode(), json.dumps(body).encode()])
        while self.sock.poll(timeout):
            frames = self.sock.recv_multipart()
            h, b = json.loads(frames[2]), json.loads(frames[3])
            if h.get("requestId") == rid:
                return h, b
        return None, None

    def close(self):
        self.sock.close()


class Record:
    """What the clients were told, shared by the load threads (list appends are atomic)."""

    def __init__(self):
        self.acked = []       # (type, body, key, header, body): answered with a position
        self.in_flight = []   # (type, body, key): sent, never answered (the server died)
        self.failures = []    # tracebacks of load threads that failed


def load(endpoint, schedule, users, record, stop, seed):
    """Charges, holds, pays, releases and cancels until the server dies."""
    rng = random.Random(seed)
    ctx = zmq.Context.instance()
    c = Client(ctx, endpoint)

    def send(type_, body):
        key = uuid.uuid4().hex
        h, b = c.call(type_, body, key, timeout=1000)
        if h is None:
            record.in_flight.append((type_, body, key))
            return None, None
        if "position" in h:
            record.acked.append((type_, body, key, h, b))
        return h, b

    try:
        while not stop.is_set():
            user = rng.choice(users)
            if rng.random() < 0.3:
                h, _ = send("ChargePoints", {"userId": user, "amount": rng.randint(1, 100)})
                if h is None:
                    return
                continue
            first = rng.randint(1, SEATS - 2)
            seats = list(range(first, first + rng.randint(1, 3)))
            h, b = send("HoldSeats", {"userId": user, "scheduleId": schedule, "seatNumbers": seats})
            if h is None:
                return
            if not h["ok"]:
                continue
            fate = rng.random()
            ref = {"userId": user, "reservationId": b["reservationId"]}
            if fate < 0.15:
                if send("CancelReservation", ref)[0] is None:  # a release of the hold
                    return
            elif fate < 0.75:
                ph, _ = send("PayReservation", ref)
                if ph is None:
                    return
                if ph["ok"] and rng.random() < 0.25 and send("CancelReservation", ref)[0] is None:  # a refund
                    return
            # else: left to expire (the sweep records it within the round or the next)
    except Exception:  # noqa: BLE001 - any failure of the load is a failure of the run
        record.failures.append(traceback.format_exc())
    finally:
        c.close()


def millis(timestamp):
    """An RFC 3339 timestamp as the server writes it (UTC, milliseconds) in Unix milliseconds."""
    t = datetime.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    return round(t.timestamp() * 1000)


def read_events(c):
    """Every event's causationId by position, through ReadEvents pages; each hold's `expiresAt`
    and, when it ended, how and when (`occurredAt`), by reservation id; and the `occurredAt` of
    the last event."""
    out, after = {}, 0
    holds, ended, last_at = {}, {}, 0
    while True:
        h, b = c.call("ReadEvents", {"afterSeq": after, "limit": 1000})
        if not (h and h.get("ok")):
            raise SystemExit(f"ReadEvents failed: {h} {b}")
        for e in b["events"]:
            header, body = e["header"], e["body"]
            out[header["position"]] = header["causationId"]
            after = header["seq"]
            last_at = max(last_at, millis(header["occurredAt"]))
            if header["type"] == "SeatsHeld":
                holds[body["reservationId"]] = millis(body["expiresAt"])
            elif header["type"] in ("HoldExpired", "ReservationConfirmed", "HoldReleased"):
                ended[body["reservationId"]] = (header["type"], millis(header["occurredAt"]))
        if not b["events"]:
            return out, {rid: (expires, ended.get(rid)) for rid, expires in holds.items()}, last_at


def late_expiries(holds, runs, now):
    """DESIGN.md invariant 8 across restarts. `holds`: reservation id -> (expiresAt, how and when
    it ended, or None); `runs`: each server's (ready, killed or None), Unix milliseconds, in
    order; `now`: when the events were read (the last one's occurredAt). An expiry is due within
    a second of the later of its `expiresAt` and its server's start; a server killed before that
    second was up passes it to the next. Returns (reservation id, expiresAt, recorded or None,
    deadline) for each hold that expired later than its deadline, or had not expired (nor been
    paid for or released) by a deadline before `now`."""
    late = []
    for rid, (expires, end) in holds.items():
        if end and end[0] != "HoldExpired" and end[1] <= expires:
            continue  # paid for or released in time: it never expires
        recorded = end[1] if end and end[0] == "HoldExpired" else None
        for ready, killed in runs:
            if killed is not None and killed < expires:
                continue  # this server was gone before the hold was due
            deadline = max(expires, ready) + 1000
            if recorded is not None and recorded <= deadline:
                break
            if killed is None or deadline < killed:
                if recorded is not None or deadline < now:
                    late.append((rid, expires, recorded, deadline))
                break
    return late


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--users", type=int, default=500)
    a = p.parse_args()
    serve_args = ("--hold-ttl", str(HOLD_TTL_S))
    runs = []  # each server's [ready, killed or None], Unix milliseconds
    servers = []

    def start_server(**kwargs):
        started = slamproc.Server(*serve_args, **kwargs)
        runs.append([round(time.time() * 1000), None])
        servers.append(started)
        return started

    server = start_server()
    db, binary = server.db, server.binary
    ctx = zmq.Context.instance()
    c = Client(ctx, server.commands)
    _, concert = c.call("CreateConcert", {"name": "Crash", "artist": "Harness"}, uuid.uuid4().hex)
    now = time.time()
    iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(t))  # noqa: E731
    _, sched = c.call("ScheduleConcert", {"concertId": concert["concertId"], "startsAt": iso(now + 86400 * 30),
                                          "reservationOpensAt": iso(now - 60), "reservationClosesAt": iso(now + 86400),
                                          "sections": [{"name": "A", "seatCount": SEATS, "price": 10}],
                                          "maxSeatsPerUser": 10}, uuid.uuid4().hex)
    users = []
    for i in range(a.users):
        _, u = c.call("RegisterUser", {"name": f"u{i}"}, uuid.uuid4().hex)
        users.append(u["userId"])
        c.call("ChargePoints", {"userId": u["userId"], "amount": 1000}, uuid.uuid4().hex)
    c.close()
    record = Record()
    resent = []  # (type, body, key, header, body): the in-flight commands' first replies after a restart
    empty_rounds = []
    for rnd in range(a.rounds):
        before = len(record.acked)
        stop = threading.Event()
        threads = [threading.Thread(target=load, args=(server.commands, sched["scheduleId"], users, record, stop,
                                                       rnd * 100 + i))
                   for i in range(a.clients)]
        for t in threads:
            t.start()
        time.sleep(random.uniform(0.3, 1.5))
        runs[-1][1] = round(time.time() * 1000)
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait()
        stop.set()
        for t in threads:
            t.join()
        this_round = record.acked[before:]
        kinds = {(t, h["ok"]) for t, _, _, h, _ in this_round}
        if not {("HoldSeats", True), ("PayReservation", True), ("CancelReservation", True)} <= kinds:
            empty_rounds.append(rnd + 1)
        print(f"round {rnd + 1}: killed with SIGKILL; {len(record.acked)} commands acknowledged so far, "
              f"{len(record.in_flight)} in flight at a kill", flush=True)
        server = start_server(db=db, binary=binary)
        # The commands the server died with, resent as their clients would, right away.
        c = Client(ctx, server.commands)
        for type_, body, key in record.in_flight[len(resent):]:
            resent.append((type_, body, key, *c.call(type_, body, key)))
        c.close()
    # Every acknowledged command replays exactly as it was answered, and an accepted one's last
    # event is where its reply said, caused by its key.
    c = Client(ctx, server.commands)
    causes, holds, last_at = read_events(c)
    late = late_expiries(holds, runs, last_at)
    expiries = sum(1 for _, end in holds.values() if end and end[0] == "HoldExpired")
    for rid, expires, recorded, deadline in late[:20]:
        print(f"EXPIRY LATE: hold {rid} due at {expires}, to be recorded by {deadline}: "
              + (f"recorded at {recorded}" if recorded is not None else f"not recorded by {last_at}"))
    bad = 0
    for type_, body, key, h, b in record.acked:
        h2, b2 = c.call(type_, body, key)
        if not (h2 and h2.get("replayed") is True and b2 == b and h2.get("position") == h.get("position")):
            bad += 1
            print(f"LOST OR CHANGED: {type_} {key}: first {h} {b}; now {h2} {b2}")
        elif h["ok"] and causes.get(h["position"]) != key:
            bad += 1
            print(f"EVENTS MISSING: {type_} {key}: its reply names position {h['position']}, "
                  f"whose event was caused by {causes.get(h['position'])!r}")
    # Every command the server died with is executed at most once: resent again now (after
    # more kills), its reply replays the one it got right after its restart.
    twice = 0
    for type_, body, key, h1, b1 in resent:
        h2, b2 = c.call(type_, body, key)
        if not (h1 and h2 and h2.get("replayed") is True and b2 == b1 and h2.get("position") == h1.get("position")):
            twice += 1
            print(f"NOT AT MOST ONCE: {type_} {key}: {h1} {b1}; then {h2} {b2}")
    c.close()
    server.stop()
    verify = subprocess.run([binary, "verify", "--db", db], capture_output=True, text=True)
    print(verify.stdout.strip())
    for f in record.failures:
        print(f"LOAD THREAD FAILED:\n{f}")
    if empty_rounds:
        print(f"ROUNDS WITHOUT A HOLD, A PAYMENT AND A CANCELLATION ACKNOWLEDGED: {empty_rounds}")
    outcomes = {}
    for type_, _, _, h, b in record.acked:
        outcome = f"{type_} {'ok' if h['ok'] else b.get('code')}"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    print("acknowledged: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
          + f"; holds expired by the sweep: {sum(1 for cause in causes.values() if cause == 'system:expiry')}")
    print(f"{len(record.acked)} acknowledged commands after {a.rounds} SIGKILLs: {bad} lost or changed; "
          f"{len(record.in_flight)} in flight at a kill: {twice} executed more than once; "
          f"{expiries} expiries: {len(late)} recorded more than a second late or not at all; "
          f"slam verify exit {verify.returncode}")
    failed = bad or twice or late or verify.returncode != 0 or record.failures or empty_rounds
    if failed:
        print(f"kept for a look: the database {db}, the servers' logs in {' '.join(s.dir for s in servers)}")
    else:
        for s in servers:
            s.remove_files()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
