"""Subscribers, outside in (PROTOCOL.md section 7, DESIGN.md invariant 6).

A plain pyzmq SUB socket and the `slam subscribe` process (JSON lines on its stdout) both get every
event of a scripted session, in order, with contiguous `seq`, each header valid against
Schemas/json/event-header.json and each body against Schemas/json/events/<type>.json; and
`slam subscribe` killed with SIGKILL and restarted with its checkpoint file continues exactly
where it stopped.

    SLAM_BIN=$PWD/.build/debug/slam python -m pytest -q Tests/contract/test_events.py

It reuses test_contract.py's server fixture (a `slam serve` of this module's own, on
tcp://127.0.0.1:* ports read back from its ready line) and helpers. No test sleeps: every wait
polls with a timeout that is only a safety net.
"""

from __future__ import annotations

import fcntl
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import zmq
import zmq.utils.monitor

sys.path.insert(0, str(Path(__file__).resolve().parent))
import slam_schemas as S  # noqa: E402
from test_contract import (  # noqa: E402,F401  (fixtures are used by name)
    EVENT_CATEGORY, _binary, assert_no_floats, ctx, head_seq, hold, new_concert, new_schedule,
    new_user, ok, read_events, recv_published, server, sock, strict_json, wait_heartbeat,
)

WAIT_S = 60  # safety net for a loaded machine, never a synchronization


# ---------------------------------------------------------------------------------------------
# A scripted session
# ---------------------------------------------------------------------------------------------

def scripted_session(sock) -> None:
    """Users and points, a concert and schedules, holds, a payment, a release, a cancellation
    with refund, a sell-out and a reopening, and a waiting-queue join."""
    alice = new_user(sock, "alice", points=50_000)
    bob = new_user(sock, "bob", points=20_000)
    schedule = new_schedule(sock)
    r1 = hold(sock, alice, schedule, [1, 2])["reservationId"]
    ok(sock, "PayReservation", {"userId": alice, "reservationId": r1})
    r2 = hold(sock, bob, schedule, [3])["reservationId"]
    ok(sock, "CancelReservation", {"userId": bob, "reservationId": r2})  # released
    ok(sock, "CancelReservation", {"userId": alice, "reservationId": r1})  # refunded
    small = new_schedule(sock, sections=[{"name": "A", "seatCount": 2, "price": 500}])
    r3 = hold(sock, bob, small, [1, 2])["reservationId"]  # sold out
    ok(sock, "PayReservation", {"userId": bob, "reservationId": r3})
    ok(sock, "CancelReservation", {"userId": bob, "reservationId": r3})  # reopened
    queued = new_schedule(sock, new_concert(sock, "Queued", "Band"), queue={"maxActive": 10})
    ok(sock, "JoinQueue", {"userId": alice, "scheduleId": queued})


SESSION_TYPES = {"UserRegistered", "PointsCharged", "PointsUsed", "PointsRefunded", "ConcertCreated", "ConcertScheduled",
                 "ScheduleSoldOut", "ScheduleReopened", "SeatsHeld", "ReservationConfirmed", "HoldReleased",
                 "ReservationCancelled", "QueueJoined", "QueueTokenActivated"}


def register_many(sock, n: int) -> None:
    """n RegisterUser commands pipelined on one DEALER (bounded in flight), every reply checked."""
    in_flight: set[str] = set()

    def receive_one():
        if not sock.poll(WAIT_S * 1000, zmq.POLLIN):
            pytest.fail(f"no reply within {WAIT_S} s")
        frames = sock.recv_multipart()
        header = json.loads(frames[2])
        assert header["ok"], frames[3]
        in_flight.discard(header["requestId"])

    for i in range(n):
        rid = uuid.uuid4().hex
        hdr = {"type": "RegisterUser", "requestId": rid, "idempotencyKey": str(uuid.uuid4())}
        sock.send_multipart([b"", b"SLAM/1", json.dumps(hdr).encode(), json.dumps({"name": f"bulk {i}"}).encode()])
        in_flight.add(rid)
        while len(in_flight) >= 200:
            receive_one()
    while in_flight:
        receive_one()


def store_events(sock, after_seq: int, upto: int) -> list[dict]:
    """The ground truth: the store's events in (after_seq, upto] through ReadEvents, page by page.
    (Unlike test_contract.read_events it does not validate every page against the schemas: the
    subscribers' copies are validated, and compared with these.)"""
    out: list[dict] = []
    while after_seq < upto:
        rid = uuid.uuid4().hex
        sock.send_multipart([b"", b"SLAM/1", json.dumps({"type": "ReadEvents", "requestId": rid}).encode(),
                             json.dumps({"afterSeq": after_seq, "limit": 1000}).encode()])
        while True:
            if not sock.poll(WAIT_S * 1000, zmq.POLLIN):
                pytest.fail(f"no ReadEvents reply within {WAIT_S} s")
            frames = sock.recv_multipart()
            header = strict_json(frames[2], "reply header")
            if header.get("requestId") == rid:
                break
        assert header["ok"], frames[3]
        page = strict_json(frames[3], "ReadEvents reply")["events"]
        assert page, f"ReadEvents after {after_seq} is empty, below {upto}"
        out.extend(e for e in page if e["header"]["seq"] <= upto)
        after_seq = page[-1]["header"]["seq"]
    return out


# ---------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------

def validate_event(topic: str, header: dict, body: dict) -> None:
    S.validate("event-header.json", header)
    S.validate(f"events/{header['type']}.json", body)
    assert topic == f"{EVENT_CATEGORY[header['type']]}.{header['type']}", f"topic {topic!r} does not match {header}"
    assert_no_floats(header, "event header")
    assert_no_floats(body, "event body")


def expect_same_events(got: list[dict], truth: list[dict], what: str) -> None:
    """got (events as {topic, header, body}) are exactly truth's, once each, in order."""
    got_seqs = [e["header"]["seq"] for e in got]
    truth_seqs = [e["header"]["seq"] for e in truth]
    assert got_seqs == truth_seqs, f"{what}: seqs {got_seqs[:20]}… differ from the store's {truth_seqs[:20]}…"
    for g, t in zip(got, truth):
        assert g == t, f"{what}: event {g['header']['seq']} differs from ReadEvents': {g} vs {t}"


def assert_contiguous(seqs: list[int], first: int, last: int, what: str) -> None:
    assert seqs == list(range(first, last + 1)), f"{what}: not every seq from {first} to {last} once, in order: {seqs}"


# ---------------------------------------------------------------------------------------------
# `slam subscribe` as a subprocess
# ---------------------------------------------------------------------------------------------

_STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_subscriber_left_running():
    """A test that fails before it stops its `slam subscribe` must not leave it running (failed
    runs of a new test left two following dead servers)."""
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class SubscribeProcess:
    """`slam subscribe …`; its stdout lines are pumped into a queue by a thread, so the process
    never blocks on a full pipe."""

    def __init__(self, server, tmp: Path, *args: str, events: str | None = None):
        self.stderr_path = tmp / f"subscribe-{uuid.uuid4().hex[:8]}.err"
        argv = [str(_binary()), "subscribe", "--server", server.commands, "--events", events or server.events, *args]
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        _STARTED.append(self.proc)
        self.lines: "queue.Queue[bytes | None]" = queue.Queue()
        self.events: list[dict] = []
        self.ended = False
        self.pump = threading.Thread(target=self._pump, daemon=True)
        self.pump.start()

    def _pump(self):
        for raw in self.proc.stdout:
            self.lines.put(raw)
        self.lines.put(None)

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def _take(self, timeout: float) -> bool:
        """Parses and checks the next line into self.events; False at the end of the output."""
        try:
            raw = self.lines.get(timeout=timeout)
        except queue.Empty:
            return True
        if raw is None:
            self.ended = True
            return False
        assert raw.endswith(b"\n"), f"a line must end with a newline: {raw[:200]!r}"
        event = strict_json(raw, "a `slam subscribe` line")
        assert set(event) == {"topic", "header", "body"}, f"a line is {{topic, header, body}}: {event}"
        validate_event(event["topic"], event["header"], event["body"])
        self.events.append(event)
        return True

    def read_until(self, predicate, what: str) -> None:
        """Reads lines until predicate(self.events) holds."""
        give_up = time.monotonic() + WAIT_S
        while not predicate(self.events):
            if self.ended or time.monotonic() > give_up:
                pytest.fail(f"`slam subscribe` did not deliver {what} within {WAIT_S} s "
                            f"(exit {self.proc.poll()}); got {len(self.events)} events; stderr:\n{self.stderr()}")
            self._take(timeout=0.5)

    def drain(self) -> None:
        """After the process ended: every line it wrote."""
        while self._take(timeout=WAIT_S):
            pass

    def stop(self, sig=signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"`slam subscribe` did not exit within {WAIT_S} s of {sig!r}; stderr:\n{self.stderr()}")
        self.pump.join(timeout=WAIT_S)
        self.drain()
        return rc


def seqs_of(events: list[dict]) -> list[int]:
    return [e["header"]["seq"] for e in events]


def last_seq_at_least(n: int):
    return lambda events: bool(events) and events[-1]["header"]["seq"] >= n


def read_checkpoint(path: Path) -> dict:
    return json.loads(path.read_text())


def wait_checkpoint(path: Path, seq: int) -> dict:
    give_up = time.monotonic() + WAIT_S
    while True:
        try:
            cp = read_checkpoint(path)
            if cp["seq"] >= seq:
                return cp
        except (OSError, ValueError):
            pass  # not written yet (it is replaced atomically: never half-written)
        if time.monotonic() > give_up:
            pytest.fail(f"the checkpoint {path} did not reach seq {seq} within {WAIT_S} s")


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------

def test_pyzmq_sub_and_slam_subscribe_get_every_event_of_a_session(server, ctx, sock, tmp_path):
    head0 = head_seq(sock)
    stats = ok(sock, "GetStats", {})

    # A plain SUB socket, live once a heartbeat has come through.
    sub = ctx.socket(zmq.SUB)
    sub.linger = 0
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(server.events)
    # `slam subscribe`, all categories, from a hand-written checkpoint (exactly after head0);
    # another for one category, from the first event.
    cp = tmp_path / "all.checkpoint"
    cp.write_text(json.dumps({"seq": head0}))
    everything = SubscribeProcess(server, tmp_path, "--checkpoint", str(cp))
    reservations = SubscribeProcess(server, tmp_path, "--category", "reservation", "--from-start")
    try:
        wait_heartbeat(sub)
        scripted_session(sock)
        head1 = head_seq(sock)
        truth, _ = read_events(sock, head0)
        truth = [e for e in truth if e["header"]["seq"] <= head1]  # a later sweep may add more
        assert seqs_of(truth) == list(range(head0 + 1, head1 + 1))
        assert SESSION_TYPES <= {e["header"]["type"] for e in truth}

        # pyzmq: every event once, in order (nothing is lost on a live, fast subscriber).
        published: list[dict] = []
        give_up = time.monotonic() + WAIT_S
        while not published or published[-1]["header"]["seq"] < head1:
            assert time.monotonic() < give_up, f"the SUB socket did not get seq {head1} within {WAIT_S} s"
            topic, header, body = recv_published(sub, "a published event")
            if topic == "$heartbeat":
                assert header["storeId"] == stats["storeId"]
                continue
            validate_event(topic, header, body)
            published.append({"topic": topic, "header": header, "body": body})
        assert_contiguous(seqs_of(published), head0 + 1, head1, "pyzmq SUB")
        expect_same_events(published, truth, "pyzmq SUB")

        # slam subscribe: the same, as JSON lines.
        everything.read_until(last_seq_at_least(head1), f"seq {head1}")
        assert_contiguous(seqs_of(everything.events), head0 + 1, head1, "slam subscribe")
        expect_same_events(everything.events, truth, "slam subscribe")
        assert wait_checkpoint(cp, head1) == {"storeId": stats["storeId"], "seq": head1}

        # slam subscribe --category reservation --from-start: its category, from categorySeq 1.
        category_truth, _ = read_events(sock, 0, category="reservation")
        last = category_truth[-1]["header"]["seq"]
        reservations.read_until(last_seq_at_least(last), f"reservation event {last}")
        assert all(e["topic"].startswith("reservation.") for e in reservations.events)
        cseqs = [e["header"]["categorySeq"] for e in reservations.events]
        assert cseqs == list(range(1, len(cseqs) + 1)), f"categorySeq not contiguous from 1: {cseqs}"
        expect_same_events(reservations.events, category_truth, "slam subscribe --category reservation")
    finally:
        sub.close(linger=0)
        rc_all = everything.stop()
        rc_cat = reservations.stop()
    assert rc_all == 0, f"SIGTERM must exit 0, got {rc_all}: {everything.stderr()}"
    assert rc_cat == 0, f"SIGTERM must exit 0, got {rc_cat}: {reservations.stderr()}"
    # Nothing after the session: SIGTERM added no line.
    assert seqs_of(everything.events)[-1] == head1


def test_slam_subscribe_killed_and_restarted_with_its_checkpoint(server, sock, tmp_path):
    cp = tmp_path / "subscriber.checkpoint"
    head0 = head_seq(sock)
    cp.write_text(json.dumps({"seq": head0}))
    stats = ok(sock, "GetStats", {})

    # 1. Killed (SIGKILL) after it has written everything so far, with the stream going on.
    run1 = SubscribeProcess(server, tmp_path, "--checkpoint", str(cp))
    scripted_session(sock)
    head1 = head_seq(sock)
    run1.read_until(last_seq_at_least(head1), f"seq {head1}")
    wait_checkpoint(cp, head1)
    assert run1.stop(signal.SIGKILL) == -signal.SIGKILL
    assert read_checkpoint(cp) == {"storeId": stats["storeId"], "seq": head1}
    scripted_session(sock)  # while it is down

    # 2. Restarted with the checkpoint: it continues exactly after head1, through the events
    #    committed while it was down and those that follow.
    run2 = SubscribeProcess(server, tmp_path, "--checkpoint", str(cp))
    scripted_session(sock)
    head2 = head_seq(sock)
    run2.read_until(last_seq_at_least(head2), f"seq {head2}")

    # 3. Killed while it is busy: 1,500 events in a burst, SIGKILL once it has written 300 of
    #    them (each line costs it a write, an fsync and a rename, so it trails the burst); more
    #    events follow the kill.
    register_many(sock, 1500)
    run2.read_until(lambda evs: len(evs) >= (head2 - head1) + 300, "300 lines of the burst")
    assert run2.stop(signal.SIGKILL) == -signal.SIGKILL
    killed_at = read_checkpoint(cp)["seq"]
    written = seqs_of(run2.events)
    # The checkpoint is stored after each line: a kill leaves it at the last line written, or
    # (killed between the line and its checkpoint) at the one before.
    assert killed_at in (written[-1], written[-1] - 1), f"checkpoint {killed_at} vs last line {written[-1]}"
    register_many(sock, 200)
    head3 = head_seq(sock)
    assert killed_at < head3

    # 4. Restarted again, to the end.
    run3 = SubscribeProcess(server, tmp_path, "--checkpoint", str(cp), "--until-seq", str(head3))
    try:
        rc = run3.proc.wait(timeout=WAIT_S)
    except subprocess.TimeoutExpired:
        run3.proc.kill()
        pytest.fail(f"--until-seq {head3}: still running after {WAIT_S} s; stderr:\n{run3.stderr()}")
    run3.pump.join(timeout=WAIT_S)
    run3.drain()
    assert rc == 0, f"--until-seq must exit 0 once it has written seq {head3}: {run3.stderr()}"
    assert read_checkpoint(cp) == {"storeId": stats["storeId"], "seq": head3}

    truth = store_events(sock, head0, head3)
    # Across the runs, each event once, in order: what run 2 wrote up to its checkpoint, then
    # run 3 from the next one (a line written after the checkpoint was stored is written again).
    committed2 = [e for e in run2.events if e["header"]["seq"] <= killed_at]
    assert len(run2.events) - len(committed2) <= 1
    assert seqs_of(run3.events)[0] == killed_at + 1
    combined = run1.events + committed2 + run3.events
    assert_contiguous(seqs_of(combined), head0 + 1, head3, "runs 1, 2 and 3")
    expect_same_events(combined, truth, "runs 1, 2 and 3")


def test_slam_subscribe_output_file_is_its_own_checkpoint(server, sock, tmp_path):
    """`--output FILE`: SIGKILLed again and again while it writes, and restarted each time, the
    file ends with every event exactly once, in order (with `--checkpoint` and stdout a kill
    between a line and its checkpoint repeats that line). A torn last line, as a machine's crash
    could leave, is cut off; a file whose last line is of another category, a file that does not
    end with a subscriber's line, and a file another subscriber is writing are refused; a new
    file starts at the first event."""
    out = tmp_path / "events.jsonl"
    register_many(sock, 3000)
    head = head_seq(sock)
    argv = [str(_binary()), "subscribe", "--server", server.commands, "--events", server.events,
            "--output", str(out), "--from-start"]
    kills = 0
    for _ in range(12):
        size = out.stat().st_size if out.exists() else 0
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _STARTED.append(proc)
        give_up = time.monotonic() + WAIT_S
        # Killed as soon as it has written something more (polling the file: it is mid-stream).
        while (out.stat().st_size if out.exists() else 0) <= size and proc.poll() is None:
            assert time.monotonic() < give_up, "`slam subscribe --output` wrote nothing"
            time.sleep(0.001)
        proc.kill()
        proc.wait(timeout=WAIT_S)
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
        kills += 1
        if out.read_bytes().endswith(b"\n") and json.loads(out.read_bytes().splitlines()[-1])["header"]["seq"] >= head:
            break
    with open(out, "ab") as f:
        f.write(b'{"topic":"user.UserRegis')  # a torn last line
    done = subprocess.run(argv[:-1] + ["--until-seq", str(head)], capture_output=True, text=True, timeout=WAIT_S)
    assert done.returncode == 0, done.stderr
    lines = out.read_bytes().split(b"\n")
    assert lines[-1] == b"", "the file ends with a complete line"
    events = [strict_json(line, "an --output line") for line in lines[:-1]]
    assert kills >= 1
    assert_contiguous(seqs_of(events), 1, head, f"--output across {kills} kills")
    expect_same_events(events, store_events(sock, 0, head), "--output")

    other = subprocess.run(argv[:-1] + ["--category", "reservation", "--until-seq", str(head)],
                           capture_output=True, text=True, timeout=WAIT_S)
    assert other.returncode == 1 and "not reservation" in other.stderr, other.stderr
    both = subprocess.run(argv + ["--checkpoint", str(tmp_path / "cp")], capture_output=True, text=True, timeout=WAIT_S)
    assert both.returncode == 64 and "--checkpoint" in both.stderr, both.stderr

    # Another subscriber writing the file (its lock held here): refused, nothing appended.
    size = out.stat().st_size
    with open(out, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        busy = subprocess.run(argv[:-1] + ["--until-seq", str(head)], capture_output=True, text=True, timeout=WAIT_S)
    assert busy.returncode == 1 and "being written by another" in busy.stderr, busy.stderr
    assert out.stat().st_size == size
    # Not a subscriber's file: neither cut nor used.
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"hello\nworld")
    refused = subprocess.run(argv[:-1][:-2] + ["--output", str(notes), "--until-seq", str(head)],
                             capture_output=True, text=True, timeout=WAIT_S)
    assert refused.returncode == 1 and "does not end with a line of slam subscribe" in refused.stderr, refused.stderr
    assert notes.read_bytes() == b"hello\nworld"
    # A new file, without --from-start: from the first event (a file still empty at a kill would
    # otherwise hold no position, and its restart would skip what came between).
    fresh = tmp_path / "fresh.jsonl"
    new = subprocess.run(argv[:-3] + ["--output", str(fresh), "--until-seq", str(head)],
                         capture_output=True, text=True, timeout=WAIT_S)
    assert new.returncode == 0, new.stderr
    assert [json.loads(line)["header"]["seq"] for line in fresh.read_bytes().splitlines()] == list(range(1, head + 1))


def test_slam_subscribe_starts_at_the_head_without_a_checkpoint(server, sock, tmp_path):
    """Neither a checkpoint file nor --from-start: only new events; with a new checkpoint file
    the starting point is stored at once, so a restart misses nothing committed in between."""
    cp = tmp_path / "new.checkpoint"
    head0 = head_seq(sock)
    run = SubscribeProcess(server, tmp_path, "--checkpoint", str(cp))
    start = wait_checkpoint(cp, head0)["seq"]  # written at start, before any event
    assert start >= head0
    user = new_user(sock, "after start")
    head1 = head_seq(sock)
    run.read_until(last_seq_at_least(head1), f"seq {head1}")
    assert run.stop() == 0
    assert seqs_of(run.events) == list(range(start + 1, head1 + 1))
    assert any(e["body"].get("userId") == user for e in run.events)


def test_slam_subscribe_says_when_the_events_endpoint_is_silent_and_reads_meanwhile(server, sock, tmp_path):
    """A wrong --events (nothing publishes there: no event, not even the heartbeat that comes
    every second) used to deliver the first catch-up and then nothing, saying nothing (audit). Now,
    after 3 s of silence, it says so once on stderr and reads through ReadEvents every second."""
    nowhere = f"ipc://{tmp_path}/nobody.sock"
    new_user(sock, "before the start")
    run = SubscribeProcess(server, tmp_path, "--from-start", events=nowhere)
    head0 = head_seq(sock)
    run.read_until(last_seq_at_least(head0), f"seq {head0}")  # the first catch-up, as before
    user = new_user(sock, "after the catch-up")
    head1 = head_seq(sock)
    run.read_until(last_seq_at_least(head1), f"seq {head1}")  # only the silence's reads bring it
    assert run.stop() == 0
    assert seqs_of(run.events) == list(range(1, head1 + 1))
    assert any(e["body"].get("userId") == user for e in run.events)
    said = [line for line in run.stderr().splitlines() if "nothing from" in line]
    assert len(said) == 1, run.stderr()
    assert nowhere in said[0] and "ReadEvents" in said[0], said[0]


@pytest.mark.parametrize("checkpoint_kind", ["checkpoint", "output"])
def test_slam_subscribe_exits_1_on_a_checkpoint_above_the_head(server, sock, tmp_path, checkpoint_kind):
    """A checkpoint above the store's head, with the store's own `storeId` (a store restored from
    an older copy keeps it): `ReadEvents` after it returns no events and a lower `headSeq`.
    Waiting would wait for ever, and the next events would take seqs the checkpoint already
    counted, so `slam subscribe` exits 1, saying so, and writes nothing (Schemas/README.md 32)."""
    stats = ok(sock, "GetStats", {})
    new_user(sock, "before")
    head = head_seq(sock)
    ahead = {"storeId": stats["storeId"], "seq": head + 10}
    if checkpoint_kind == "checkpoint":
        path = tmp_path / "ahead.checkpoint"
        path.write_text(json.dumps(ahead))
    else:
        # An output file whose last line is an event past the head.
        path = tmp_path / "ahead.jsonl"
        event = store_events(sock, head - 1, head)[-1]
        event["header"] = {**event["header"], "seq": head + 10, "position": head + 10}
        path.write_text(json.dumps(event) + "\n")
    before = path.read_bytes()
    run = SubscribeProcess(server, tmp_path, f"--{checkpoint_kind}", str(path))
    try:
        rc = run.proc.wait(timeout=WAIT_S)
    except subprocess.TimeoutExpired:
        run.stop(signal.SIGKILL)
        pytest.fail(f"`slam subscribe` waited on a checkpoint above the head; stderr:\n{run.stderr()}")
    run.pump.join(timeout=WAIT_S)
    run.drain()
    assert rc == 1, run.stderr()
    assert f"behind this subscriber's checkpoint ({head + 10})" in run.stderr(), run.stderr()
    assert run.events == [] and path.read_bytes() == before


@pytest.mark.parametrize("option,endpoint", [("--server", "127.0.0.1:5555"), ("--events", "tcp://127.0.0.1:99999"),
                                             ("--server", "inproc://x")])
def test_slam_subscribe_refuses_an_endpoint_it_cannot_use(option, endpoint):
    """An endpoint without its transport (`127.0.0.1:5555`, `tcp://` forgotten) never connects;
    starting at the head, `slam subscribe` used to ask for it again and again, at full speed,
    saying nothing; a port above 65535 libzmq takes modulo 65536; an inproc:// endpoint no other
    process can reach. Each is refused before anything runs: exit 64, naming the option."""
    run = subprocess.run([str(_binary()), "subscribe", option, endpoint],
                         capture_output=True, text=True, timeout=WAIT_S)
    assert run.returncode == 64, run.stderr
    assert option in run.stderr and endpoint in run.stderr and run.stdout == ""


def test_slam_subscribe_exits_1_on_a_server_that_does_not_speak_slam(ctx, tmp_path):
    """A ROUTER that answers every request with something that is not a SLAM/1 reply: starting
    at the head, `slam subscribe` used to take it for "no answer yet" and ask again and again.
    It exits 1, saying what was wrong with the reply."""
    endpoint = f"ipc://{tmp_path}/not-slam"
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.bind(endpoint)
    stop = threading.Event()

    def answer():
        while not stop.is_set():
            if router.poll(50):
                frames = router.recv_multipart()
                router.send_multipart([frames[0], b"", b"not a SLAM reply"])

    t = threading.Thread(target=answer, daemon=True)
    t.start()
    try:
        run = subprocess.run([str(_binary()), "subscribe", "--server", endpoint, "--events", f"ipc://{tmp_path}/ev"],
                             capture_output=True, text=True, timeout=WAIT_S)
    finally:
        stop.set()
        t.join()
        router.close()
    assert run.returncode == 1, run.stderr
    assert "malformed reply" in run.stderr, run.stderr


def test_a_subscription_longer_than_any_topic_closes_the_subscriber(server, ctx):
    """The events port reads nothing from a subscriber but its subscriptions, and no topic is
    longer than 32 bytes: a subscription frame over 256 bytes closes the connection (README,
    Limits: what clients can make the server hold), where one frame announced as 4 GiB used to be read into memory
    as it came. A subscriber with short subscriptions on another connection is not disturbed."""
    bad = ctx.socket(zmq.SUB)
    bad.linger = 0
    monitor = bad.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED)
    good = ctx.socket(zmq.SUB)
    good.linger = 0
    try:
        bad.setsockopt(zmq.SUBSCRIBE, b"reservation." + b"x" * 300)
        bad.connect(server.events)
        good.setsockopt(zmq.SUBSCRIBE, b"$heartbeat")
        good.connect(server.events)
        seen = []
        deadline = time.monotonic() + WAIT_S
        while zmq.EVENT_DISCONNECTED not in seen:
            left = deadline - time.monotonic()
            assert left > 0 and monitor.poll(int(left * 1000)), f"the server never closed the subscriber: {seen}"
            seen.append(zmq.utils.monitor.recv_monitor_message(monitor)["event"])
        # It was connected (the handshake went through) before the server dropped it.
        assert seen[0] == zmq.EVENT_HANDSHAKE_SUCCEEDED
        wait_heartbeat(good)
    finally:
        bad.disable_monitor()
        monitor.close(linger=0)
        bad.close(linger=0)
        good.close(linger=0)
