#!/usr/bin/env python3
"""Crash harness (DESIGN.md section 5): run `slam serve` under load, kill it with SIGKILL at
random moments, restart it on the same database, and check what the clients were told:

- every acknowledged command survived: resent with the same key it replays (`replayed: true`)
  with the same body and position (invariant 4 and 5);
- `slam verify` passes on the database: no seat held or sold twice, every balance equal to its
  history, one deduction per payment, contiguous positions and outbox (invariants 1-3, 6, 7).

    python3 tools/crash_run.py [--rounds 5] [--clients 4]
"""
import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import slamproc  # noqa: E402


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


def load(endpoint, schedule, users, acked, stop, seed):
    """Charges and holds/pays until the server dies; records every acknowledged command."""
    rng = random.Random(seed)
    ctx = zmq.Context.instance()
    c = Client(ctx, endpoint)
    try:
        while not stop.is_set():
            user = rng.choice(users)
            if rng.random() < 0.5:
                body, type_ = {"userId": user, "amount": rng.randint(1, 50)}, "ChargePoints"
            else:
                body, type_ = {"userId": user, "scheduleId": schedule, "seatNumbers": [rng.randint(1, 400)]}, "HoldSeats"
            key = uuid.uuid4().hex
            h, b = c.call(type_, body, key, timeout=1000)
            if h is None:
                return  # the server is gone
            if "position" in h:
                acked.append((type_, body, key, h, b))
                if type_ == "HoldSeats" and h["ok"] and rng.random() < 0.7:
                    pkey = uuid.uuid4().hex
                    pbody = {"userId": user, "reservationId": b["reservationId"]}
                    ph, pb = c.call("PayReservation", pbody, pkey, timeout=1000)
                    if ph is None:
                        return
                    if "position" in ph:
                        acked.append(("PayReservation", pbody, pkey, ph, pb))
    finally:
        c.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--users", type=int, default=50)
    a = p.parse_args()
    server = slamproc.Server()
    db, binary = server.db, server.binary
    ctx = zmq.Context.instance()
    c = Client(ctx, server.commands)
    _, concert = c.call("CreateConcert", {"name": "Crash", "artist": "Harness"}, uuid.uuid4().hex)
    now = time.time()
    iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(t))  # noqa: E731
    _, sched = c.call("ScheduleConcert", {"concertId": concert["concertId"], "startsAt": iso(now + 86400 * 30),
                                          "reservationOpensAt": iso(now - 60), "reservationClosesAt": iso(now + 86400),
                                          "sections": [{"name": "A", "seatCount": 400, "price": 10}],
                                          "maxSeatsPerUser": 10}, uuid.uuid4().hex)
    users = []
    for i in range(a.users):
        _, u = c.call("RegisterUser", {"name": f"u{i}"}, uuid.uuid4().hex)
        users.append(u["userId"])
    c.close()
    acked = []
    for rnd in range(a.rounds):
        stop = threading.Event()
        threads = [threading.Thread(target=load, args=(server.commands, sched["scheduleId"], users, acked, stop, rnd * 100 + i))
                   for i in range(a.clients)]
        for t in threads:
            t.start()
        time.sleep(random.uniform(0.3, 1.5))
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait()
        stop.set()
        for t in threads:
            t.join()
        print(f"round {rnd + 1}: killed with SIGKILL; {len(acked)} commands acknowledged so far", flush=True)
        server = slamproc.Server(db=db, binary=binary)
    # Every acknowledged command replays exactly as it was answered.
    c = Client(ctx, server.commands)
    bad = 0
    for type_, body, key, h, b in acked:
        h2, b2 = c.call(type_, body, key)
        if not (h2 and h2.get("replayed") is True and b2 == b and h2.get("position") == h.get("position")):
            bad += 1
            print(f"LOST OR CHANGED: {type_} {key}: first {h} {b}; now {h2} {b2}")
    c.close()
    server.stop()
    verify = subprocess.run([binary, "verify", "--db", db], capture_output=True, text=True)
    print(verify.stdout.strip())
    print(f"{len(acked)} acknowledged commands after {a.rounds} SIGKILLs: {bad} lost or changed; "
          f"slam verify exit {verify.returncode}")
    sys.exit(1 if bad or verify.returncode != 0 else 0)


if __name__ == "__main__":
    main()
