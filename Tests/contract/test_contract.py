"""Outside-in contract test of the SLAM server (PROTOCOL.md + Schemas/json).

It starts the real `slam` binary, talks to it over ZeroMQ exactly as any other client would
(DEALER, REQ and SUB sockets), and validates every message it receives against the JSON Schemas
in Schemas/json. Nothing here knows Swift, the ids' format or the server's internals.

    pip install -r Tests/contract/requirements.txt
    swift build                                   # or set SLAM_BIN to the binary
    python -m pytest Tests/contract -q

Environment:
    SLAM_BIN   path of the slam executable (default: <repo>/.build/debug/slam)

The server runs with --hold-ttl 300, so nothing expires while the suite runs; no test sleeps.
Tests share one server (and store) but each creates its own users, concerts and schedules.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent))
import slam_schemas as S  # noqa: E402

PROTO = b"SLAM/1"
REPLY_TIMEOUT_MS = 10_000
READY_TIMEOUT_S = 60
SHUTDOWN_TIMEOUT_S = 30
HOLD_TTL_S = 300
SLACK = timedelta(seconds=3)  # clock tolerance for server-computed times (ms rounding, scheduling)
READY_RE = re.compile(r"^SLAM ready commands=(\S+) events=(\S+)\s*$")

INDEX = S.index()
COMMANDS = frozenset(INDEX["commands"])
QUERIES = frozenset(INDEX["queries"])
EVENT_CATEGORY: dict[str, str] = INDEX["eventCategories"]
# Rejections decided before the command is executed: no `position`, not recorded (PROTOCOL 3).
NOT_EXECUTED = frozenset({
    "BAD_REQUEST", "UNSUPPORTED_PROTOCOL", "UNKNOWN_TYPE", "PAYLOAD_TOO_LARGE",
    "IDEMPOTENCY_KEY_REQUIRED", "IDEMPOTENCY_KEY_REUSED", "DEADLINE_EXCEEDED", "OVERLOADED",
    "UNAUTHORIZED", "INTERNAL",
})
KST = timezone(timedelta(hours=9))
INT64_MAX = 9223372036854775807

# Idempotency keys this process has sent: a reply to a key never sent before cannot be a replay.
_SENT_KEYS: set[str] = set()


# ---------------------------------------------------------------------------------------------
# JSON, time
# ---------------------------------------------------------------------------------------------

def _reject_constant(name):
    raise ValueError(f"non-standard JSON constant {name}")


def _no_duplicate_keys(pairs):
    obj = {}
    for k, v in pairs:
        if k in obj:
            raise ValueError(f"duplicate key {k!r}")
        obj[k] = v
    return obj


def strict_json(data: bytes, what: str):
    """Parse server output strictly: UTF-8, standard JSON, no duplicate keys."""
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_reject_constant,
                          object_pairs_hook=_no_duplicate_keys)
    except (UnicodeDecodeError, ValueError) as e:
        pytest.fail(f"{what} is not strict UTF-8 JSON ({e}): {data[:300]!r}")


def assert_no_floats(value, where: str):
    """Every number on the wire is a JSON integer (PROTOCOL 2, Shapes)."""
    if isinstance(value, float):
        raise AssertionError(f"{where}: non-integer number {value!r}")
    if isinstance(value, dict):
        for k, v in value.items():
            assert_no_floats(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            assert_no_floats(v, f"{where}.{i}")


def now() -> datetime:
    return datetime.now(timezone.utc)


def ms(dt: datetime) -> datetime:
    return dt.replace(microsecond=dt.microsecond // 1000 * 1000)


def ts(dt: datetime) -> str:
    """The server's own format: UTC, milliseconds, Z."""
    dt = dt.astimezone(timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_ts(s: str) -> datetime:
    return datetime.fromisoformat(s)


def new_key() -> str:
    return str(uuid.uuid4())


def unknown_id(kind: str) -> str:
    return f"no-such-{kind}-{uuid.uuid4()}"


# ---------------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------------

@dataclass
class Server:
    proc: subprocess.Popen
    commands: str
    events: str
    stdout: "queue.Queue[str | None]"
    stderr_path: Path


def _binary() -> Path:
    default = S.REPO / ".build" / "debug" / "slam"
    return Path(os.environ.get("SLAM_BIN", str(default))).resolve()


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    binary = _binary()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        pytest.fail(f"slam binary not found at {binary} (build it, or set SLAM_BIN)")
    tmp = tmp_path_factory.mktemp("slam")
    stderr_path = tmp / "stderr.log"
    argv = [str(binary), "serve", "--db", str(tmp / "slam.sqlite"),
            "--commands", "tcp://127.0.0.1:*", "--events", "tcp://127.0.0.1:*",
            "--hold-ttl", str(HOLD_TTL_S)]
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)

    lines: "queue.Queue[str | None]" = queue.Queue()

    def pump():  # keeps draining stdout for the server's whole life, so it never blocks on it
        for raw in proc.stdout:
            lines.put(raw.decode("utf-8", "replace").rstrip("\r\n"))
        lines.put(None)

    threading.Thread(target=pump, name="slam-stdout", daemon=True).start()

    def stderr_tail() -> str:
        try:
            return stderr_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    seen: list[str] = []
    ready = None
    give_up = time.monotonic() + READY_TIMEOUT_S
    while ready is None:
        remaining = give_up - time.monotonic()
        if remaining <= 0:
            proc.kill()
            proc.wait()
            pytest.fail(f"no 'SLAM ready' line within {READY_TIMEOUT_S} s; stdout {seen!r}; stderr:\n{stderr_tail()}")
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            continue
        if line is None:
            rc = proc.wait()
            pytest.fail(f"slam exited ({rc}) before it was ready; stdout {seen!r}; stderr:\n{stderr_tail()}")
        seen.append(line)
        ready = READY_RE.match(line)

    commands, events = ready.group(1), ready.group(2)
    for ep in (commands, events):
        assert "*" not in ep, f"the ready line must give the bound endpoint, not the wildcard: {ep}"
    srv = Server(proc=proc, commands=commands, events=events, stdout=lines, stderr_path=stderr_path)
    yield srv

    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=SHUTDOWN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"slam did not exit within {SHUTDOWN_TIMEOUT_S} s of SIGTERM; stderr:\n{stderr_tail()}")
    assert rc == 0, f"slam exited with {rc} on SIGTERM; stderr:\n{stderr_tail()}"


@pytest.fixture(scope="session")
def ctx():
    c = zmq.Context()
    yield c
    c.destroy(linger=0)


@pytest.fixture
def sock(server, ctx):
    """A fresh DEALER connection per test."""
    assert server.proc.poll() is None, f"slam is not running (exit code {server.proc.returncode})"
    s = ctx.socket(zmq.DEALER)
    s.linger = 0
    s.connect(server.commands)
    yield s
    s.close(linger=0)


# ---------------------------------------------------------------------------------------------
# Requests and replies
# ---------------------------------------------------------------------------------------------

@dataclass
class Sent:
    type: str
    header: dict
    fresh_key: bool  # no key, or a key never sent before: the reply cannot be a replay


@dataclass
class Reply:
    header: dict
    body: dict
    frames: list = field(default_factory=list)


def encode_body(body) -> bytes:
    if body is None:
        return b"{}"
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def send_request(sock, type_: str, body=None, key: str | None = None, *, no_key: bool = False,
                 header: dict | None = None) -> Sent:
    hdr = {"type": type_, "requestId": uuid.uuid4().hex}
    fresh = True
    if type_ in COMMANDS and not no_key:
        if key is None:
            key = new_key()
        fresh = key not in _SENT_KEYS
        _SENT_KEYS.add(key)
        hdr["idempotencyKey"] = key
    if header:
        hdr.update(header)
    if not no_key:
        S.validate("request-header.json", hdr)  # the test's own well-formed requests follow the schema
    sock.send_multipart([b"", PROTO, json.dumps(hdr).encode("utf-8"), encode_body(body)])
    return Sent(type=type_, header=hdr, fresh_key=fresh)


def recv_frames(sock, what="a reply") -> list[bytes]:
    if not sock.poll(REPLY_TIMEOUT_MS, zmq.POLLIN):
        pytest.fail(f"no {what} within {REPLY_TIMEOUT_MS} ms")
    return sock.recv_multipart()


def check_reply(frames: list[bytes], type_: str | None) -> Reply:
    """Frames, header and body of any reply; the body against its type's schema or error.json."""
    assert len(frames) == 4, f"a reply has 4 frames, got {len(frames)}: {[f[:80] for f in frames]}"
    assert frames[0] == b"", f"frame 0 of a reply must be empty, got {frames[0][:80]!r}"
    assert frames[1] == PROTO, f"frame 1 of a reply must be SLAM/1, got {frames[1][:80]!r}"
    header = strict_json(frames[2], "reply header")
    body = strict_json(frames[3], "reply body")
    S.validate("reply-header.json", header)
    assert_no_floats(header, "header")
    assert_no_floats(body, "body")
    if header["ok"]:
        assert type_ in INDEX["replies"], f"ok reply to a request of type {type_!r}: {body}"
        S.validate(INDEX["replies"][type_], body)
    else:
        S.validate("error.json", body)
    return Reply(header=header, body=body, frames=frames)


def check_against_request(sent: Sent, r: Reply) -> None:
    h, b = r.header, r.body
    assert h.get("requestId") == sent.header["requestId"], f"requestId not echoed: {h}"
    if sent.type in COMMANDS:
        assert "replayed" in h, f"a reply to a command has `replayed`: {h} {b}"
        executed = h["ok"] or b["code"] not in NOT_EXECUTED
        if executed:
            assert type(h.get("position")) is int, f"a reply to an executed command has an integer position: {h}"
        if sent.fresh_key:
            assert h["replayed"] is False, f"a reply to a never-sent key cannot be a replay: {h}"


def call(sock, type_: str, body=None, key: str | None = None, *, no_key: bool = False,
         header: dict | None = None) -> tuple[dict, dict]:
    """One request, one validated reply: returns (header, body)."""
    sent = send_request(sock, type_, body, key, no_key=no_key, header=header)
    r = check_reply(recv_frames(sock, f"reply to {type_}"), type_)
    check_against_request(sent, r)
    return r.header, r.body


def as_json(body):
    if body is None:
        return {}
    if isinstance(body, (bytes, str)):
        return json.loads(body)
    return body


def ok(sock, type_: str, body=None, key: str | None = None, **kw) -> dict:
    if type_ in INDEX["requests"]:  # what the server accepts, the request schema accepts too
        S.validate(INDEX["requests"][type_], as_json(body))
    h, b = call(sock, type_, body, key, **kw)
    assert h["ok"] is True, f"{type_} {body!r} failed: {b}"
    return b


def err(sock, type_: str, body, code: str, key: str | None = None, **kw) -> dict:
    if code not in NOT_EXECUTED and type_ in INDEX["requests"]:
        # a business rejection comes after the BAD_REQUEST checks: the request itself is well-formed
        S.validate(INDEX["requests"][type_], as_json(body))
    h, b = call(sock, type_, body, key, **kw)
    assert h["ok"] is False, f"{type_} {body!r} should fail with {code}, got {b}"
    assert b["code"] == code, f"{type_} {body!r}: expected {code}, got {b}"
    return b


def raw_exchange(sock, frames: list[bytes], code: str) -> Reply:
    """Send raw frames; exactly one error reply; then the server still serves this connection."""
    sock.send_multipart(frames)
    r = check_reply(recv_frames(sock, "reply to a malformed request"), None)
    assert r.header["ok"] is False and r.body["code"] == code, f"expected {code}, got {r.header} {r.body}"
    still_serving(sock)
    return r


def still_serving(sock) -> dict:
    """A GetStats round trip; its reply must be the next message (no second reply to what came before)."""
    return ok(sock, "GetStats", {})


# ---------------------------------------------------------------------------------------------
# Domain helpers
# ---------------------------------------------------------------------------------------------

TWO_SECTIONS = [{"name": "R", "seatCount": 10, "price": 15000},
                {"name": "S", "seatCount": 20, "price": 10000}]


def new_user(sock, name: str = "fan", points: int = 0) -> str:
    user = ok(sock, "RegisterUser", {"name": name})
    if points:
        assert ok(sock, "ChargePoints", {"userId": user["userId"], "amount": points})["balance"] == points
    return user["userId"]


def new_concert(sock, name: str = "Winter Garden", artist: str = "IU") -> str:
    return ok(sock, "CreateConcert", {"name": name, "artist": artist})["concertId"]


def schedule_body(concert_id: str, *, sections=None, opens=timedelta(hours=-1), closes=timedelta(days=1),
                  starts=timedelta(days=2), **extra) -> dict:
    t = ms(now())
    body = {"concertId": concert_id,
            "startsAt": ts(t + starts),
            "reservationOpensAt": ts(t + opens),
            "reservationClosesAt": ts(t + closes),
            "sections": TWO_SECTIONS if sections is None else sections}
    body.update(extra)
    return body


def new_schedule(sock, concert_id: str | None = None, **kw) -> str:
    if concert_id is None:
        concert_id = new_concert(sock)
    body = schedule_body(concert_id, **kw)
    result = ok(sock, "ScheduleConcert", body)
    assert result["seatCount"] == sum(s["seatCount"] for s in body["sections"])
    return result["scheduleId"]


def hold(sock, user_id, schedule_id, seats, **extra) -> dict:
    return ok(sock, "HoldSeats", dict({"userId": user_id, "scheduleId": schedule_id, "seatNumbers": seats}, **extra))


def seat_map(sock, schedule_id) -> tuple[dict, dict[int, dict]]:
    m = ok(sock, "GetSeatMap", {"scheduleId": schedule_id})
    numbers = [s["number"] for s in m["seats"]]
    assert len(numbers) == len(set(numbers)), "a seat appears twice in the seat map"
    by_number = {s["number"]: s for s in m["seats"]}
    counts = {st: sum(1 for s in m["seats"] if s["status"] == st) for st in ("AVAILABLE", "HELD", "SOLD")}
    assert (m["available"], m["held"], m["sold"]) == (counts["AVAILABLE"], counts["HELD"], counts["SOLD"]), m
    return m, by_number


def assert_sorted_seats(seats):
    assert seats == sorted(seats), f"seatNumbers must be ascending: {seats}"


# ---------------------------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------------------------

def check_event(topic: str, header: dict, body: dict) -> None:
    S.validate("event-header.json", header)
    etype = header["type"]
    S.validate(INDEX["events"][etype], body)
    assert topic == f"{EVENT_CATEGORY[etype]}.{etype}", f"topic {topic!r} does not match type {etype}"
    assert_no_floats(header, "event header")
    assert_no_floats(body, "event body")


def read_events(sock, after_seq: int = 0, category: str | None = None, limit: int = 1000):
    """Every event after after_seq (paging with ReadEvents); returns (events, headSeq of the last page)."""
    out: list[dict] = []
    while True:
        body = {"afterSeq": after_seq, "limit": limit}
        if category:
            body["category"] = category
        page = ok(sock, "ReadEvents", body)
        for ev in page["events"]:
            check_event(ev["topic"], ev["header"], ev["body"])
            assert ev["header"]["seq"] > after_seq, f"ReadEvents returned seq {ev['header']['seq']} ≤ afterSeq {after_seq}"
            after_seq = ev["header"]["seq"]
        assert len(page["events"]) <= limit
        out.extend(page["events"])
        if len(page["events"]) < limit:
            return out, page["headSeq"]


def check_event_stream(events: list[dict], head: int) -> None:
    """A full read from seq 0: the invariants of PROTOCOL section 7."""
    seqs = [e["header"]["seq"] for e in events]
    assert seqs == list(range(1, len(events) + 1)), "seq must be contiguous from 1"
    assert seqs[-1] == head, f"a complete read ends at headSeq ({seqs[-1]} vs {head})"
    assert len({e["header"]["storeId"] for e in events}) == 1, "one storeId per store"
    positions = [e["header"]["position"] for e in events]
    assert len(set(positions)) == len(positions), "every event has its own position"
    per_category: dict[str, list[int]] = {}
    per_stream: dict[str, list[int]] = {}
    for e in events:
        h = e["header"]
        per_category.setdefault(EVENT_CATEGORY[h["type"]], []).append(h["categorySeq"])
        per_stream.setdefault(h["streamId"], []).append(h["streamVersion"])
    for cat, cseqs in per_category.items():
        assert cseqs == list(range(1, len(cseqs) + 1)), f"categorySeq of {cat} must be contiguous from 1: {cseqs}"
    for stream, versions in per_stream.items():
        assert versions == list(range(versions[0], versions[0] + len(versions))), \
            f"streamVersion of {stream} must grow by one per event: {versions}"


def by_cause(events: list[dict], key: str) -> list[dict]:
    return [e for e in events if e["header"]["causationId"] == key]


def types_of(events: list[dict]) -> list[str]:
    return [e["header"]["type"] for e in events]


def events_since(sock, after_seq: int) -> list[dict]:
    evs, _ = read_events(sock, after_seq)
    return evs


def head_seq(sock) -> int:
    return ok(sock, "GetStats", {})["headSeq"]


# =============================================================================================
# The full flow
# =============================================================================================

def test_full_flow(sock):
    t0 = now()
    keys: dict[str, str] = {}
    positions: dict[str, int] = {}

    def command(step: str, type_: str, body: dict, **kw) -> dict:
        keys[step] = new_key()
        h, b = call(sock, type_, body, keys[step], **kw)
        assert h["ok"], f"{step}: {b}"
        assert h["replayed"] is False
        positions[step] = h["position"]
        return b

    # -- user and points
    user = command("register", "RegisterUser", {"name": "  Alice Kim  "})
    uid = user["userId"]
    assert user == {"userId": uid, "name": "Alice Kim", "balance": 0}
    assert command("charge", "ChargePoints", {"userId": uid, "amount": 50000}) == {"userId": uid, "balance": 50000}

    # -- concert and schedule (times relative to now, given with several offsets and precisions)
    cid = command("concert", "CreateConcert", {"name": "Winter Garden", "artist": "IU"})["concertId"]
    base = now()
    opens = (base - timedelta(hours=1)).replace(microsecond=0)
    closes = ms(base + timedelta(days=1))
    starts = ms(base + timedelta(days=2))
    sched_body = {
        "concertId": cid,
        "startsAt": starts.astimezone(KST).isoformat(timespec="milliseconds"),      # +09:00
        "reservationOpensAt": opens.strftime("%Y-%m-%dT%H:%M:%SZ"),                  # no fraction
        "reservationClosesAt": ts(closes),
        "sections": TWO_SECTIONS,
    }
    S.validate("requests/ScheduleConcert.json", sched_body)
    deadline = int((now() + timedelta(minutes=5)).timestamp() * 1000)
    sched = command("schedule", "ScheduleConcert", sched_body, header={"deadline": deadline})
    sid = sched["scheduleId"]
    assert sched == {"scheduleId": sid, "seatCount": 30}
    listing = {"scheduleId": sid, "concertId": cid, "name": "Winter Garden", "artist": "IU",
               "startsAt": ts(starts), "reservationOpensAt": ts(opens), "reservationClosesAt": ts(closes),
               "seatCount": 30, "available": 30}

    # -- seat map before
    m, seats = seat_map(sock, sid)
    assert m["scheduleId"] == sid
    assert (m["available"], m["held"], m["sold"]) == (30, 0, 0)
    assert sorted(seats) == list(range(1, 31))
    for n in range(1, 31):
        assert seats[n] == {"number": n, "section": "R" if n <= 10 else "S",
                            "price": 15000 if n <= 10 else 10000, "status": "AVAILABLE"}
    section_s = ok(sock, "GetSeatMap", {"scheduleId": sid, "section": "S"})
    assert sorted(s["number"] for s in section_s["seats"]) == list(range(11, 31))
    # names are stored trimmed (section 2), and so is the filter: " S " finds section "S"
    assert ok(sock, "GetSeatMap", {"scheduleId": sid, "section": " S\t"}) == section_s
    # a section filter follows the names' rule: an unknown section has no seats, an empty or
    # blank name, or one over 100 characters, is BAD_REQUEST (the schema says the same)
    unknown = ok(sock, "GetSeatMap", {"scheduleId": sid, "section": "T"})
    assert unknown["seats"] == [] and (unknown["available"], unknown["held"], unknown["sold"]) == (0, 0, 0), unknown
    for bad in ["", " \t", "x" * 101]:
        assert S.errors("requests/GetSeatMap.json", {"scheduleId": sid, "section": bad})
        e = err(sock, "GetSeatMap", {"scheduleId": sid, "section": bad}, "BAD_REQUEST")
        assert e["details"] == {"field": "section"}

    # -- ListSchedules, with and without filters
    all_schedules = ok(sock, "ListSchedules", {})["schedules"]
    assert listing in all_schedules
    assert ok(sock, "ListSchedules", {"concertId": cid})["schedules"] == [listing]
    inside = now().astimezone(KST).isoformat(timespec="microseconds")
    assert listing in ok(sock, "ListSchedules", {"openAt": inside})["schedules"]
    assert ok(sock, "ListSchedules", {"concertId": cid, "openAt": ts(now())})["schedules"] == [listing]
    assert ok(sock, "ListSchedules", {"concertId": cid, "openAt": ts(base + timedelta(days=3))})["schedules"] == []
    assert ok(sock, "ListSchedules", {"concertId": cid, "openAt": ts(base - timedelta(hours=2))})["schedules"] == []
    assert listing not in ok(sock, "ListSchedules", {"openAt": ts(base - timedelta(hours=2))})["schedules"]

    # -- hold
    before = now()
    held = command("hold", "HoldSeats", {"userId": uid, "scheduleId": sid, "seatNumbers": [12, 3]})
    after = now()
    rid = held["reservationId"]
    assert held["scheduleId"] == sid
    assert held["seatNumbers"] == [3, 12]
    assert held["price"] == 25000
    expires = parse_ts(held["expiresAt"])
    assert before + timedelta(seconds=HOLD_TTL_S) - SLACK <= expires <= after + timedelta(seconds=HOLD_TTL_S) + SLACK

    m, seats = seat_map(sock, sid)
    assert (m["available"], m["held"], m["sold"]) == (28, 2, 0)
    assert seats[3]["status"] == seats[12]["status"] == "HELD"
    assert ok(sock, "ListSchedules", {"concertId": cid})["schedules"] == [dict(listing, available=28)]

    res = ok(sock, "GetReservation", {"reservationId": rid})
    view = {"reservationId": rid, "userId": uid, "scheduleId": sid, "seatNumbers": [3, 12], "price": 25000,
            "status": "HELD", "expiresAt": held["expiresAt"], "createdAt": res["createdAt"]}
    assert res == view
    created = parse_ts(res["createdAt"])
    assert before - SLACK <= created <= after + SLACK
    assert abs((expires - created) - timedelta(seconds=HOLD_TTL_S)) <= timedelta(seconds=1)

    # -- pay
    paid = command("pay", "PayReservation", {"userId": uid, "reservationId": rid})
    assert paid == {"reservationId": rid, "status": "CONFIRMED", "price": 25000, "balance": 25000}
    m, seats = seat_map(sock, sid)
    assert (m["available"], m["held"], m["sold"]) == (28, 0, 2)
    assert seats[3]["status"] == seats[12]["status"] == "SOLD"
    assert ok(sock, "GetUser", {"userId": uid}) == {"userId": uid, "name": "Alice Kim", "balance": 25000}
    history = ok(sock, "GetPointHistory", {"userId": uid})["entries"]
    assert [(e["n"], e["kind"], e["amount"], e["balance"], e.get("reservationId")) for e in history] == [
        (2, "USE", 25000, 25000, rid), (1, "CHARGE", 50000, 50000, None)]
    confirmed = dict(view, status="CONFIRMED")
    assert ok(sock, "GetReservation", {"reservationId": rid}) == confirmed
    assert ok(sock, "ListReservations", {"userId": uid}) == {"reservations": [confirmed]}
    err(sock, "PayReservation", {"userId": uid, "reservationId": rid}, "INVALID_STATE")

    # -- cancel with refund
    cancelled = command("cancel", "CancelReservation", {"userId": uid, "reservationId": rid})
    assert cancelled == {"reservationId": rid, "status": "CANCELLED", "refunded": 25000}
    assert ok(sock, "GetUser", {"userId": uid})["balance"] == 50000
    history = ok(sock, "GetPointHistory", {"userId": uid})["entries"]
    assert [(e["n"], e["kind"], e["amount"], e["balance"], e.get("reservationId")) for e in history] == [
        (3, "REFUND", 25000, 50000, rid), (2, "USE", 25000, 25000, rid), (1, "CHARGE", 50000, 50000, None)]
    for e in history:
        assert t0 - SLACK <= parse_ts(e["at"]) <= now() + SLACK
    assert [e["n"] for e in ok(sock, "GetPointHistory", {"userId": uid, "limit": 1})["entries"]] == [3]
    assert [e["n"] for e in ok(sock, "GetPointHistory", {"userId": uid, "before": 3})["entries"]] == [2, 1]
    assert [e["n"] for e in ok(sock, "GetPointHistory", {"userId": uid, "before": 2, "limit": 1})["entries"]] == [1]
    assert ok(sock, "GetPointHistory", {"userId": uid, "limit": 5000})["entries"] == history
    m, _ = seat_map(sock, sid)
    assert (m["available"], m["held"], m["sold"]) == (30, 0, 0)
    assert ok(sock, "GetReservation", {"reservationId": rid}) == dict(view, status="CANCELLED")
    err(sock, "CancelReservation", {"userId": uid, "reservationId": rid}, "INVALID_STATE")
    err(sock, "PayReservation", {"userId": uid, "reservationId": rid}, "INVALID_STATE")
    assert ok(sock, "GetUser", {"userId": uid})["balance"] == 50000

    # -- the event log
    events, head = read_events(sock)
    check_event_stream(events, head)
    expected_types = {
        "register": ["UserRegistered"], "charge": ["PointsCharged"], "concert": ["ConcertCreated"],
        "schedule": ["ConcertScheduled"], "hold": ["SeatsHeld"],
        "pay": ["PointsUsed", "ReservationConfirmed"], "cancel": ["PointsRefunded", "ReservationCancelled"],
    }
    caused = {step: by_cause(events, keys[step]) for step in expected_types}
    for step, want in expected_types.items():
        assert sorted(types_of(caused[step])) == want, f"{step}: events {types_of(caused[step])}"
        last = max(e["header"]["position"] for e in caused[step])
        assert positions[step] == last, f"{step}: reply position {positions[step]} is not its last event's {last}"
        for e in caused[step]:
            assert t0 - SLACK <= parse_ts(e["header"]["occurredAt"]) <= now() + SLACK
    ordered = [positions[s] for s in expected_types]
    assert ordered == sorted(ordered), f"positions of successive commands grow: {ordered}"

    def body(step, etype):
        (e,) = [e for e in caused[step] if e["header"]["type"] == etype]
        return e["body"]

    res_ids = {"reservationId": rid, "userId": uid, "scheduleId": sid, "seatNumbers": [3, 12], "price": 25000}
    assert body("register", "UserRegistered") == {"userId": uid, "name": "Alice Kim"}
    assert body("charge", "PointsCharged") == {"userId": uid, "amount": 50000, "balance": 50000}
    assert body("concert", "ConcertCreated") == {"concertId": cid, "name": "Winter Garden", "artist": "IU"}
    assert body("schedule", "ConcertScheduled") == {
        "scheduleId": sid, "concertId": cid, "startsAt": ts(starts), "reservationOpensAt": ts(opens),
        "reservationClosesAt": ts(closes), "seatCount": 30, "sections": TWO_SECTIONS, "maxSeatsPerUser": 4}
    assert body("hold", "SeatsHeld") == dict(res_ids, expiresAt=held["expiresAt"])
    assert body("pay", "PointsUsed") == {"userId": uid, "amount": 25000, "balance": 25000, "reservationId": rid}
    assert body("pay", "ReservationConfirmed") == res_ids
    assert body("cancel", "ReservationCancelled") == dict(res_ids, refunded=25000)
    assert body("cancel", "PointsRefunded") == {"userId": uid, "amount": 25000, "balance": 50000, "reservationId": rid}

    # -- stats
    stats = ok(sock, "GetStats", {})
    assert stats["storeId"] == events[0]["header"]["storeId"]
    assert stats["position"] >= max(positions.values())
    assert stats["position"] >= max(e["header"]["position"] for e in events)
    assert stats["headSeq"] >= head
    assert stats["publishedSeq"] <= stats["headSeq"]
    assert stats["commands"] >= len(positions)
    new_user(sock, "one more")
    after = ok(sock, "GetStats", {})
    assert after["commands"] >= stats["commands"] + 1
    # users and reservations (SLAM's additions) count what there is, kept as commands change it.
    assert after["users"] == stats["users"] + 1 and after["reservations"] == stats["reservations"]
    ok(sock, "HoldSeats", {"userId": uid, "scheduleId": sid, "seatNumbers": [7]})
    assert ok(sock, "GetStats", {})["reservations"] == stats["reservations"] + 1


def test_read_events_filters_and_limits(sock):
    uid = new_user(sock, "reader", points=700)
    ok(sock, "ChargePoints", {"userId": uid, "amount": 300})
    everything, head = read_events(sock)
    check_event_stream(everything, head)
    assert head >= 3

    # category: the same events as the full log, filtered; categorySeq contiguous from 1
    for category in ("user", "wallet", "concert", "queue", "reservation"):
        only, _ = read_events(sock, 0, category=category)
        only = [e for e in only if e["header"]["seq"] <= head]  # ignore anything appended since
        assert only == [e for e in everything if e["topic"].startswith(category + ".")], category
        assert [e["header"]["categorySeq"] for e in only] == list(range(1, len(only) + 1))

    # afterSeq counts global seq, with or without category
    page = ok(sock, "ReadEvents", {"afterSeq": 1, "limit": 2})
    assert [e["header"]["seq"] for e in page["events"]] == [2, 3]
    assert page["events"] == everything[1:3]
    wallet = [e for e in everything if e["topic"].startswith("wallet.")]
    if len(wallet) >= 2:
        after = wallet[0]["header"]["seq"]
        page = ok(sock, "ReadEvents", {"afterSeq": after, "category": "wallet", "limit": 1})
        assert page["events"] == [wallet[1]]
    assert ok(sock, "ReadEvents", {"afterSeq": head + 1000})["events"] == []
    # a limit above the maximum is lowered, not refused
    assert len(ok(sock, "ReadEvents", {"afterSeq": 0, "limit": 5000})["events"]) <= 1000
    err(sock, "ReadEvents", {"afterSeq": 0, "limit": 0}, "BAD_REQUEST")


def test_sold_out_release_and_reopen(sock):
    sid = new_schedule(sock, sections=[{"name": "GA", "seatCount": 2, "price": 1000}])
    uid = new_user(sock, "sellout", points=10000)
    start = head_seq(sock)

    k_hold = new_key()
    first = ok(sock, "HoldSeats", {"userId": uid, "scheduleId": sid, "seatNumbers": [2, 1]}, k_hold)
    assert first["seatNumbers"] == [1, 2] and first["price"] == 2000
    k_release = new_key()
    released = ok(sock, "CancelReservation", {"userId": uid, "reservationId": first["reservationId"]}, k_release)
    assert released == {"reservationId": first["reservationId"], "status": "RELEASED", "refunded": 0}
    assert ok(sock, "GetReservation", {"reservationId": first["reservationId"]})["status"] == "RELEASED"
    err(sock, "PayReservation", {"userId": uid, "reservationId": first["reservationId"]}, "INVALID_STATE")
    err(sock, "CancelReservation", {"userId": uid, "reservationId": first["reservationId"]}, "INVALID_STATE")
    m, _ = seat_map(sock, sid)
    assert (m["available"], m["held"], m["sold"]) == (2, 0, 0)
    # a hold does not touch the wallet, nor does releasing it
    assert [e["kind"] for e in ok(sock, "GetPointHistory", {"userId": uid})["entries"]] == ["CHARGE"]

    second = hold(sock, uid, sid, [1])
    third = hold(sock, uid, sid, [2])
    listed = ok(sock, "ListReservations", {"userId": uid})["reservations"]
    assert [r["reservationId"] for r in listed] == [third["reservationId"], second["reservationId"],
                                                     first["reservationId"]], "newest first"
    assert [r["status"] for r in listed] == ["HELD", "HELD", "RELEASED"]
    for r in listed:
        assert_sorted_seats(r["seatNumbers"])
    assert [r["reservationId"] for r in ok(sock, "ListReservations", {"userId": uid, "limit": 1})["reservations"]] \
        == [third["reservationId"]]
    assert len(ok(sock, "ListReservations", {"userId": uid, "limit": 5000})["reservations"]) == 3
    err(sock, "ListReservations", {"userId": uid, "limit": 0}, "BAD_REQUEST")

    events = events_since(sock, start)
    assert sorted(types_of(by_cause(events, k_hold))) == ["ScheduleSoldOut", "SeatsHeld"]
    assert sorted(types_of(by_cause(events, k_release))) == ["HoldReleased", "ScheduleReopened"]
    (released_ev,) = [e for e in by_cause(events, k_release) if e["header"]["type"] == "HoldReleased"]
    assert released_ev["body"] == {"reservationId": first["reservationId"], "userId": uid, "scheduleId": sid,
                                   "seatNumbers": [1, 2], "price": 2000}
    for e in events:
        if e["header"]["type"] in ("ScheduleSoldOut", "ScheduleReopened") and e["body"]["scheduleId"] == sid:
            assert e["body"] == {"scheduleId": sid}
    # SoldOut, Reopened, SoldOut again: in that order for this schedule
    flips = [e["header"]["type"] for e in events
             if e["header"]["type"] in ("ScheduleSoldOut", "ScheduleReopened") and e["body"]["scheduleId"] == sid]
    assert flips == ["ScheduleSoldOut", "ScheduleReopened", "ScheduleSoldOut"]


def test_free_reservation(sock):
    sid = new_schedule(sock, sections=[{"name": "Free", "seatCount": 3, "price": 0}])
    uid = new_user(sock, "freeloader")
    start = head_seq(sock)
    held = hold(sock, uid, sid, [2])
    assert held["price"] == 0
    k_pay, k_cancel = new_key(), new_key()
    paid = ok(sock, "PayReservation", {"userId": uid, "reservationId": held["reservationId"]}, k_pay)
    assert paid == {"reservationId": held["reservationId"], "status": "CONFIRMED", "price": 0, "balance": 0}
    assert ok(sock, "GetPointHistory", {"userId": uid})["entries"] == []
    cancelled = ok(sock, "CancelReservation", {"userId": uid, "reservationId": held["reservationId"]}, k_cancel)
    assert cancelled == {"reservationId": held["reservationId"], "status": "CANCELLED", "refunded": 0}
    assert ok(sock, "GetPointHistory", {"userId": uid})["entries"] == []
    assert ok(sock, "GetUser", {"userId": uid})["balance"] == 0
    events = events_since(sock, start)
    assert types_of(by_cause(events, k_pay)) == ["ReservationConfirmed"]
    assert types_of(by_cause(events, k_cancel)) == ["ReservationCancelled"]


# =============================================================================================
# Queue
# =============================================================================================

def test_leaving_active_token_admits_next_and_answers_own_position(sock):
    # An active token leaves while another waits: the command's QueueLeft, then the server's
    # admission of the next token (system:queue). The reply's position is the command's last
    # event (section 2), the QueueLeft, not the admission after it.
    cid = new_concert(sock, "Leave Night", "Leave Band")
    q = ok(sock, "ScheduleConcert", schedule_body(cid, queue={"maxActive": 1}))["scheduleId"]
    u1, u2 = new_user(sock, "leaver"), new_user(sock, "next")
    t1 = ok(sock, "JoinQueue", {"userId": u1, "scheduleId": q})["tokenId"]
    t2 = ok(sock, "JoinQueue", {"userId": u2, "scheduleId": q})["tokenId"]
    start = head_seq(sock)
    key = new_key()
    h, b = call(sock, "LeaveQueue", {"userId": u1, "tokenId": t1}, key)
    assert h["ok"] and b == {"tokenId": t1, "status": "EXPIRED"}, b
    events = events_since(sock, start)
    (left,) = by_cause(events, key)
    assert left["header"]["type"] == "QueueLeft" and h["position"] == left["header"]["position"], (h, left)
    admitted = [e for e in events if e["header"]["type"] == "QueueTokenActivated" and e["body"]["tokenId"] == t2]
    assert len(admitted) == 1 and admitted[0]["header"]["causationId"] == "system:queue", admitted
    assert admitted[0]["header"]["position"] > h["position"]
    assert ok(sock, "GetQueueStatus", {"tokenId": t2})["status"] == "ACTIVE"


def test_queue_flow(sock):
    cid = new_concert(sock, "Queue Night", "Queue Band")
    start = head_seq(sock)
    k_sched = new_key()
    q = ok(sock, "ScheduleConcert", schedule_body(cid, queue={"maxActive": 1}), k_sched)["scheduleId"]
    u1, u2 = new_user(sock, "first"), new_user(sock, "second")

    k1, k2 = new_key(), new_key()
    before = now()
    j1 = ok(sock, "JoinQueue", {"userId": u1, "scheduleId": q}, k1)
    after = now()
    assert j1["status"] == "ACTIVE" and j1["ahead"] == 0
    j2 = ok(sock, "JoinQueue", {"userId": u2, "scheduleId": q}, k2)
    assert j2["status"] == "WAITING" and j2["ahead"] == 0
    t1, t2 = j1["tokenId"], j2["tokenId"]
    assert t1 != t2

    # joining again returns the live token and changes nothing
    k_again = new_key()
    assert ok(sock, "JoinQueue", {"userId": u1, "scheduleId": q}, k_again) == j1
    assert ok(sock, "JoinQueue", {"userId": u2, "scheduleId": q}) == j2

    s1 = ok(sock, "GetQueueStatus", {"tokenId": t1})
    assert s1["tokenId"] == t1 and s1["status"] == "ACTIVE" and s1["ahead"] == 0
    active_until = parse_ts(s1["activeUntil"])
    assert before + timedelta(seconds=180) - SLACK <= active_until <= after + timedelta(seconds=180) + SLACK
    s2 = ok(sock, "GetQueueStatus", {"tokenId": t2})
    assert s2["tokenId"] == t2 and s2["status"] == "WAITING" and s2["ahead"] == 0

    hold_body = {"userId": u1, "scheduleId": q, "seatNumbers": [1]}
    err(sock, "HoldSeats", hold_body, "QUEUE_TOKEN_REQUIRED")
    err(sock, "HoldSeats", dict(hold_body, userId=u2, queueToken=t2), "QUEUE_TOKEN_NOT_ACTIVE")
    err(sock, "HoldSeats", dict(hold_body, userId=u2, queueToken=t1), "FORBIDDEN")
    err(sock, "HoldSeats", dict(hold_body, queueToken=unknown_id("token")), "TOKEN_NOT_FOUND")
    other = ok(sock, "ScheduleConcert", schedule_body(cid, queue={"maxActive": 1}))["scheduleId"]
    t_other = ok(sock, "JoinQueue", {"userId": u1, "scheduleId": other})["tokenId"]
    err(sock, "HoldSeats", dict(hold_body, queueToken=t_other), "QUEUE_TOKEN_REQUIRED")
    held = ok(sock, "HoldSeats", dict(hold_body, queueToken=t1))
    assert held["seatNumbers"] == [1]

    # leaving
    err(sock, "LeaveQueue", {"userId": u2, "tokenId": t1}, "FORBIDDEN")
    err(sock, "LeaveQueue", {"userId": u2, "tokenId": unknown_id("token")}, "TOKEN_NOT_FOUND")
    k_leave2, k_leave2_again, k_leave1 = new_key(), new_key(), new_key()
    assert ok(sock, "LeaveQueue", {"userId": u2, "tokenId": t2}, k_leave2) == {"tokenId": t2, "status": "EXPIRED"}
    assert ok(sock, "LeaveQueue", {"userId": u2, "tokenId": t2}, k_leave2_again) == {"tokenId": t2, "status": "EXPIRED"}
    assert ok(sock, "GetQueueStatus", {"tokenId": t2})["status"] == "EXPIRED"
    err(sock, "HoldSeats", dict(hold_body, userId=u2, seatNumbers=[2], queueToken=t2), "QUEUE_TOKEN_EXPIRED")
    assert ok(sock, "LeaveQueue", {"userId": u1, "tokenId": t1}, k_leave1) == {"tokenId": t1, "status": "EXPIRED"}
    assert ok(sock, "GetQueueStatus", {"tokenId": t1})["status"] == "EXPIRED"
    err(sock, "HoldSeats", dict(hold_body, seatNumbers=[3], queueToken=t1), "QUEUE_TOKEN_EXPIRED")

    # a schedule without a queue has no JoinQueue
    plain = new_schedule(sock, cid)
    err(sock, "JoinQueue", {"userId": u1, "scheduleId": plain}, "INVALID_STATE")

    events = events_since(sock, start)
    (scheduled,) = by_cause(events, k_sched)
    assert scheduled["body"]["queue"] == {"maxActive": 1, "activeTtlSeconds": 180, "waitingTtlSeconds": 21600}
    assert scheduled["body"]["maxSeatsPerUser"] == 4
    assert types_of(by_cause(events, k1)) == ["QueueJoined", "QueueTokenActivated"]
    activated = by_cause(events, k1)[1]["body"]
    assert activated == {"tokenId": t1, "userId": u1, "scheduleId": q, "activeUntil": s1["activeUntil"]}
    assert by_cause(events, k1)[0]["body"] == {"tokenId": t1, "userId": u1, "scheduleId": q}
    assert types_of(by_cause(events, k2)) == ["QueueJoined"]
    assert by_cause(events, k_again) == []
    assert types_of(by_cause(events, k_leave2)) == ["QueueLeft"]
    assert by_cause(events, k_leave2)[0]["body"] == {"tokenId": t2, "userId": u2, "scheduleId": q}
    assert by_cause(events, k_leave2_again) == []
    assert types_of(by_cause(events, k_leave1)) == ["QueueLeft"]


# =============================================================================================
# Business errors
# =============================================================================================

def test_unknown_ids(sock):
    uid = new_user(sock, "known")
    cid = new_concert(sock)
    sid = new_schedule(sock, cid)
    cases = [
        ("GetUser", {"userId": unknown_id("user")}, "USER_NOT_FOUND"),
        ("ChargePoints", {"userId": unknown_id("user"), "amount": 10}, "USER_NOT_FOUND"),
        ("GetPointHistory", {"userId": unknown_id("user")}, "USER_NOT_FOUND"),
        ("ListReservations", {"userId": unknown_id("user")}, "USER_NOT_FOUND"),
        ("HoldSeats", {"userId": unknown_id("user"), "scheduleId": sid, "seatNumbers": [1]}, "USER_NOT_FOUND"),
        ("JoinQueue", {"userId": unknown_id("user"), "scheduleId": sid}, "USER_NOT_FOUND"),
        ("ScheduleConcert", schedule_body(unknown_id("concert")), "CONCERT_NOT_FOUND"),
        ("ListSchedules", {"concertId": unknown_id("concert")}, "CONCERT_NOT_FOUND"),
        ("GetSeatMap", {"scheduleId": unknown_id("schedule")}, "SCHEDULE_NOT_FOUND"),
        ("HoldSeats", {"userId": uid, "scheduleId": unknown_id("schedule"), "seatNumbers": [1]}, "SCHEDULE_NOT_FOUND"),
        ("JoinQueue", {"userId": uid, "scheduleId": unknown_id("schedule")}, "SCHEDULE_NOT_FOUND"),
        ("HoldSeats", {"userId": uid, "scheduleId": sid, "seatNumbers": [31]}, "SEAT_NOT_FOUND"),
        ("HoldSeats", {"userId": uid, "scheduleId": sid, "seatNumbers": [1, 31]}, "SEAT_NOT_FOUND"),
        ("GetReservation", {"reservationId": unknown_id("reservation")}, "RESERVATION_NOT_FOUND"),
        ("PayReservation", {"userId": uid, "reservationId": unknown_id("reservation")}, "RESERVATION_NOT_FOUND"),
        ("CancelReservation", {"userId": uid, "reservationId": unknown_id("reservation")}, "RESERVATION_NOT_FOUND"),
        ("GetQueueStatus", {"tokenId": unknown_id("token")}, "TOKEN_NOT_FOUND"),
        ("LeaveQueue", {"userId": uid, "tokenId": unknown_id("token")}, "TOKEN_NOT_FOUND"),
    ]
    for type_, body, code in cases:
        err(sock, type_, body, code)
    m, _ = seat_map(sock, sid)
    assert m["available"] == 30, "a rejected hold holds nothing"


# A charge above 1,000,000 is out of the amount's range (PROTOCOL section 4: "amount from 1 to
# 1,000,000"; "an integer amount out of range is INVALID_AMOUNT") and would break the balance cap
# too (balances are ≥ 0). Section 2's "points (INSUFFICIENT_BALANCE, BALANCE_LIMIT_EXCEEDED,
# INVALID_AMOUNT)" is read as naming the group, not an order within it: the amount's range comes
# first, so the range's upper bound can be answered (Schemas/README.md, reading 10).
CHARGE_ABOVE_MAX_CODE = "INVALID_AMOUNT"


def test_charge_amount_rules(sock):
    uid = new_user(sock, "wallet")
    for amount in (0, -1, -1000000, -INT64_MAX - 1):
        err(sock, "ChargePoints", {"userId": uid, "amount": amount}, "INVALID_AMOUNT")
    for amount in (1000001, INT64_MAX):
        err(sock, "ChargePoints", {"userId": uid, "amount": amount}, CHARGE_ABOVE_MAX_CODE)
    assert ok(sock, "GetUser", {"userId": uid})["balance"] == 0
    assert ok(sock, "GetPointHistory", {"userId": uid})["entries"] == []
    assert ok(sock, "ChargePoints", {"userId": uid, "amount": 1000000})["balance"] == 1000000
    err(sock, "ChargePoints", {"userId": uid, "amount": 1}, "BALANCE_LIMIT_EXCEEDED")
    assert ok(sock, "GetUser", {"userId": uid})["balance"] == 1000000
    other = new_user(sock, "wallet2", points=999999)
    err(sock, "ChargePoints", {"userId": other, "amount": 2}, "BALANCE_LIMIT_EXCEEDED")
    assert ok(sock, "ChargePoints", {"userId": other, "amount": 1})["balance"] == 1000000


def test_integer_spelled_with_a_fraction_is_an_integer(sock):
    uid = new_user(sock, "floaty")
    assert ok(sock, "ChargePoints", '{"userId": %s, "amount": 5.0}' % json.dumps(uid))["balance"] == 5
    sid = new_schedule(sock)
    held = ok(sock, "HoldSeats", '{"userId": %s, "scheduleId": %s, "seatNumbers": [2.0, 1]}'
              % (json.dumps(uid), json.dumps(sid)))
    assert held["seatNumbers"] == [1, 2]


def test_insufficient_balance(sock):
    uid = new_user(sock, "poor", points=1000)
    sid = new_schedule(sock)
    held = hold(sock, uid, sid, [1])
    assert held["price"] == 15000
    err(sock, "PayReservation", {"userId": uid, "reservationId": held["reservationId"]}, "INSUFFICIENT_BALANCE")
    assert ok(sock, "GetReservation", {"reservationId": held["reservationId"]})["status"] == "HELD"
    assert ok(sock, "GetUser", {"userId": uid})["balance"] == 1000
    ok(sock, "ChargePoints", {"userId": uid, "amount": 14000})
    assert ok(sock, "PayReservation", {"userId": uid, "reservationId": held["reservationId"]})["balance"] == 0


def test_seat_unavailable(sock):
    sid = new_schedule(sock)
    a = new_user(sock, "early", points=100000)
    b = new_user(sock, "late")
    first = hold(sock, a, sid, [3, 5])
    e = err(sock, "HoldSeats", {"userId": b, "scheduleId": sid, "seatNumbers": [4, 5, 3]}, "SEAT_UNAVAILABLE")
    assert sorted(e["details"]["seatNumbers"]) == [3, 5]
    _, seats = seat_map(sock, sid)
    assert seats[4]["status"] == "AVAILABLE", "all or nothing"
    ok(sock, "PayReservation", {"userId": a, "reservationId": first["reservationId"]})
    e = err(sock, "HoldSeats", {"userId": b, "scheduleId": sid, "seatNumbers": [5]}, "SEAT_UNAVAILABLE")
    assert e["details"]["seatNumbers"] == [5]
    assert hold(sock, b, sid, [4])["seatNumbers"] == [4]


def test_seat_limit(sock):
    cid = new_concert(sock)
    sid = new_schedule(sock, cid, maxSeatsPerUser=2)
    uid = new_user(sock, "greedy", points=100000)
    err(sock, "HoldSeats", {"userId": uid, "scheduleId": sid, "seatNumbers": [1, 2, 3]}, "SEAT_LIMIT_EXCEEDED")
    first = hold(sock, uid, sid, [1, 2])
    err(sock, "HoldSeats", {"userId": uid, "scheduleId": sid, "seatNumbers": [3]}, "SEAT_LIMIT_EXCEEDED")
    ok(sock, "PayReservation", {"userId": uid, "reservationId": first["reservationId"]})
    err(sock, "HoldSeats", {"userId": uid, "scheduleId": sid, "seatNumbers": [3]}, "SEAT_LIMIT_EXCEEDED")
    ok(sock, "CancelReservation", {"userId": uid, "reservationId": first["reservationId"]})
    assert hold(sock, uid, sid, [3])["seatNumbers"] == [3]
    # default maxSeatsPerUser is 4
    sid4 = new_schedule(sock, cid)
    err(sock, "HoldSeats", {"userId": uid, "scheduleId": sid4, "seatNumbers": [1, 2, 3, 4, 5]}, "SEAT_LIMIT_EXCEEDED")
    assert len(hold(sock, uid, sid4, [1, 2, 3, 4])["seatNumbers"]) == 4


def test_forbidden(sock):
    sid = new_schedule(sock)
    a = new_user(sock, "owner", points=100000)
    b = new_user(sock, "intruder", points=100000)
    held = hold(sock, a, sid, [7])
    err(sock, "PayReservation", {"userId": b, "reservationId": held["reservationId"]}, "FORBIDDEN")
    err(sock, "CancelReservation", {"userId": b, "reservationId": held["reservationId"]}, "FORBIDDEN")
    assert ok(sock, "GetUser", {"userId": b})["balance"] == 100000
    assert ok(sock, "GetReservation", {"reservationId": held["reservationId"]})["status"] == "HELD"


@pytest.mark.parametrize("change,rule", [
    pytest.param({"opens": timedelta(days=1, hours=1), "closes": timedelta(days=1)},
                 "reservationOpensAt<=reservationClosesAt", id="opens-after-closes"),
    pytest.param({"closes": timedelta(days=3), "starts": timedelta(days=2)},
                 "reservationClosesAt<=startsAt", id="closes-after-starts"),
    pytest.param({"sections": [{"name": "A", "seatCount": 0, "price": 10}]},
                 "sectionSeatCount", id="section-of-0-seats"),
    pytest.param({"sections": []}, "seatCount", id="no-seats"),
    pytest.param({"sections": [{"name": "A", "seatCount": 60000, "price": 1},
                               {"name": "B", "seatCount": 40001, "price": 1}]}, "seatCount", id="100001-seats"),
    pytest.param({"sections": [{"name": "A", "seatCount": 5, "price": -1}]}, "price", id="negative-price"),
    pytest.param({"sections": [{"name": "A", "seatCount": 5, "price": 1000001}]}, "price", id="price-over-1000000"),
    pytest.param({"maxSeatsPerUser": 0}, "maxSeatsPerUser", id="maxSeatsPerUser-0"),
    pytest.param({"maxSeatsPerUser": 11}, "maxSeatsPerUser", id="maxSeatsPerUser-11"),
    pytest.param({"queue": {"maxActive": 0}}, "queue.maxActive", id="maxActive-0"),
    pytest.param({"queue": {"maxActive": 100001}}, "queue.maxActive", id="maxActive-100001"),
    pytest.param({"queue": {"activeTtlSeconds": 86401}}, "queue.activeTtlSeconds", id="activeTtl-86401"),
    pytest.param({"queue": {"waitingTtlSeconds": 0}}, "queue.waitingTtlSeconds", id="waitingTtl-0"),
    pytest.param({"queue": {"waitingTtlSeconds": 604801}}, "queue.waitingTtlSeconds", id="waitingTtl-604801"),
])
def test_invalid_schedule(sock, change, rule):
    """Section 4: INVALID_SCHEDULE "naming the rule broken", in details.rule (README)."""
    cid = new_concert(sock)
    assert err(sock, "ScheduleConcert", schedule_body(cid, **change), "INVALID_SCHEDULE")["details"]["rule"] == rule
    assert ok(sock, "ListSchedules", {"concertId": cid})["schedules"] == []


def test_schedule_boundaries_accepted(sock):
    cid = new_concert(sock)
    t = now() + timedelta(days=1)
    same = ts(t)
    ok(sock, "ScheduleConcert", {"concertId": cid, "startsAt": same, "reservationOpensAt": same,
                                 "reservationClosesAt": same,
                                 "sections": [{"name": "A", "seatCount": 1, "price": 0},
                                              {"name": "B", "seatCount": 1, "price": 1000000}],
                                 "maxSeatsPerUser": 10,
                                 "queue": {"maxActive": 100000, "activeTtlSeconds": 86400,
                                           "waitingTtlSeconds": 604800}})
    new_schedule(sock, cid, maxSeatsPerUser=1, queue={"activeTtlSeconds": 1, "waitingTtlSeconds": 1, "maxActive": 1})


def test_reservation_window_closed(sock):
    cid = new_concert(sock)
    past = new_schedule(sock, cid, opens=timedelta(days=-3), closes=timedelta(days=-2), starts=timedelta(days=1))
    future = new_schedule(sock, cid, opens=timedelta(days=1), closes=timedelta(days=2), starts=timedelta(days=3))
    uid = new_user(sock, "too late")
    err(sock, "HoldSeats", {"userId": uid, "scheduleId": past, "seatNumbers": [1]}, "RESERVATION_WINDOW_CLOSED")
    err(sock, "HoldSeats", {"userId": uid, "scheduleId": future, "seatNumbers": [1]}, "RESERVATION_WINDOW_CLOSED")
    # state and time come before limits
    err(sock, "HoldSeats", {"userId": uid, "scheduleId": past, "seatNumbers": [1, 2, 3, 4, 5]},
        "RESERVATION_WINDOW_CLOSED")
    m, _ = seat_map(sock, past)
    assert m["available"] == 30


def test_unknown_type(sock):
    h, e = call(sock, "NoSuchCommand", {})
    assert h["ok"] is False and e["code"] == "UNKNOWN_TYPE"
    assert h["requestId"]
    err(sock, "NoSuchCommand", {}, "UNKNOWN_TYPE", header={"idempotencyKey": new_key()})
    wrong_case = err(sock, "getstats", {}, "UNKNOWN_TYPE")
    # The message quotes the type and, for a known type in another case, names it.
    assert '"getstats"' in wrong_case["message"] and "GetStats" in wrong_case["message"], wrong_case
    assert wrong_case["details"] == {"type": "getstats"}
    # An empty type is a string naming nothing (PROTOCOL.md: `type` is a string): UNKNOWN_TYPE,
    # quoted so the message does not end in nothing. (Sent raw: the request schema wants a name.)
    empty = raw_exchange(sock, [b"", b"SLAM/1", json.dumps({"type": "", "requestId": "e1"}).encode(), b"{}"],
                         "UNKNOWN_TYPE")
    assert 'named ""' in empty.body["message"], empty.body


# =============================================================================================
# Idempotency and deadlines
# =============================================================================================

def test_idempotency_key_required(sock):
    err(sock, "RegisterUser", {"name": "nokey"}, "IDEMPOTENCY_KEY_REQUIRED", no_key=True)
    err(sock, "ChargePoints", {"userId": "x", "amount": 1}, "IDEMPOTENCY_KEY_REQUIRED", no_key=True)


def test_replay_and_key_reuse(sock):
    uid = new_user(sock, "replayer")
    key = new_key()
    h1, b1 = call(sock, "ChargePoints", {"userId": uid, "amount": 100}, key)
    assert h1["ok"] and h1["replayed"] is False and b1 == {"userId": uid, "balance": 100}
    ok(sock, "ChargePoints", {"userId": uid, "amount": 1})  # moves the head and the balance on

    variants = [
        {"userId": uid, "amount": 100},                                        # the same bytes
        '{"amount": 100, "userId": %s}' % json.dumps(uid),                    # key order
        '{ "userId" : %s ,\n "amount" : 100.0 }' % json.dumps(uid),          # 1 vs 1.0, white space
        '{"amount": 1e2, "userId": %s}' % json.dumps(uid),                    # exponent spelling
    ]
    for body in variants:
        h, b = call(sock, "ChargePoints", body, key)
        assert h["ok"] is True, b
        assert h["replayed"] is True, f"not replayed: {body!r}"
        assert b == b1, "a replay returns the recorded body"
        assert h["position"] == h1["position"], "a replay returns the recorded position"
    assert ok(sock, "GetUser", {"userId": uid})["balance"] == 101, "executed once"

    # same key, another command: refused, not executed, and the original still replays
    err(sock, "ChargePoints", {"userId": uid, "amount": 200}, "IDEMPOTENCY_KEY_REUSED", key)
    err(sock, "ChargePoints", {"userId": uid, "amount": 100, "note": "x"}, "IDEMPOTENCY_KEY_REUSED", key)
    err(sock, "RegisterUser", {"name": "other"}, "IDEMPOTENCY_KEY_REUSED", key)
    assert ok(sock, "GetUser", {"userId": uid})["balance"] == 101
    h, b = call(sock, "ChargePoints", {"userId": uid, "amount": 100}, key)
    assert h["replayed"] is True and b == b1

    # a business rejection is recorded and replays too
    bad = new_key()
    h1, e1 = call(sock, "ChargePoints", {"userId": uid, "amount": 0}, bad)
    assert not h1["ok"] and e1["code"] == "INVALID_AMOUNT" and h1["replayed"] is False
    h2, e2 = call(sock, "ChargePoints", {"userId": uid, "amount": 0}, bad)
    assert not h2["ok"] and h2["replayed"] is True and e2 == e1 and h2["position"] == h1["position"]

    # refusals before execution are not recorded: the same key can then succeed
    retry = new_key()
    h, e = call(sock, "ChargePoints", {"userId": uid, "amount": "10"}, retry)
    assert e["code"] == "BAD_REQUEST" and h["replayed"] is False
    h, b = call(sock, "ChargePoints", {"userId": uid, "amount": 10}, retry)
    assert h["ok"] and h["replayed"] is False and b["balance"] == 111

    # keys are global, not per type or user
    other = new_user(sock, "other replayer")
    err(sock, "ChargePoints", {"userId": other, "amount": 100}, "IDEMPOTENCY_KEY_REUSED", key)


def past_deadline() -> dict:
    return {"deadline": int((now() - timedelta(minutes=1)).timestamp() * 1000)}


def test_deadline(sock):
    uid = new_user(sock, "deadline")
    future = {"deadline": int((now() + timedelta(minutes=5)).timestamp() * 1000)}
    assert ok(sock, "ChargePoints", {"userId": uid, "amount": 10}, header=future)["balance"] == 10
    assert ok(sock, "GetUser", {"userId": uid}, header=future)["balance"] == 10

    key = new_key()
    h, e = call(sock, "ChargePoints", {"userId": uid, "amount": 5}, key, header=past_deadline())
    assert e["code"] == "DEADLINE_EXCEEDED" and h["replayed"] is False
    assert ok(sock, "GetUser", {"userId": uid})["balance"] == 10, "not executed"
    # not recorded: the same key without the deadline executes
    h, b = call(sock, "ChargePoints", {"userId": uid, "amount": 5}, key)
    assert h["ok"] and h["replayed"] is False and b["balance"] == 15
    # a recorded command replays even after its deadline
    h2, b2 = call(sock, "ChargePoints", {"userId": uid, "amount": 5}, key, header=past_deadline())
    assert h2["ok"] and h2["replayed"] is True and b2 == b and h2["position"] == h["position"]
    # queries too
    err(sock, "GetUser", {"userId": uid}, "DEADLINE_EXCEEDED", header=past_deadline())


def test_deadline_long_past(sock):
    # As far back as a signed 64-bit integer goes, and before year 0: refused like any passed
    # deadline, on a command and on a query, and the server goes on answering.
    uid = new_user(sock, "ancient")
    for deadline in (-2**63, -62167219200001):
        h, e = call(sock, "ChargePoints", {"userId": uid, "amount": 5}, new_key(), header={"deadline": deadline})
        assert e["code"] == "DEADLINE_EXCEEDED" and h["replayed"] is False, e
        err(sock, "GetUser", {"userId": uid}, "DEADLINE_EXCEEDED", header={"deadline": deadline})
    assert ok(sock, "GetUser", {"userId": uid})["balance"] == 0
    still_serving(sock)


@pytest.mark.parametrize("stamp", ["0000-01-01T00:00:00+00:01", "9999-12-31T23:59:59-01:00"])
def test_timestamps_outside_years_0_to_9999(sock, stamp):
    # Valid RFC 3339 text, but in UTC year -1 or 10000: the timestamp's field is BAD_REQUEST
    # (Schemas/json/defs.json, timestampIn), with every rule between the three times holding.
    b = schedule_body("c")
    b["startsAt"] = b["reservationOpensAt"] = b["reservationClosesAt"] = stamp
    e = err(sock, "ScheduleConcert", b, "BAD_REQUEST")
    assert e["details"]["field"] == "startsAt", e
    still_serving(sock)


def test_order_of_checks(sock):
    uid = new_user(sock, "order", points=100000)
    # type before body JSON
    err(sock, "NoSuchType", b"{", "UNKNOWN_TYPE")
    # body JSON before the idempotency key
    err(sock, "RegisterUser", b"{", "BAD_REQUEST", no_key=True)
    # idempotency key before body fields
    err(sock, "RegisterUser", {"name": ""}, "IDEMPOTENCY_KEY_REQUIRED", no_key=True)
    # idempotency record before deadline
    key = new_key()
    ok(sock, "ChargePoints", {"userId": uid, "amount": 1}, key)
    err(sock, "ChargePoints", {"userId": uid, "amount": 2}, "IDEMPOTENCY_KEY_REUSED", key, header=past_deadline())
    # deadline before body fields
    err(sock, "RegisterUser", {"name": ""}, "DEADLINE_EXCEEDED", header=past_deadline())
    # body fields before unknown ids
    e = err(sock, "ChargePoints", {"userId": unknown_id("user"), "amount": "10"}, "BAD_REQUEST")
    assert e["details"]["field"] == "amount"
    # unknown ids before ownership, ownership before state
    sid = new_schedule(sock)
    other = new_user(sock, "order other")
    held = hold(sock, uid, sid, [1])
    ok(sock, "CancelReservation", {"userId": uid, "reservationId": held["reservationId"]})
    err(sock, "CancelReservation", {"userId": unknown_id("user"), "reservationId": held["reservationId"]},
        "USER_NOT_FOUND")
    err(sock, "CancelReservation", {"userId": other, "reservationId": held["reservationId"]}, "FORBIDDEN")
    # limits before availability
    small = new_schedule(sock, maxSeatsPerUser=2)
    hold(sock, uid, small, [1])
    err(sock, "HoldSeats", {"userId": other, "scheduleId": small, "seatNumbers": [1, 2, 3]}, "SEAT_LIMIT_EXCEEDED")


# =============================================================================================
# Bad input
# =============================================================================================

@pytest.mark.parametrize("type_, body, field", [
    pytest.param("ChargePoints", {"userId": "u", "amount": "10"}, "amount", id="amount-string"),
    pytest.param("ChargePoints", {"userId": "u", "amount": 1.5}, "amount", id="amount-fraction"),
    pytest.param("ChargePoints", '{"userId": "u", "amount": 1e30}', "amount", id="amount-1e30"),
    pytest.param("ChargePoints", '{"userId": "u", "amount": 99999999999999999999}', "amount", id="amount-20-digits"),
    pytest.param("ChargePoints", '{"userId": "u", "amount": 9223372036854775808}', "amount", id="amount-2^63"),
    pytest.param("ChargePoints", '{"userId": "u", "amount": -9223372036854775809}', "amount", id="amount-below-int64"),
    pytest.param("ChargePoints", {"userId": "u", "amount": None}, "amount", id="amount-null"),
    pytest.param("ChargePoints", {"userId": "u", "amount": True}, "amount", id="amount-bool"),
    pytest.param("ChargePoints", {"userId": "u"}, "amount", id="amount-missing"),
    pytest.param("ChargePoints", {"userId": 5, "amount": 1}, "userId", id="userId-number"),
    pytest.param("GetUser", {}, "userId", id="userId-missing"),
    pytest.param("RegisterUser", {"name": ""}, "name", id="name-empty"),
    pytest.param("RegisterUser", {"name": "    "}, "name", id="name-blank"),
    pytest.param("RegisterUser", {"name": "\U0001F3B5" * 101}, "name", id="name-101-code-points"),
    pytest.param("RegisterUser", {"name": 5}, "name", id="name-number"),
    # U+0000 in a name: stored whole, but it would be read back cut short (GRDB reads C strings)
    pytest.param("RegisterUser", {"name": "Zo\u0000e"}, "name", id="name-with-nul"),
    pytest.param("CreateConcert", {"name": "Tour", "artist": "\u0000"}, "artist", id="artist-nul"),
    pytest.param("CreateConcert", {"name": "ok", "artist": ""}, "artist", id="artist-empty"),
    pytest.param("HoldSeats", {"userId": "u", "scheduleId": "s", "seatNumbers": [-1]}, "seatNumbers", id="seat-negative"),
    pytest.param("HoldSeats", {"userId": "u", "scheduleId": "s", "seatNumbers": [0]}, "seatNumbers", id="seat-zero"),
    pytest.param("HoldSeats", {"userId": "u", "scheduleId": "s", "seatNumbers": [2, 2]}, "seatNumbers", id="seat-duplicate"),
    pytest.param("HoldSeats", {"userId": "u", "scheduleId": "s", "seatNumbers": []}, "seatNumbers", id="seats-empty"),
    pytest.param("HoldSeats", {"userId": "u", "scheduleId": "s", "seatNumbers": "1"}, "seatNumbers", id="seats-string"),
    pytest.param("HoldSeats", {"userId": "u", "scheduleId": "s", "seatNumbers": [1, "2"]}, "seatNumbers", id="seat-string"),
    pytest.param("ScheduleConcert", "nested-price", "sections.1.price", id="sections.1.price-string"),
    pytest.param("ScheduleConcert", "nested-name", "sections.0.name", id="sections.0.name-empty"),
    pytest.param("ScheduleConcert", "bad-time", "startsAt", id="startsAt-not-a-time"),
    pytest.param("ScheduleConcert", "queue-string", "queue.maxActive", id="queue.maxActive-string"),
    pytest.param("ListSchedules", {"openAt": "yesterday"}, "openAt", id="openAt-not-a-time"),
    pytest.param("ReadEvents", {}, "afterSeq", id="afterSeq-missing"),
    pytest.param("ReadEvents", {"afterSeq": 0, "limit": 0}, "limit", id="limit-0"),
    pytest.param("GetPointHistory", {"userId": "u", "before": 0}, "before", id="before-0"),
    pytest.param("GetPointHistory", {"userId": "u", "limit": -1}, "limit", id="limit-negative"),
])
def test_bad_fields(sock, type_, body, field):
    if type_ == "ScheduleConcert":
        b = schedule_body("c", sections=[{"name": "A", "seatCount": 1, "price": 1},
                                         {"name": "B", "seatCount": 1, "price": 1}])
        if body == "nested-price":
            b["sections"][1]["price"] = "100"
        elif body == "nested-name":
            b["sections"][0]["name"] = ""
        elif body == "bad-time":
            b["startsAt"] = "next tuesday"
        elif body == "queue-string":
            b["queue"] = {"maxActive": "1"}
        body = b
    request_schema = INDEX["requests"][type_]
    assert S.errors(request_schema, as_json(body)), f"{request_schema} should reject {body!r} too"
    e = err(sock, type_, body, "BAD_REQUEST")
    assert "details" in e and "field" in e["details"], f"BAD_REQUEST on a field names it: {e}"
    if field == "seatNumbers":
        assert e["details"]["field"].startswith("seatNumbers"), e
    else:
        assert e["details"]["field"] == field, e
    still_serving(sock)


@pytest.mark.parametrize("type_, body, field", [
    pytest.param("ChargePoints", '{"userId": "u", "amount": 1.0000000000000001}', "amount", id="amount-near-1"),
    pytest.param("ChargePoints", '{"userId": "u", "amount": 1e-400}', "amount", id="amount-1e-400"),
    pytest.param("HoldSeats", '{"userId": "u", "scheduleId": "s", "seatNumbers": [1.99999999999999999]}', "seatNumbers.0",
                 id="seat-near-2"),
])
def test_numbers_a_double_rounds_to_an_integer_are_not_integers(sock, type_, body, field):
    # PROTOCOL.md section 4: a non-integer where an integer belongs is BAD_REQUEST (and not
    # INVALID_AMOUNT for 1e-400, which a double reads as 0). The server reads the number as
    # written; a validator that reads JSON numbers as doubles (Python's json, as here, or
    # JavaScript) cannot tell, so the schemas are not asked (Schemas/README.md, reading 1).
    e = err(sock, type_, body, "BAD_REQUEST")
    assert e["details"] == {"field": field}, e
    # the same value written as an integer, with a fraction of zeros, or with an exponent is one
    uid = new_user(sock, "integral spellings")
    for spelling in ["100", "100.000", "1e2", "1000e-1", "0.1e3"]:
        ok(sock, "ChargePoints", '{"userId": %s, "amount": %s}' % (json.dumps(uid), spelling))
    assert ok(sock, "GetUser", {"userId": uid})["balance"] == 500
    # and for the idempotency check, which comes before the body fields, such a number is not
    # the integer either: another command under the same key, not a replay
    key = new_key()
    ok(sock, "ChargePoints", {"userId": uid, "amount": 1}, key)
    err(sock, "ChargePoints", '{"userId": %s, "amount": 1.0000000000000001}' % json.dumps(uid), "IDEMPOTENCY_KEY_REUSED", key)
    assert ok(sock, "GetUser", {"userId": uid})["balance"] == 501


def test_names_are_trimmed_and_counted_in_code_points(sock):
    assert ok(sock, "RegisterUser", {"name": "\U0001F3B5" * 100})["name"] == "\U0001F3B5" * 100
    assert ok(sock, "RegisterUser", {"name": "  " + "a" * 100 + " "})["name"] == "a" * 100
    assert ok(sock, "RegisterUser", {"name": "Zoë ☃"})["name"] == "Zoë ☃"


def test_names_are_trimmed_of_unicode_white_space_only(sock):
    # U+001F and U+FEFF are not White_Space (some regex engines' \s match them): kept, and the
    # reply still passes the strict output schema; U+3000 and U+0085 are White_Space: trimmed.
    assert ok(sock, "RegisterUser", {"name": "\u001fabc"})["name"] == "\u001fabc"
    assert ok(sock, "RegisterUser", {"name": "\ufeffabc\ufeff"})["name"] == "\ufeffabc\ufeff"
    assert ok(sock, "RegisterUser", {"name": "\u3000abc\u0085"})["name"] == "abc"
    # 100 code points after trimming, with a character that is not white space in front: 101
    err(sock, "RegisterUser", {"name": "\u001f" + "a" * 100}, "BAD_REQUEST")


def test_sections_may_share_a_name(sock):
    """PROTOCOL.md does not say section names are distinct (Schemas/README.md reading 35): two
    sections named alike (after trimming) are accepted, each seat keeps its own section's price,
    and the GetSeatMap filter by that name returns the seats of both."""
    sections = [{"name": "A", "seatCount": 2, "price": 1}, {"name": "B", "seatCount": 2, "price": 2},
                {"name": " A ", "seatCount": 2, "price": 3}]
    schedule = new_schedule(sock, sections=sections)
    m, seats = seat_map(sock, schedule)
    assert [(n, seats[n]["section"], seats[n]["price"]) for n in sorted(seats)] == [
        (1, "A", 1), (2, "A", 1), (3, "B", 2), (4, "B", 2), (5, "A", 3), (6, "A", 3)]
    only_a = ok(sock, "GetSeatMap", {"scheduleId": schedule, "section": "A"})
    assert sorted(s["number"] for s in only_a["seats"]) == [1, 2, 5, 6]
    assert (only_a["available"], only_a["held"], only_a["sold"]) == (4, 0, 0)


def test_a_queue_token_on_a_schedule_without_a_queue_is_ignored(sock):
    user = new_user(sock, "no queue", 100000)
    schedule = new_schedule(sock)
    held = hold(sock, user, schedule, [1], queueToken="tok_never_issued")
    assert held["seatNumbers"] == [1]


def test_json_the_reader_cannot_read_is_refused_even_in_an_unknown_field(sock):
    deep = "[" * 65 + "]" * 65
    for body, field in ((b'{"name":"x","extra":' + deep.encode() + b"}", "body"),
                        (b'{"name":"x","extra":1e400}', "body"),
                        (b'{"name":"x","extra":"\\ud800"}', "body")):
        h, b = call(sock, "RegisterUser", body)
        assert h["ok"] is False and b["code"] == "BAD_REQUEST" and b["details"]["field"] == field, (body, b)
    # 64 levels are read (and the unknown field then ignored)
    fine = "[" * 63 + "]" * 63
    assert ok(sock, "RegisterUser", b'{"name":"deep","extra":' + fine.encode() + b"}")["name"] == "deep"


def test_a_header_beyond_the_readers_limits_still_has_its_request_id_echoed(sock):
    # Valid JSON the reader refuses for its limits, in an unknown header field: BAD_REQUEST on
    # `header`, but its requestId is readable, so echoed (PROTOCOL.md section 2: "absent only
    # when the request had none readable"), and a command's reply says replayed: false.
    deep = "[" * 70 + "]" * 70
    for extra in (deep, "1e400", '"\\ud800"', '{"a":' * 70 + "1" + "}" * 70):
        for type_ in ("GetStats", "RegisterUser"):
            rid = "limits-" + uuid.uuid4().hex
            header = '{"type":"%s","requestId":"%s","idempotencyKey":"%s","x":%s}' % (type_, rid, uuid.uuid4().hex, extra)
            sock.send_multipart([b"", PROTO, header.encode(), b'{"name":"x"}'])
            r = check_reply(recv_frames(sock), None)
            assert r.header["ok"] is False and r.body["code"] == "BAD_REQUEST", r
            assert r.body["details"] == {"field": "header"}, r.body
            assert r.header.get("requestId") == rid, r.header
            assert r.header.get("replayed") is (False if type_ == "RegisterUser" else None), r.header
    # JSON that is broken, not merely beyond the limits, has none readable
    for header in (b'{"type":"GetStats","requestId":"r1" oops}', b'{"type":"GetStats","requestId":"r1",}',
                   b'{"type":"GetStats","requestId":"r1"'):
        sock.send_multipart([b"", PROTO, header, b"{}"])
        r = check_reply(recv_frames(sock), None)
        assert r.body["code"] == "BAD_REQUEST" and "requestId" not in r.header, (header, r)
    # A whole object followed by something else is refused for what follows it, and its object
    # read (Schemas/README.md choice 23): its requestId is echoed.
    for header in (b'{"type":"GetStats","requestId":"r2"}x', b'{"type":"GetStats","requestId":"r2"} {}'):
        sock.send_multipart([b"", PROTO, header, b"{}"])
        r = check_reply(recv_frames(sock), None)
        assert r.body["code"] == "BAD_REQUEST" and r.body["details"] == {"field": "header"}, (header, r)
        assert "unexpected data after the JSON value" in r.body["message"] and r.header.get("requestId") == "r2", r
    still_serving(sock)


def test_unknown_fields_are_ignored(sock):
    stats = ok(sock, "GetStats", {"verbose": True, "nested": {"a": [1, 2]}}, header={"trace": "abc", "x": 1})
    assert "storeId" in stats
    user = ok(sock, "RegisterUser", {"name": "tolerant", "favourite": "jazz"}, header={"client": "pytest"})
    assert user["name"] == "tolerant"


def _hdr(type_="GetStats", **extra) -> bytes:
    h = {"type": type_, "requestId": extra.pop("requestId", "raw-" + uuid.uuid4().hex)}
    h.update(extra)
    return json.dumps(h).encode()


RAW_CASES = [
    # id, frames, code, requestId echoed (the header was readable and valid)
    ("one-frame", lambda: [b""], "BAD_REQUEST", False),
    # A header where it belongs is readable even when the frames or the protocol are refused.
    ("three-frames", lambda: [b"", PROTO, _hdr()], "BAD_REQUEST", True),
    ("five-frames", lambda: [b"", PROTO, _hdr(), b"{}", b"{}"], "BAD_REQUEST", True),
    ("non-empty-delimiter", lambda: [b"x", PROTO, _hdr(), b"{}"], "BAD_REQUEST", True),
    ("SLAM/2", lambda: [b"", b"SLAM/2", _hdr(), b"{}"], "UNSUPPORTED_PROTOCOL", True),
    ("SLAM/2-before-header", lambda: [b"", b"SLAM/2", b"{not json", b"{}"], "UNSUPPORTED_PROTOCOL", False),
    ("empty-protocol", lambda: [b"", b"", _hdr(), b"{}"], "UNSUPPORTED_PROTOCOL", True),
    ("header-not-json", lambda: [b"", PROTO, b"{type: GetStats", b"{}"], "BAD_REQUEST", False),
    ("header-array", lambda: [b"", PROTO, b'["GetStats", "r1"]', b"{}"], "BAD_REQUEST", False),
    ("header-invalid-utf8", lambda: [b"", PROTO, b'{"type": "GetStats", "requestId": "\xff\xfe"}', b"{}"],
     "BAD_REQUEST", False),
    ("header-empty", lambda: [b"", PROTO, b"", b"{}"], "BAD_REQUEST", False),
    ("body-invalid-utf8", lambda: [b"", PROTO, _hdr("GetUser", requestId="r-utf8"), b'{"userId": "\xff\xfe"}'],
     "BAD_REQUEST", True),
    ("body-not-json", lambda: [b"", PROTO, _hdr(requestId="r-notjson"), b"{"], "BAD_REQUEST", True),
    ("body-array", lambda: [b"", PROTO, _hdr(requestId="r-array"), b"[]"], "BAD_REQUEST", True),
    ("body-trailing-garbage", lambda: [b"", PROTO, _hdr(requestId="r-trailing"), b"{} {}"], "BAD_REQUEST", True),
    ("body-empty", lambda: [b"", PROTO, _hdr(requestId="r-empty"), b""], "BAD_REQUEST", True),
    # Over the size limit: not parsed, but for a header frame within the limit, so that a client
    # matching replies by requestId gets the refusal.
    ("payload-too-large", lambda: [b"", PROTO, _hdr(), json.dumps({"pad": "x" * (70 * 1024)}).encode()],
     "PAYLOAD_TOO_LARGE", True),
    ("payload-too-large-before-protocol", lambda: [b"", b"SLAM/2", _hdr(), b" " * (70 * 1024)],
     "PAYLOAD_TOO_LARGE", True),
    ("payload-too-large-command", lambda: [b"", PROTO, _hdr("RegisterUser", idempotencyKey="k-big"),
                                           json.dumps({"name": "x" * (70 * 1024)}).encode()],
     "PAYLOAD_TOO_LARGE", True),
    ("payload-too-large-header", lambda: [b"", PROTO, json.dumps({"type": "GetStats", "requestId": "r-big-header",
                                                                   "pad": "x" * (70 * 1024)}).encode(), b"{}"],
     "PAYLOAD_TOO_LARGE", False),
    # A readable header naming a command: `replayed: false` as well (section 3).
    ("SLAM/2-command", lambda: [b"", b"SLAM/2", _hdr("RegisterUser", idempotencyKey="k-proto"), b'{"name": "x"}'],
     "UNSUPPORTED_PROTOCOL", True),
    ("three-frames-command", lambda: [b"", PROTO, _hdr("RegisterUser", idempotencyKey="k-frames")], "BAD_REQUEST", True),
]


@pytest.mark.parametrize("frames, code, echoed", [pytest.param(f, c, e, id=i) for i, f, c, e in RAW_CASES])
def test_bad_frames(sock, frames, code, echoed):
    sent = frames()
    r = raw_exchange(sock, sent, code)
    if echoed:
        assert r.header.get("requestId") == json.loads(sent[2])["requestId"], r.header
    else:
        assert "requestId" not in r.header, r.header
    names_command = echoed and json.loads(sent[2]).get("type") == "RegisterUser"
    assert r.header.get("replayed") == (False if names_command else None), r.header


@pytest.mark.parametrize("header, field", [
    pytest.param({"type": "GetStats"}, "header.requestId", id="requestId-missing"),
    pytest.param({"type": "GetStats", "requestId": 5}, "header.requestId", id="requestId-number"),
    pytest.param({"type": "GetStats", "requestId": ""}, "header.requestId", id="requestId-empty"),
    pytest.param({"type": "GetStats", "requestId": "r" * 65}, "header.requestId", id="requestId-65"),
    pytest.param({"type": "RegisterUser", "idempotencyKey": "k-no-id"}, "header.requestId", id="requestId-missing-command"),
    pytest.param({"requestId": "r-no-type"}, "header.type", id="type-missing"),
    pytest.param({"type": 7, "requestId": "r-type-number"}, "header.type", id="type-number"),
    pytest.param({"type": "RegisterUser", "requestId": "r-long-key", "idempotencyKey": "k" * 129},
                 "header.idempotencyKey", id="idempotencyKey-129"),
    pytest.param({"type": "RegisterUser", "requestId": "r-key-number", "idempotencyKey": 5},
                 "header.idempotencyKey", id="idempotencyKey-number"),
    pytest.param({"type": "RegisterUser", "requestId": "r-key-nul", "idempotencyKey": "a\u0000b"},
                 "header.idempotencyKey", id="idempotencyKey-with-nul"),
    pytest.param({"type": "GetStats", "requestId": "r-deadline", "deadline": "soon"}, "header.deadline",
                 id="deadline-string"),
    pytest.param({"type": "GetStats", "requestId": "r-deadline-frac", "deadline": 1.5}, "header.deadline",
                 id="deadline-fraction"),
])
def test_bad_header_fields(sock, header, field):
    assert S.errors("request-header.json", header), "the schema rejects it too"
    body = b'{"name": "x"}' if header.get("type") == "RegisterUser" else b"{}"
    r = raw_exchange(sock, [b"", PROTO, json.dumps(header).encode(), body], "BAD_REQUEST")
    assert r.body.get("details", {}).get("field") == field, r.body
    # section 3: `replayed` on every reply to a command, whatever the header got wrong
    assert r.header.get("replayed") == (False if header.get("type") == "RegisterUser" else None), r.header
    if field != "header.requestId":
        assert r.header.get("requestId") == header["requestId"], "a readable requestId is echoed"


def test_large_but_acceptable_request(sock):
    stats = ok(sock, "GetStats", {"pad": "x" * (48 * 1024)})
    assert "storeId" in stats


# =============================================================================================
# Sockets: REQ, pipelining, SUB
# =============================================================================================

def test_req_socket_round_trip(server, ctx):
    req = ctx.socket(zmq.REQ)
    req.linger = 0
    req.connect(server.commands)
    try:
        for type_, body in (("GetStats", {}), ("RegisterUser", {"name": "req client"})):
            hdr = {"type": type_, "requestId": uuid.uuid4().hex}
            if type_ in COMMANDS:
                hdr["idempotencyKey"] = new_key()
                _SENT_KEYS.add(hdr["idempotencyKey"])
            req.send_multipart([PROTO, json.dumps(hdr).encode(), json.dumps(body).encode()])
            frames = recv_frames(req, f"reply to {type_} on a REQ socket")
            r = check_reply([b""] + frames, type_)  # a REQ socket strips the empty delimiter
            check_against_request(Sent(type=type_, header=hdr, fresh_key=True), r)
            assert r.header["ok"], r.body
    finally:
        req.close(linger=0)


def test_pipelined_dealer(sock):
    sent = [send_request(sock, "GetStats", {})]
    sent += [send_request(sock, "RegisterUser", {"name": f"pipelined {i}"}) for i in range(5)]
    sent += [send_request(sock, "GetUser", {"userId": unknown_id("user")})]
    by_id = {s.header["requestId"]: s for s in sent}
    seen = set()
    for _ in sent:
        frames = recv_frames(sock, "pipelined reply")
        rid = strict_json(frames[2], "reply header").get("requestId")
        assert rid in by_id and rid not in seen, f"unexpected or repeated requestId {rid!r}"
        seen.add(rid)
        r = check_reply(frames, by_id[rid].type)
        check_against_request(by_id[rid], r)
        if by_id[rid].type == "GetUser":
            assert r.body["code"] == "USER_NOT_FOUND"
        else:
            assert r.header["ok"], r.body
    assert seen == set(by_id)


def recv_published(sub, what="a published message"):
    frames = recv_frames(sub, what)
    if frames[0] == b"$heartbeat":
        assert len(frames) == 2, f"a heartbeat has 2 frames, got {len(frames)}"
        hb = strict_json(frames[1], "heartbeat")
        S.validate("heartbeat.json", hb)
        assert_no_floats(hb, "heartbeat")
        return "$heartbeat", hb, None
    assert len(frames) == 3, f"an event has 3 frames, got {len(frames)}: {[f[:80] for f in frames]}"
    topic = frames[0].decode("utf-8")
    header = strict_json(frames[1], "event header")
    body = strict_json(frames[2], "event body")
    check_event(topic, header, body)
    return topic, header, body


def wait_heartbeat(sub, seen: list | None = None) -> dict:
    give_up = time.monotonic() + REPLY_TIMEOUT_MS / 1000
    while time.monotonic() < give_up:
        msg = recv_published(sub, "a heartbeat")
        if seen is not None:
            seen.append(msg)
        if msg[0] == "$heartbeat":
            return msg[1]
    pytest.fail("no heartbeat within 10 s")


def wait_event(sub, predicate, seen: list) -> tuple:
    give_up = time.monotonic() + REPLY_TIMEOUT_MS / 1000
    while time.monotonic() < give_up:
        msg = recv_published(sub, "the expected event")
        seen.append(msg)
        if msg[0] != "$heartbeat" and predicate(msg):
            return msg
    pytest.fail("the expected event was not published within 10 s")


def test_published_events_and_heartbeat(server, ctx, sock):
    sub = ctx.socket(zmq.SUB)
    sub.linger = 0
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(server.events)
    try:
        seen: list = []
        hb = wait_heartbeat(sub, seen)  # the subscription is live from here on
        stats = ok(sock, "GetStats", {})
        assert hb["storeId"] == stats["storeId"]
        key = new_key()
        user = ok(sock, "RegisterUser", {"name": "subscriber"}, key)
        topic, header, body = wait_event(
            sub, lambda m: m[1]["type"] == "UserRegistered" and m[2]["userId"] == user["userId"], seen)
        assert topic == "user.UserRegistered"
        assert body == {"userId": user["userId"], "name": "subscriber"}
        assert header["causationId"] == key and header["storeId"] == stats["storeId"]
        # the published message is the one ReadEvents serves
        page = ok(sock, "ReadEvents", {"afterSeq": header["seq"] - 1, "limit": 1})
        assert page["events"] == [{"topic": topic, "header": header, "body": body}]
        # delivered in seq order; at least once, so a repeat of an already delivered seq may occur
        delivered: set[int] = set()
        last = 0
        for m in seen:
            if m[0] != "$heartbeat":
                seq = m[1]["seq"]
                assert seq > last or seq in delivered, f"seq {seq} out of order after {last}"
                delivered.add(seq)
                last = max(last, seq)
        later = wait_heartbeat(sub, seen)
        assert later["storeId"] == stats["storeId"]
        assert later["headSeq"] >= header["seq"]
        assert later["categories"]["user"] >= header["categorySeq"]
        # every category is named, with 0 until it has an event
        assert set(later["categories"]) == {"user", "wallet", "concert", "queue", "reservation"}, later
        assert set(hb["categories"]) == set(later["categories"]), hb
    finally:
        sub.close(linger=0)


def test_subscribe_by_category_prefix(server, ctx, sock):
    sub = ctx.socket(zmq.SUB)
    sub.linger = 0
    sub.setsockopt(zmq.SUBSCRIBE, b"user.")
    sub.setsockopt(zmq.SUBSCRIBE, b"$heartbeat")
    sub.connect(server.events)
    try:
        seen: list = []
        wait_heartbeat(sub, seen)
        a = new_user(sock, "prefix a", points=500)  # UserRegistered, then PointsCharged (not subscribed)
        b = new_user(sock, "prefix b")
        wait_event(sub, lambda m: m[1]["type"] == "UserRegistered" and m[2]["userId"] == b, seen)
        topics = [m[0] for m in seen]
        assert all(t == "$heartbeat" or t.startswith("user.") for t in topics), topics
        registered = [m[2]["userId"] for m in seen if m[0] == "user.UserRegistered"]
        assert registered.index(a) < registered.index(b)
        cseqs = [m[1]["categorySeq"] for m in seen if m[0] != "$heartbeat"]
        assert cseqs == sorted(cseqs)
    finally:
        sub.close(linger=0)
