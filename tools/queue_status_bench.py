#!/usr/bin/env python3
"""GetQueueStatus latency with a long waiting line (issue 4: "it must stay cheap with 100,000
tokens waiting").

Starts `slam serve` on a fresh database with ephemeral loopback ports, creates a schedule with a
waiting queue (maxActive 1, TTLs long enough that nothing expires during the run), makes --users
users join it (pipelined over a few DEALER sockets), checks that GetQueueStatus agrees with every
JoinQueue reply on a sample, then measures GetQueueStatus round trips one at a time (closed loop,
one request in flight) on tokens spread evenly across the line, the first and the last included.
With --leave N, N random waiting tokens leave first, so `ahead` also counts over the tokens that
left (the index range of the query). Prints p50/p99/max and the machine.

    swift build -c release --product slam          # or: --scratch-path .build-time
    python3 tools/queue_status_bench.py            # 100,000 users, 10,000 calls
    SLAM_BIN=.build-time/release/slam python3 tools/queue_status_bench.py --leave 10000
    python3 tools/queue_status_bench.py --measure join   # JoinQueue again instead: a command

Binary: --bin, else $SLAM_BIN, else .build/release/slam, else .build/debug/slam.
Needs pyzmq (Tests/contract/requirements.txt).
"""
import argparse
import json
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone

import zmq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def find_binary(explicit):
    if explicit:
        return explicit
    env = os.environ.get("SLAM_BIN")
    if env:
        return env
    for rel in (".build/release/slam", ".build/debug/slam"):
        path = os.path.join(ROOT, rel)
        if os.path.exists(path):
            return path
    sys.exit("no slam binary: build one (swift build -c release --product slam) or pass --bin / SLAM_BIN")


def rfc3339(dt):
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


class Serve:
    def __init__(self, binary, sync):
        self.dir = tempfile.mkdtemp(prefix="slam-qbench-")
        args = [binary, "serve", "--db", os.path.join(self.dir, "slam.sqlite"),
                "--commands", "tcp://127.0.0.1:*", "--events", "tcp://127.0.0.1:*", "--sync", sync]
        self.args = args
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        m = re.match(r"SLAM ready commands=(\S+) events=(\S+)", line or "")
        if not m:
            err = self.proc.stderr.read() if self.proc.poll() is not None else ""
            self.proc.kill()
            sys.exit(f"slam serve did not start: {line!r} {err}")
        self.commands = m.group(1)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = "killed"
        shutil.rmtree(self.dir, ignore_errors=True)
        return code


class Pipeline:
    """Requests pipelined over a few DEALER sockets, at most `window` in flight per socket."""

    COMMANDS = {"RegisterUser", "CreateConcert", "ScheduleConcert", "JoinQueue", "LeaveQueue", "ChargePoints",
                "HoldSeats", "PayReservation", "CancelReservation"}

    def __init__(self, ctx, endpoint, sockets, window):
        self.socks = []
        for _ in range(sockets):
            s = ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            s.connect(endpoint)
            self.socks.append(s)
        self.window = window
        self.poller = zmq.Poller()
        for s in self.socks:
            self.poller.register(s, zmq.POLLIN)
        self.counter = 0

    def _send(self, sock, rid, type_, body, key):
        header = {"type": type_, "requestId": rid}
        if key:
            header["idempotencyKey"] = key
        sock.send_multipart([b"", b"SLAM/1", json.dumps(header).encode(), json.dumps(body).encode()])

    def run(self, requests, timeout_s=120):
        """requests: list of (type, body). Returns the replies' (ok, body) in the same order."""
        results = [None] * len(requests)
        pending = {}  # rid -> (index, sock, type, body, key)
        inflight = [0] * len(self.socks)
        nxt = 0
        done = 0
        last_progress = time.monotonic()
        while done < len(requests):
            for si, sock in enumerate(self.socks):
                while inflight[si] < self.window and nxt < len(requests):
                    type_, body = requests[nxt]
                    self.counter += 1
                    rid = f"r{self.counter}"
                    key = uuid.uuid4().hex if type_ in self.COMMANDS else None
                    self._send(sock, rid, type_, body, key)
                    pending[rid] = (nxt, si, type_, body, key)
                    inflight[si] += 1
                    nxt += 1
            events = dict(self.poller.poll(1000))
            if not events and time.monotonic() - last_progress > timeout_s:
                sys.exit(f"no reply for {timeout_s} s ({done}/{len(requests)} done)")
            for si, sock in enumerate(self.socks):
                if sock not in events:
                    continue
                while True:
                    try:
                        frames = sock.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    header = json.loads(frames[2])
                    body = json.loads(frames[3])
                    index, psi, type_, rbody, key = pending.pop(header["requestId"])
                    if not header["ok"] and body.get("code") == "OVERLOADED":
                        # Retry with the same key (PROTOCOL.md section 3).
                        self.counter += 1
                        rid = f"r{self.counter}"
                        self._send(self.socks[psi], rid, type_, rbody, key)
                        pending[rid] = (index, psi, type_, rbody, key)
                        continue
                    results[index] = (header["ok"], body)
                    inflight[psi] -= 1
                    done += 1
                    last_progress = time.monotonic()
        return results

    def must(self, requests):
        out = []
        for (type_, _), (ok, body) in zip(requests, self.run(requests)):
            if not ok:
                sys.exit(f"{type_} failed: {body}")
            out.append(body)
        return out


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, int(round(p / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def machine():
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = " load=%.1f/%.1f/%.1f" % os.getloadavg() if hasattr(os, "getloadavg") else ""
    return f"nproc={nproc} cpu={cpu or platform.processor()} {platform.system()} {platform.release()}{load}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--calls", type=int, default=10_000, help="GetQueueStatus calls measured")
    ap.add_argument("--leave", type=int, default=0, help="waiting tokens that leave before the measurement")
    ap.add_argument("--measure", default="status", choices=["status", "join"],
                    help="status: GetQueueStatus (a query); join: JoinQueue again by the token's user (a command "
                         "through the writer, answered with the live token and its place)")
    ap.add_argument("--sockets", type=int, default=4)
    ap.add_argument("--window", type=int, default=256, help="requests in flight per socket while loading")
    ap.add_argument("--sync", default="full", choices=["full", "normal"])
    ap.add_argument("--bin")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    random.seed(args.seed)

    binary = find_binary(args.bin)
    serve = Serve(binary, args.sync)
    ctx = zmq.Context()
    pipe = None
    try:
        pipe = Pipeline(ctx, serve.commands, args.sockets, args.window)
        now = datetime.now(timezone.utc)
        concert = pipe.must([("CreateConcert", {"name": "Queue bench", "artist": "Bench"})])[0]["concertId"]
        schedule = pipe.must([("ScheduleConcert", {
            "concertId": concert,
            "startsAt": rfc3339(now + timedelta(days=7)),
            "reservationOpensAt": rfc3339(now - timedelta(hours=1)),
            "reservationClosesAt": rfc3339(now + timedelta(days=1)),
            "sections": [{"name": "A", "seatCount": 100, "price": 1000}],
            "queue": {"maxActive": 1, "activeTtlSeconds": 86_400, "waitingTtlSeconds": 604_800},
        })])[0]["scheduleId"]

        t = time.monotonic()
        users = [b["userId"] for b in pipe.must([("RegisterUser", {"name": f"fan{i}"}) for i in range(args.users)])]
        t_reg = time.monotonic() - t
        t = time.monotonic()
        joins = pipe.must([("JoinQueue", {"userId": u, "scheduleId": schedule}) for u in users])
        t_join = time.monotonic() - t
        print(f"loaded: {args.users} users registered in {t_reg:.1f} s, joined in {t_join:.1f} s "
              f"({args.users / t_join:.0f} joins/s) over {args.sockets} sockets", flush=True)

        # The line in join order: the replies' `ahead` (nobody left or was admitted since).
        active = [b["tokenId"] for b in joins if b["status"] == "ACTIVE"]
        waiting = sorted(((b["ahead"], b["tokenId"], u) for b, u in zip(joins, users) if b["status"] == "WAITING"))
        if len(active) != 1 or [a for a, _, _ in waiting] != list(range(len(waiting))):
            sys.exit(f"join replies are not a FIFO line: {len(active)} active, aheads not 0..{len(waiting) - 1}")

        if args.leave:
            leaving = set(random.sample(range(len(waiting) - 1), min(args.leave, len(waiting) - 1)))
            pipe.must([("LeaveQueue", {"userId": u, "tokenId": tok})
                       for i, (_, tok, u) in enumerate(waiting) if i in leaving])
            waiting = [w for i, w in enumerate(waiting) if i not in leaving]
            print(f"{len(leaving)} waiting tokens left the line", flush=True)
        expected = {tok: i for i, (_, tok, _) in enumerate(waiting)}

        # Tokens spread evenly across the line, the first and the last included.
        n = args.calls
        line = [tok for _, tok, _ in waiting]
        picks = [line[(i * (len(line) - 1)) // max(1, n - 1)] for i in range(n)]
        picks[-1] = line[-1]
        user_of = {tok: u for _, tok, u in waiting}

        # Correctness on a sample first (pipelined): ahead is exact.
        sample = picks[:: max(1, n // 500)] + [line[-1]]
        for tok, body in zip(sample, pipe.must([("GetQueueStatus", {"tokenId": tok}) for tok in sample])):
            if body["status"] != "WAITING" or body["ahead"] != expected[tok]:
                sys.exit(f"GetQueueStatus {tok}: {body}, expected WAITING ahead {expected[tok]}")

        # The measurement: one request in flight, on one DEALER socket.
        sock = pipe.socks[0]
        lat, answers = [], []
        for i, tok in enumerate(picks):
            rid = f"q{i}"
            if args.measure == "join":
                header_out = {"type": "JoinQueue", "requestId": rid, "idempotencyKey": f"again-{uuid.uuid4().hex}"}
                body_out = {"userId": user_of[tok], "scheduleId": schedule}
            else:
                header_out, body_out = {"type": "GetQueueStatus", "requestId": rid}, {"tokenId": tok}
            t0 = time.perf_counter_ns()
            sock.send_multipart([b"", b"SLAM/1", json.dumps(header_out).encode(), json.dumps(body_out).encode()])
            while True:
                frames = sock.recv_multipart()
                header = json.loads(frames[2])
                if header.get("requestId") == rid:
                    break
            lat.append((time.perf_counter_ns() - t0) / 1e6)
            if not header["ok"]:
                sys.exit(f"{header_out['type']} failed: {frames[3]!r}")
            answers.append(frames[3])
        # Every timed answer exact too (checked after the timing, so it costs the timing nothing).
        for tok, raw in zip(picks, answers):
            body = json.loads(raw)
            if body["status"] != "WAITING" or body["ahead"] != expected[tok] or body["tokenId"] != tok:
                sys.exit(f"{args.measure} {tok}: {body}, expected WAITING ahead {expected[tok]}")
        # Front and back of the line apart: with no scan they cost the same.
        tenth = max(1, n // 10)
        front, back = sorted(lat[:tenth]), sorted(lat[-tenth:])
        lat.sort()
        what = "JoinQueue again" if args.measure == "join" else "GetQueueStatus"
        print(f"{what}, {len(line)} tokens waiting ({args.leave} left), {n} calls one at a time "
              f"(ahead 0..{len(line) - 1}, last included):")
        print(f"  p50 {percentile(lat, 50):.3f} ms  p99 {percentile(lat, 99):.3f} ms  "
              f"p99.9 {percentile(lat, 99.9):.3f} ms  max {lat[-1]:.3f} ms  mean {sum(lat) / len(lat):.3f} ms")
        print(f"  front tenth of the line p50 {percentile(front, 50):.3f} ms p99 {percentile(front, 99):.3f} ms; "
              f"back tenth p50 {percentile(back, 50):.3f} ms p99 {percentile(back, 99):.3f} ms")
        print(f"machine: {machine()}")
        print(f"server: {' '.join(os.path.relpath(a, ROOT) if a.startswith(ROOT) else a for a in serve.args)}")
        print(f"client: python {platform.python_version()}, pyzmq {zmq.__version__}, libzmq {zmq.zmq_version()}")
    finally:
        for sock in (pipe.socks if pipe else []):
            sock.close(0)
        ctx.term()
        code = serve.stop()
        if code != 0:
            print(f"slam serve exited {code}", file=sys.stderr)


if __name__ == "__main__":
    main()
