"""`slam bench`'s open loop against a fake server (pyzmq) that answers the rush's commands 100 ms
late: two simulated users can then make about 20 commands a second, far below the 100 a second
offered. The bench must say the offered rate was not met, keep sending the commands that were
due (late, as users become free) and count their latency from when they were due, so the slow
server shows up as latency, not as a slower client (coordinated omission); and commands/s counts
only the replies that came within the run."""
import heapq
import json
import os
import subprocess
import tempfile
import threading
import time

import zmq

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SLAM = os.environ.get("SLAM_BIN", os.path.join(ROOT, ".build", "debug", "slam"))

DELAY = 0.1  # seconds, for the rush's commands; set-up and queries are answered at once


def fake_server(router, stop):
    """Answers every request ok with the ids the bench reads; the rush's commands DELAY late."""
    n = 0
    due = []  # (time, n, frames)
    poller = zmq.Poller()
    poller.register(router, zmq.POLLIN)
    while not stop.is_set():
        timeout = 20 if not due else max(0, min(20, int((due[0][0] - time.monotonic()) * 1000)))
        if poller.poll(timeout):
            peer, empty, proto, header, body = router.recv_multipart()
            h = json.loads(header)
            n += 1
            t = h["type"]
            result = {"GetStats": {"storeId": "fake", "position": 0, "headSeq": 0, "publishedSeq": 0, "commands": n,
                                   "synchronous": "FULL", "groupCommit": True, "walBytes": 0, "walPeakBytes": 0,
                                   "repliesDropped": 0},
                      "CreateConcert": {"concertId": "con_1"},
                      "ScheduleConcert": {"scheduleId": "sch_1"},
                      "RegisterUser": {"userId": f"usr_{n}"},
                      "ChargePoints": {"balance": 2000},
                      "HoldSeats": {"reservationId": f"res_{n}", "status": "HELD"},
                      }.get(t, {"status": "CONFIRMED"})
            reply_header = {"requestId": h["requestId"], "ok": True}
            if "idempotencyKey" in h:
                reply_header.update(replayed=False, position=n)
            frames = [peer, b"", b"SLAM/1", json.dumps(reply_header).encode(), json.dumps(result).encode()]
            late = t in ("HoldSeats", "PayReservation", "CancelReservation")
            heapq.heappush(due, (time.monotonic() + (DELAY if late else 0), n, frames))
        while due and due[0][0] <= time.monotonic():
            router.send_multipart(heapq.heappop(due)[2])


def test_a_server_slower_than_the_offered_rate_shows_up_as_latency():
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    pub = ctx.socket(zmq.PUB)
    router.setsockopt(zmq.LINGER, 0)
    pub.setsockopt(zmq.LINGER, 0)
    commands_port = router.bind_to_random_port("tcp://127.0.0.1")
    events_port = pub.bind_to_random_port("tcp://127.0.0.1")
    stop = threading.Event()
    thread = threading.Thread(target=fake_server, args=(router, stop), daemon=True)
    thread.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "slow.json")
            result = subprocess.run([SLAM, "bench", "--server", f"tcp://127.0.0.1:{commands_port}",
                                     "--events", f"tcp://127.0.0.1:{events_port}", "--seats", "100", "--users", "2",
                                     "--threads", "1", "--connections", "1", "--rate", "100", "--duration", "2",
                                     "--no-verify", "--json", out],
                                    capture_output=True, text=True, timeout=120)
            assert result.returncode == 0, result.stdout + result.stderr
            assert "offered rate not met" in result.stdout, result.stdout
            with open(out) as f:
                report = json.load(f)
    finally:
        stop.set()
        thread.join()
        router.close()
        pub.close()
        ctx.term()
    o = report["outcomes"]
    assert report["offeredRateMissed"] is True
    # 200 slots in 2 s; two users each one command per 100 ms make about 40 of them in the run,
    # the rest were due while both were waiting.
    assert o["starved"] > 100, o
    assert o["sent"] + o["notSent"] == 200, o
    assert o["noReply"] == 0, o
    # Commands due early and sent late waited for their turn: a latency of a second or more at
    # the tail, where the fake server's own delay is 0.1 s (dropping the late slots would leave
    # every latency at about 0.1 s).
    assert report["latency"]["maxMs"] > 1000, report["latency"]
    assert report["latency"]["p50Ms"] > 300, report["latency"]
    # Only the replies within the run count: at most about 20 commands a second were answered.
    assert report["commandsPerSecond"] <= 25, report
    assert report["commandsPerSecond"] * report["seconds"] + o["repliesAfterEnd"] == o["replies"], report
