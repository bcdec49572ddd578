#!/usr/bin/env python3
"""Robustness run: `slam serve --hold-ttl 1` gets a stream of requests, most of them valid
commands and queries on the ids it has handed out (so they reach the deciders: holds, payments,
cancellations, queue joins and leaves, expiries), some with fields replaced by hostile values
(huge and negative numbers, NUL, long strings, nulls, wrong types, timestamps at the edges),
some with frames cut, added, replaced or corrupted. It checks that the server stays up, that
every reply's body is JSON, and that `slam verify` passes on the database at the end (requests
left without a reply are counted). Exit 1 otherwise.

    swift build -c release --product slam
    python3 tools/fuzz_run.py [--seed 1] [--seconds 60]
"""
import argparse
import json
import os
import random
import subprocess
import sys
import time

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import slamproc  # noqa: E402

ID_FIELDS = ("userId", "concertId", "scheduleId", "reservationId", "tokenId")
FIELDS = ["userId", "amount", "name", "artist", "concertId", "scheduleId", "seatNumbers", "reservationId", "tokenId",
          "queueToken", "limit", "before", "afterSeq", "category", "section", "startsAt", "reservationOpensAt",
          "reservationClosesAt", "sections", "maxSeatsPerUser", "queue"]


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(t))


class Fuzzer:
    def __init__(self, seed, endpoint):
        self.rng = random.Random(seed)
        self.ctx = zmq.Context.instance()
        self.endpoint = endpoint
        self.sock = self.connect()
        self.ids = {f: [] for f in ID_FIELDS}
        self.now = time.time()

    def connect(self):
        sock = self.ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.endpoint)
        return sock

    def harvest(self, raw):
        """Keeps every id a reply names, for later requests to use."""
        try:
            value = json.loads(raw)
        except ValueError:
            return
        stack = [value]
        while stack:
            x = stack.pop()
            if isinstance(x, dict):
                for k, v in x.items():
                    if k in self.ids and isinstance(v, str) and v not in self.ids[k]:
                        self.ids[k].append(v)
                    stack.append(v)
            elif isinstance(x, list):
                stack.extend(x)

    def call(self, type_, body, key):
        header = json.dumps({"type": type_, "requestId": "setup", "idempotencyKey": key}).encode()
        self.sock.send_multipart([b"", b"SLAM/1", header, json.dumps(body).encode()])
        if not self.sock.poll(10_000):
            raise SystemExit(f"no reply to {type_} while setting up")
        self.harvest(self.sock.recv_multipart()[3])

    def set_up(self):
        self.call("CreateConcert", {"name": "F", "artist": "A"}, "setup-concert")
        concert = self.ids["concertId"][0]
        window = {"startsAt": iso(self.now + 86400), "reservationOpensAt": iso(self.now - 60),
                  "reservationClosesAt": iso(self.now + 3600)}
        self.call("ScheduleConcert", {"concertId": concert, **window,
                                      "sections": [{"name": "A", "seatCount": 50, "price": 10},
                                                   {"name": "B", "seatCount": 50, "price": 5}],
                                      "queue": {"maxActive": 2, "activeTtlSeconds": 2, "waitingTtlSeconds": 3}},
                  "setup-queued")
        self.call("ScheduleConcert", {"concertId": concert, **window,
                                      "sections": [{"name": "A", "seatCount": 30, "price": 10}]}, "setup-plain")
        for i in range(10):
            self.call("RegisterUser", {"name": f"u{i}"}, f"setup-user-{i}")
            self.call("ChargePoints", {"userId": self.ids["userId"][-1], "amount": 500}, f"setup-charge-{i}")

    def pick(self, field):
        return self.rng.choice(self.ids[field]) if self.ids[field] else "nope"

    def hostile(self, field=None):
        r = self.rng
        if field in self.ids and self.ids[field] and r.random() < 0.6:
            return r.choice(self.ids[field])
        if field == "seatNumbers" and r.random() < 0.7:
            return [r.randint(-2, 105) for _ in range(r.randint(0, 5))]
        return r.choice([0, 1, -1, 2**63 - 1, -2**63, 2**64, 1.5, 1e308, -0.0, "", "x" * r.randint(1, 300), "\u0000",
                         "\ud7ff", None, True, [], {}, [1, 2, 3], {"a": 1}, iso(self.now + r.randint(-10**6, 10**6)),
                         "0000-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z", 10**6, 10**6 + 1, r.randint(-10, 10**7)])

    def body(self, type_):
        r, pick, now = self.rng, self.pick, self.now

        def maybe(p, d):
            return d if r.random() < p else {}

        if type_ == "RegisterUser":
            return {"name": f"n{r.randint(0, 9999)}"}
        if type_ == "ChargePoints":
            return {"userId": pick("userId"), "amount": r.randint(1, 400)}
        if type_ == "CreateConcert":
            return {"name": "c", "artist": "a"}
        if type_ == "ScheduleConcert":
            return {"concertId": pick("concertId"), "startsAt": iso(now + r.randint(-100, 10**5)),
                    "reservationOpensAt": iso(now - r.randint(-100, 1000)),
                    "reservationClosesAt": iso(now + r.randint(-100, 10**5)),
                    "sections": [{"name": f"S{i}", "seatCount": r.randint(1, 20), "price": r.randint(0, 100)}
                                 for i in range(r.randint(1, 3))],
                    **maybe(0.5, {"queue": {"maxActive": r.randint(1, 3), "activeTtlSeconds": r.randint(1, 3),
                                            "waitingTtlSeconds": r.randint(1, 3)}}),
                    **maybe(0.5, {"maxSeatsPerUser": r.randint(1, 10)})}
        if type_ == "HoldSeats":
            return {"userId": pick("userId"), "scheduleId": pick("scheduleId"),
                    "seatNumbers": sorted({r.randint(1, 60) for _ in range(r.randint(1, 4))}),
                    **maybe(0.4, {"queueToken": pick("tokenId")})}
        if type_ in ("PayReservation", "CancelReservation"):
            return {"userId": pick("userId"), "reservationId": pick("reservationId")}
        if type_ == "JoinQueue":
            return {"userId": pick("userId"), "scheduleId": pick("scheduleId")}
        if type_ == "LeaveQueue":
            return {"userId": pick("userId"), "tokenId": pick("tokenId")}
        if type_ in ("GetUser", "ListReservations"):
            return {"userId": pick("userId")}
        if type_ == "GetPointHistory":
            return {"userId": pick("userId"), **maybe(0.5, {"limit": r.randint(1, 5)}),
                    **maybe(0.3, {"before": r.randint(1, 20)})}
        if type_ == "ListSchedules":
            return maybe(0.5, {"concertId": pick("concertId")})
        if type_ == "GetSeatMap":
            return {"scheduleId": pick("scheduleId"), **maybe(0.3, {"section": r.choice(["A", "B", "S0", "zz"])})}
        if type_ == "GetReservation":
            return {"reservationId": pick("reservationId")}
        if type_ == "GetQueueStatus":
            return {"tokenId": pick("tokenId")}
        if type_ == "ReadEvents":
            return {"afterSeq": r.randint(0, 300),
                    **maybe(0.5, {"category": r.choice(["user", "wallet", "concert", "queue", "reservation"])}),
                    **maybe(0.5, {"limit": r.randint(1, 50)})}
        return {}

    def frames(self, n):
        r = self.rng
        type_ = r.choice(["RegisterUser", "ChargePoints", "CreateConcert", "ScheduleConcert", "HoldSeats",
                          "PayReservation", "CancelReservation", "JoinQueue", "LeaveQueue", "GetUser",
                          "GetPointHistory", "ListSchedules", "GetSeatMap", "GetReservation", "ListReservations",
                          "GetQueueStatus", "ReadEvents", "GetStats", "Bogus"])
        body = self.body(type_)
        if r.random() < 0.15:
            for f in r.sample(FIELDS, r.randint(1, 3)):
                body[f] = self.hostile(f)
        header = {"type": type_, "requestId": f"r{n}"}
        if r.random() < 0.95:
            header["idempotencyKey"] = r.choice([f"k{r.randint(0, 50)}", f"u{n}", f"u{n}", f"u{n}", "x" * r.randint(1, 200)])
        if r.random() < 0.1:
            header["deadline"] = self.hostile()
        if r.random() < 0.05:
            header[r.choice(["extra", "type", "requestId"])] = self.hostile()
        frames = [b"", b"SLAM/1", json.dumps(header).encode(), json.dumps(body).encode()]
        c = r.random()
        if c < 0.05:
            frames = frames[:r.randint(0, len(frames))]
        elif c < 0.1:
            frames.append(os.urandom(r.randint(0, 50)))
        elif c < 0.15:
            frames[r.randrange(len(frames))] = os.urandom(r.randint(0, 100))
        elif c < 0.2:
            i = r.randrange(len(frames))
            b = bytearray(frames[i])
            if b:
                b[r.randrange(len(b))] = r.randrange(256)
            frames[i] = bytes(b)
        return frames


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=60)
    args = ap.parse_args()
    server = slamproc.Server("--hold-ttl", "1")
    fz = Fuzzer(args.seed, server.commands)
    fz.set_up()
    sent, codes = 0, {}
    end = time.time() + args.seconds
    while time.time() < end:
        frames = fz.frames(sent)
        if not frames:
            continue
        fz.sock.send_multipart(frames)
        sent += 1
        if fz.sock.poll(5000):
            reply = fz.sock.recv_multipart()
            if len(reply) >= 4:
                fz.harvest(reply[3])
                try:
                    code = json.loads(reply[3]).get("code", "ok")
                except ValueError:
                    code = "UNPARSEABLE REPLY"
                codes[code] = codes.get(code, 0) + 1
            continue
        if server.proc.poll() is not None:
            print(f"SERVER DIED (exit {server.proc.returncode}) after {sent} requests:\n{server.log()[-3000:]}")
            sys.exit(1)
        # Frames the server could not read get no reply (or went with a dropped connection): a new socket.
        codes["no reply"] = codes.get("no reply", 0) + 1
        fz.sock.close()
        fz.sock = fz.connect()
    alive = server.proc.poll() is None
    print(f"{sent} requests in {args.seconds:.0f} s (seed {args.seed}); server {'up' if alive else 'DOWN'}; "
          + ", ".join(f"{k} {v}" for k, v in sorted(codes.items(), key=lambda kv: -kv[1])))
    if alive:
        server.stop()
    verify = subprocess.run([server.binary, "verify", "--db", server.db], capture_output=True, text=True)
    print(verify.stdout.strip())
    passed = alive and verify.returncode == 0 and "UNPARSEABLE REPLY" not in codes
    if passed:
        server.remove_files()
    else:
        print(f"kept for a look: {server.dir}")
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
