"""`slam bench` against a fake server (pyzmq) that answers what the bench asks, as the test
wants it: late, to show that a server slower than the offered rate shows up as latency and not
as a slower client (coordinated omission), the commands due while no user was free sent late
with their latency counted from when they were due, and commands/s counting only the replies
within the run; or `OVERLOADED` at first, to show that the command is sent again with its key
and body and counted once; or not at all (or late) at first, to show that a request without a
reply is sent again, the same bytes, after `--reply-timeout`."""
import heapq
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_contract import _binary  # noqa: E402

SLAM = str(_binary())

DELAY = 0.1  # seconds, for the rush's commands; set-up and queries are answered at once


def result_for(t, n):
    """The body a fake server answers a request of type `t` with, ok (`n`: requests so far):
    the ids and fields the bench reads."""
    return {"GetStats": {"storeId": "fake", "position": 0, "headSeq": 0, "publishedSeq": 0, "commands": n,
                         "synchronous": "FULL", "groupCommit": True, "walBytes": 0, "walPeakBytes": 0,
                         "repliesDropped": 0},
            "CreateConcert": {"concertId": "con_1"},
            "ScheduleConcert": {"scheduleId": "sch_1"},
            "RegisterUser": {"userId": f"usr_{n}"},
            "ChargePoints": {"balance": 2000},
            "HoldSeats": {"reservationId": f"res_{n}", "status": "HELD"},
            }.get(t, {"status": "CONFIRMED"})


def ok_header(h, n):
    """An ok reply's header to request header `h` (a command's with `replayed` and a position)."""
    reply_header = {"requestId": h["requestId"], "ok": True}
    if "idempotencyKey" in h:
        reply_header.update(replayed=False, position=n)
    return reply_header


def reply_frames(peer, reply_header, result):
    return [peer, b"", b"SLAM/1", json.dumps(reply_header).encode(), json.dumps(result).encode()]


def tries_by_key(tries):
    """The `tries` a fake server collected, by idempotency key, in order."""
    by_key = {}
    for at, header, body, peer in tries:
        by_key.setdefault(json.loads(header)["idempotencyKey"], []).append((at, header, body, peer))
    return by_key


def fake_server(router, stop, delay=DELAY, overload=(), seen=None, first_hold=None, unanswered=(), first_late=None,
                tries=None, unanswered_tries=1):
    """Answers every request ok with the ids the bench reads; the rush's commands `delay` late.
    The first try of each key of a type in `overload` is answered OVERLOADED; `seen` collects
    (key, body) of every try of those types. The first `unanswered_tries` tries of each key of a
    type in `unanswered` get no reply, or, with `first_late`, one that many seconds late (after
    the bench has sent it again); `tries` collects (time, header bytes, body bytes, connection)
    of every try of those types."""
    n = 0
    tried = {}
    due = []  # (time, n, frames)
    refused = set()
    poller = zmq.Poller()
    poller.register(router, zmq.POLLIN)
    while not stop.is_set():
        timeout = 20 if not due else max(0, min(20, int((due[0][0] - time.monotonic()) * 1000)))
        if poller.poll(timeout):
            peer, empty, proto, header, body = router.recv_multipart()
            h = json.loads(header)
            n += 1
            t = h["type"]
            held_back = False  # one of the first `unanswered_tries` tries of an `unanswered` type
            if t in unanswered:
                tries.append((time.monotonic(), header, body, peer))
                tried[h["idempotencyKey"]] = tried.get(h["idempotencyKey"], 0) + 1
                held_back = tried[h["idempotencyKey"]] <= unanswered_tries
                if held_back and first_late is None:
                    continue
            if t == "HoldSeats" and first_hold is not None:
                first_hold.set()
            result = result_for(t, n)
            reply_header = ok_header(h, n)
            if t in overload:
                seen.append((h["idempotencyKey"], body))
                if h["idempotencyKey"] not in refused:
                    refused.add(h["idempotencyKey"])
                    reply_header = {"requestId": h["requestId"], "ok": False, "replayed": False}
                    result = {"code": "OVERLOADED", "message": "the command queue is full"}
            frames = reply_frames(peer, reply_header, result)
            late = t in ("HoldSeats", "PayReservation", "CancelReservation")
            wait = (delay if late else 0) + (first_late if held_back else 0)
            heapq.heappush(due, (time.monotonic() + wait, n, frames))
        while due and due[0][0] <= time.monotonic():
            router.send_multipart(heapq.heappop(due)[2])


def run_against_fake(args, during=None, server_fn=None, verify=False, code=0, cpus=None, **server):
    """Runs `slam bench` (no invariant check, unless `verify`; on `cpus` only, as `taskset`
    would, when given) against the fake server (`fake_server`, or `server_fn` with the same
    arguments); returns its JSON report and its output, the bench having exited with `code`.
    `during(process)` runs while it does."""
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    pub = ctx.socket(zmq.PUB)
    router.setsockopt(zmq.LINGER, 0)
    pub.setsockopt(zmq.LINGER, 0)
    commands_port = router.bind_to_random_port("tcp://127.0.0.1")
    events_port = pub.bind_to_random_port("tcp://127.0.0.1")
    stop = threading.Event()
    if server.pop("with_pub", False):
        server["pub"] = pub
    thread = threading.Thread(target=server_fn or fake_server, args=(router, stop), kwargs=server, daemon=True)
    thread.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "report.json")
            proc = subprocess.Popen([SLAM, "bench", "--server", f"tcp://127.0.0.1:{commands_port}",
                                     "--events", f"tcp://127.0.0.1:{events_port}",
                                     *([] if verify else ["--no-verify"]), "--json", out, *args],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    preexec_fn=None if cpus is None else lambda: os.sched_setaffinity(0, cpus))
            if during:
                during(proc)
            stdout, stderr = proc.communicate(timeout=120)
            assert proc.returncode == code, stdout + stderr
            with open(out) as f:
                return json.load(f), stdout
    finally:
        stop.set()
        thread.join()
        router.close()
        pub.close()
        ctx.term()


def test_a_command_refused_overloaded_is_sent_again_with_its_key_and_body_and_counted_once():
    seen = []
    report, stdout = run_against_fake(["--seats", "100", "--users", "20", "--rate", "200", "--duration", "1"],
                                      delay=0, overload=("HoldSeats",), seen=seen)
    o = report["outcomes"]
    tries = {}
    for key, body in seen:
        tries.setdefault(key, []).append(body)
    # every HoldSeats refused once, then sent again: the same bytes under the same key
    assert tries and all(len(b) == 2 and b[0] == b[1] for b in tries.values() if len(b) > 1), tries
    assert sum(len(b) == 2 for b in tries.values()) == o["overloaded"] == o["resent"] > 0, (o, len(tries))
    # one reply and one latency per command, not per try
    assert o["replies"] == o["sent"] and o["noReply"] == 0, o
    assert report["latency"]["count"] == o["replies"], report
    # each HoldSeats answered ok after its retry
    assert o["holdsWon"] == sum(len(b) == 2 for b in tries.values()), (o, tries)
    # The fake server publishes nothing: no lag was measured, and none is given (it used to be
    # printed and written as 0 ms, which reads as a measurement).
    assert report["eventsReceived"] == 0 and report["publishLag"]["count"] == 0, report
    assert all(report["publishLag"][k] is None for k in ("p50Ms", "p99Ms", "maxMs")), report["publishLag"]
    assert "publish lag  none  (0 events received" in stdout, stdout


def test_a_server_slower_than_the_offered_rate_shows_up_as_latency():
    report, stdout = run_against_fake(["--seats", "100", "--users", "2", "--threads", "1", "--connections", "1",
                                       "--rate", "100", "--duration", "2"])
    assert "offered rate not met" in stdout, stdout
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
    assert report["repliesInRun"] + o["repliesAfterEnd"] == o["replies"], report
    assert abs(report["commandsPerSecond"] - report["repliesInRun"] / report["seconds"]) <= 0.5, report
    # every slot is counted once: sent (on time or late) or never sent, and each in the latency
    assert report["latency"]["count"] == o["replies"] + o["notSent"], report


def test_slots_the_bench_did_not_reach_before_the_end_are_counted_never_sent():
    """The bench stopped (SIGSTOP) from half a second into a 2 s run until after its end: the
    slots due meanwhile were neither sent on time nor at all, and each is counted once."""
    started = threading.Event()

    def stall(proc):
        assert started.wait(60), "the run did not start"
        time.sleep(0.5)  # the stimulus (a stall from 0.5 s to 3 s into the run), not a wait for a result
        proc.send_signal(signal.SIGSTOP)
        time.sleep(2.5)
        proc.send_signal(signal.SIGCONT)

    report, stdout = run_against_fake(["--seats", "100", "--users", "50", "--threads", "1", "--connections", "1",
                                       "--rate", "100", "--duration", "2"], during=stall, delay=0, first_hold=started)
    o = report["outcomes"]
    assert report["offeredRateMissed"] is True
    assert o["sent"] + o["notSent"] == 200, o
    # the slots due during the stall were not reached: never sent, and not for want of a user
    assert o["notSent"] >= o["unreached"] > 0, o
    late = int(re.search(r"offered rate not met: (-?\d+) commands sent late", stdout).group(1))
    assert late == o["starved"] - (o["notSent"] - o["unreached"]) >= 0, stdout
    assert f"{o['unreached']} due before the end but not reached by the bench in time" in stdout, stdout
    if o["starved"] == 0:
        assert "the bench's own thread woke late" in stdout and "use more --users" not in stdout, stdout
    assert report["latency"]["count"] == o["replies"] + o["notSent"], report


def test_a_request_without_a_reply_is_sent_again_the_same_bytes_after_the_reply_timeout():
    tries = []
    report, stdout = run_against_fake(["--seats", "100", "--users", "20", "--rate", "100", "--duration", "1",
                                       "--reply-timeout", "0.3"],
                                      delay=0, unanswered=("PayReservation",), tries=tries)
    o = report["outcomes"]
    by_key = tries_by_key(tries)
    # each payment's first try went unanswered; the bench sent the same bytes again (the same
    # request id, key and body) on the same connection, once, and took the reply to that
    assert by_key and all(len(t) == 2 and t[0][1:] == t[1][1:] for t in by_key.values()), by_key
    assert o["timedOut"] == len(by_key) == o["paid"] > 0, (o, len(by_key))
    assert o["duplicateReplies"] == 0 and o["otherErrors"] == 0 and o["noReply"] == 0, o
    # one reply and one latency per command, the payments' at least the timeout
    assert o["replies"] == o["sent"], o
    assert report["latency"]["count"] == o["replies"], report
    assert report["latency"]["maxMs"] >= 300, report["latency"]
    assert report["replyTimeoutSeconds"] == 0.3, report
    assert f"no reply within 0.3 s {o['timedOut']} (sent again" in stdout, stdout


def test_a_late_reply_to_a_request_sent_again_is_not_counted_twice():
    tries = []
    report, _ = run_against_fake(["--seats", "100", "--users", "20", "--rate", "100", "--duration", "1",
                                  "--reply-timeout", "0.2"],
                                 delay=0, unanswered=("PayReservation",), first_late=0.5, tries=tries)
    o = report["outcomes"]
    keys = tries_by_key(tries).keys()
    # both tries of each payment answered: the second reply ignored, not an error (those of the
    # last half second come after the bench has stopped listening)
    assert o["timedOut"] == len(keys) == o["paid"] > 0, (o, len(keys))
    assert 0 < o["duplicateReplies"] <= o["timedOut"], o
    assert o["otherErrors"] == 0 and o["noReply"] == 0 and o["replies"] == o["sent"], o
    assert report["latency"]["count"] == o["replies"], report


def test_a_request_sent_again_waits_longer_each_time_and_every_late_reply_is_expected():
    tries = []
    # tries at 0, 0.3 and 0.9 s (the second wait twice the first); the first two answered 1.2 s
    # late, after the third was
    report, _ = run_against_fake(["--seats", "1000", "--users", "200", "--rate", "100", "--duration", "3",
                                  "--reply-timeout", "0.3"],
                                 delay=0, unanswered=("PayReservation",), unanswered_tries=2, first_late=1.2, tries=tries)
    o = report["outcomes"]
    by_key = tries_by_key(tries)
    # three tries of each payment, the same bytes on the same connection; the second wait about
    # twice the first
    assert by_key and all(len(t) == 3 and t[0][1:] == t[1][1:] == t[2][1:] for t in by_key.values()), by_key
    # (times as the fake server read them: a lower bound with room for a loaded machine's delays)
    assert all(t[2][0] - t[1][0] >= 0.45 for t in by_key.values()), [(t[1][0] - t[0][0], t[2][0] - t[1][0]) for t in by_key.values()]
    assert o["timedOut"] == 2 * len(by_key) == 2 * o["paid"] > 0, (o, len(by_key))
    # up to two late replies to each: none an error, none counted as the command's reply again
    assert 0 < o["duplicateReplies"] <= o["timedOut"], o
    assert o["duplicateReplies"] > len(by_key), o
    assert o["otherErrors"] == 0 and o["noReply"] == 0 and o["replies"] == o["sent"], o
    assert report["latency"]["count"] == o["replies"], report


def test_in_the_closed_loop_a_request_is_sent_again_on_its_own_connection():
    tries = []
    report, _ = run_against_fake(["--seats", "100", "--users", "40", "--max", "--connections", "4", "--in-flight", "2",
                                  "--threads", "1", "--duration", "1", "--reply-timeout", "0.2"],
                                 delay=0, unanswered=("PayReservation",), tries=tries)
    o = report["outcomes"]
    by_key = tries_by_key(tries)
    # the closed loop sends on the connection a reply freed: the resend goes on that one too,
    # so that its reply frees the slot where it was taken
    assert by_key and all(len(t) == 2 and t[0][1:] == t[1][1:] for t in by_key.values() if len(t) > 1), by_key
    assert len({t[0][3] for t in by_key.values()}) > 1, "payments went on more than one connection"
    assert o["timedOut"] >= 1 and o["otherErrors"] == 0, o


def test_the_open_loop_offers_rate_times_duration_commands():
    # 3,000/s over two threads is a slot every 666.67 µs on each: the slots are counted, not
    # found by adding up the interval (which lands just short of the end and makes one more)
    report, _ = run_against_fake(["--seats", "1000", "--users", "200", "--rate", "3000", "--duration", "1"], delay=0)
    o = report["outcomes"]
    assert o["sent"] + o["notSent"] == 3000, o


def test_the_report_says_which_cpus_the_bench_may_run_on():
    """The bench's placement is part of how a figure was made (`taskset -c 0 slam bench`, README
    Performance): the report gives the CPUs it started with and how many are online."""
    args = ["--seats", "100", "--users", "20", "--rate", "200", "--duration", "0.3"]
    mine = sorted(os.sched_getaffinity(0))
    online = os.sysconf("SC_NPROCESSORS_ONLN")
    report, stdout = run_against_fake(args, delay=0)
    assert report["benchCPUs"] == mine and report["onlineCPUs"] == online, report
    if len(mine) == online:
        assert f"bench        may run on any of the {online} CPUs online" in stdout, stdout
    if online < 2:
        return  # one CPU is all of them: no subset to pin to
    report, stdout = run_against_fake(args, delay=0, cpus={mine[0]})
    assert report["benchCPUs"] == [mine[0]] and report["onlineCPUs"] == online, report
    assert f"bench        may run on CPU {mine[0]} of the {online} online" in stdout, stdout
    if online > 2 and len(mine) >= 2:
        report, stdout = run_against_fake(args, delay=0, cpus=set(mine[:2]))
        assert f"bench        may run on CPUs {mine[0]},{mine[1]} of the {online} online" in stdout, stdout


def requests(router, stop):
    """Each request a fake server's ROUTER receives until `stop` is set: (peer, header bytes,
    body bytes)."""
    poller = zmq.Poller()
    poller.register(router, zmq.POLLIN)
    while not stop.is_set():
        if poller.poll(20):
            peer, _empty, _proto, header, body = router.recv_multipart()
            yield peer, header, body


def mute_at_the_check(router, stop):
    """Answers every request ok, with the ids the bench reads, until the first GetUser (the
    bench's closing check); from then on, nothing."""
    n = 0
    muted = False
    for peer, header, body in requests(router, stop):
        h = json.loads(header)
        n += 1
        muted = muted or h["type"] == "GetUser"
        if not muted:
            router.send_multipart(reply_frames(peer, ok_header(h, n), result_for(h["type"], n)))


def test_a_server_that_stops_answering_at_the_invariant_check_still_gets_a_report():
    """A server that answers the run and the GetStats after it, then none of the closing
    check's queries (30 s, the check's wait): the report of what was measured comes all the
    same, with the server's counts, saying the check could not be made through it; exit 2. It
    used to exit 2 with one line and no report."""
    report, stdout = run_against_fake(["--rate", "100", "--duration", "1", "--seats", "40", "--users", "20",
                                       "--connections", "2"],
                                      server_fn=mute_at_the_check, verify=True, code=2)
    assert "warning      the server stopped answering during the invariant check: " in stdout, stdout
    assert "missing what only the server can say: the invariants checked through it" in stdout, stdout
    assert "invariants   not checked through the server (see the warning above)" in stdout, stdout
    assert report["serverStoppedAnswering"] is True
    assert "invariant check" in report["serverStoppedAnsweringError"]
    assert report["invariants"]["checkedThroughServer"] is False and report["invariants"]["ok"] is True
    assert report["outcomes"]["replies"] == report["outcomes"]["sent"] > 0, report["outcomes"]
    assert "commandsExecuted" in report and "repliesDropped" in report


def rfc3339(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def late_expiries_server(router, stop, pub, restart):
    """Answers the rush ok, and the closing check with a store that passes it (no points, no
    reservation, no seat sold). For each HoldSeats it publishes a hold of the run's schedule and
    its HoldExpired recorded 2.5 s after its expiresAt: a server more than a second late, as
    one is when a restart records the overdue expiries at once. With `restart`, GetStats says so:
    its `batches`, counted from the process's start, go down after the first HoldSeats; and its
    `repliesDropped`, 3 before, is 10 after it (the new process dropped more than the old had).
    Its `commands` count from the store's creation, restart or not (10,000,000 before the run)."""
    n = 0
    seq = 0
    held = False
    for peer, header, body in requests(router, stop):
        h = json.loads(header)
        n += 1
        t = h["type"]
        result = {"GetUser": {"userId": "u", "name": "fan", "balance": 0},
                  "GetPointHistory": {"entries": []},
                  "ListReservations": {"reservations": []},
                  "GetSeatMap": {"scheduleId": "sch_1", "seats": []}}.get(t) or result_for(t, n)
        if t == "GetStats":
            restarted = restart and held
            result = dict(result, batches=5 if restarted else 100_000 + n, repliesDropped=10 if restarted else 3,
                          commands=10_000_000 + n)
        if t == "HoldSeats":
            held = True
            expires = int(time.time() * 1000) - 3000
            rid = f"res_{n}"
            hold = {"reservationId": rid, "userId": "u", "scheduleId": "sch_1", "seatNumbers": [1], "price": 70}
            for type_, occurred, extra in (("SeatsHeld", expires - 300_000, {"expiresAt": rfc3339(expires)}),
                                           ("HoldExpired", expires + 2500, {})):
                seq += 1
                pub.send_multipart([b"reservation." + type_.encode(),
                                    json.dumps({"seq": seq, "type": type_, "occurredAt": rfc3339(occurred)}).encode(),
                                    json.dumps(dict(hold, **extra)).encode()])
        router.send_multipart(reply_frames(peer, ok_header(h, n), result))


def test_late_expiries_are_not_violations_when_the_server_restarted_during_the_run():
    """DESIGN.md invariant 8 holds expiries to the second while the server runs; after a
    restart the overdue ones are recorded at once, late, and the bench cannot single those out.
    A restart seen during the run (GetStats `batches` went down) makes late expiries counted but
    not violations (exit 0, said on a warning line); without one, the same expiries are
    violations (exit 1). It used to call them violations either way."""
    args = ["--rate", "100", "--duration", "1.5", "--seats", "40", "--users", "20", "--connections", "2"]
    report, stdout = run_against_fake(args, server_fn=late_expiries_server, verify=True, with_pub=True, restart=True)
    assert "warning      the server restarted during the run" in stdout, stdout
    assert report["serverRestarted"] is True
    assert report["expiries"]["late"] >= 1 and report["expiries"]["maxLateMs"] == 2500, report["expiries"]
    assert report["invariants"]["ok"] is True, report["invariants"]
    # The new process's count, all of it: the old process's 3 are not taken off (they were); but
    # the store's count of commands only over the run, not since the store was created.
    assert report["repliesDropped"] == 10, report
    assert 0 < report["commandsExecuted"] < 10_000, report
    report, stdout = run_against_fake(args, server_fn=late_expiries_server, verify=True, code=1, with_pub=True,
                                      restart=False)
    assert report["serverRestarted"] is False and report["expiries"]["late"] >= 1, report
    assert report["repliesDropped"] == 0, report
    assert any("more than 1000 ms after their expiresAt" in v for v in report["invariants"]["violations"]), report
