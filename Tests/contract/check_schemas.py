#!/usr/bin/env python3
"""Checks Schemas/json itself: every file is a valid draft 2020-12 schema, every $ref resolves,
index.json names every message schema and nothing else, and a few hand-written instances that
PROTOCOL.md says are valid (or invalid) validate (or fail) as they should.

    python Tests/contract/check_schemas.py        # exit 0 when all is well

It needs only jsonschema (and referencing, which jsonschema brings); no server.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from jsonschema import Draft202012Validator  # noqa: E402
from referencing.exceptions import Unresolvable  # noqa: E402

import slam_schemas as S  # noqa: E402

DRAFT = "https://json-schema.org/draft/2020-12/schema"
problems: list[str] = []


def problem(msg: str) -> None:
    problems.append(msg)


def walk(node, path=""):
    """Yield (json-pointer-ish path, sub-schema dict) for every dict in a schema."""
    if isinstance(node, dict):
        yield path, node
        for k, v in node.items():
            yield from walk(v, f"{path}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, f"{path}/{i}")


def check_files() -> None:
    schemas = S.schemas()
    registry = S.registry()
    for rel, schema in schemas.items():
        try:
            Draft202012Validator.check_schema(schema)
        except Exception as e:  # SchemaError
            problem(f"{rel}: not a valid draft 2020-12 schema: {e}")
        if schema.get("$schema") != DRAFT:
            problem(f"{rel}: $schema is not {DRAFT}")
        if schema.get("$id") != rel:
            problem(f"{rel}: $id is {schema.get('$id')!r}, expected its relative path {rel!r}")
        resolver = registry.resolver(base_uri=rel)
        for path, node in walk(schema):
            if "$ref" in node:
                try:
                    resolver.lookup(node["$ref"])
                except Unresolvable as e:
                    problem(f"{rel}{path}: $ref {node['$ref']!r} does not resolve: {e!r}")
            t = node.get("type")
            if t == "null" or (isinstance(t, list) and "null" in t):
                problem(f"{rel}{path}: a null type (optional fields are omitted, never null)")
            if node.get("const", 0) is None or None in node.get("enum", []):
                problem(f"{rel}{path}: null in const/enum")
        top = rel.split("/")[0]
        if top in ("replies", "events") and "$ref" not in schema:
            want = rel == "replies/GetStats.json"
            if schema.get("additionalProperties", True) is not want:
                problem(f"{rel}: additionalProperties should be {want}")
        if top == "requests" and any(n.get("additionalProperties") is False for _, n in walk(schema)):
            problem(f"{rel}: requests must tolerate unknown fields")


def check_index() -> None:
    idx = S.index()
    files = set(S.schema_files())
    named = {idx[k] for k in ("requestHeader", "replyHeader", "error", "eventHeader", "heartbeat", "defs")}
    for group in ("requests", "replies", "events"):
        for name, rel in idx[group].items():
            if rel != f"{group}/{name}.json":
                problem(f"index.json: {group}.{name} -> {rel}")
            named.add(rel)
    for rel in sorted(named - files):
        problem(f"index.json names a missing file {rel}")
    for rel in sorted(files - named):
        problem(f"{rel} is not in index.json")
    types = idx["commands"] + idx["queries"]
    if len(set(types)) != len(types):
        problem("index.json: a type is both a command and a query, or listed twice")
    for group in ("requests", "replies"):
        if set(idx[group]) != set(types):
            problem(f"index.json: {group} keys differ from commands + queries")
    if set(idx["events"]) != set(idx["eventCategories"]):
        problem("index.json: events and eventCategories differ")
    defs = S.schemas()["defs.json"]["$defs"]
    if defs["commandType"]["enum"] != idx["commands"] or defs["queryType"]["enum"] != idx["queries"]:
        problem("defs.json commandType/queryType differ from index.json")
    if defs["eventType"]["enum"] != list(idx["events"]):
        problem("defs.json eventType differs from index.json events")


# -- examples: (schema, instance, should it validate?) ----------------------------------------

U, SCH, R, T, C = "u-1", "s-1", "r-1", "t-1", "c-1"
TS = "2026-12-24T19:00:00.000Z"
EXAMPLES = [
    # headers
    ("request-header.json", {"type": "GetStats", "requestId": "1"}, True),
    ("request-header.json", {"type": "HoldSeats", "requestId": "1", "idempotencyKey": "k", "deadline": 1, "x": 1}, True),
    ("request-header.json", {"type": "HoldSeats", "requestId": "1"}, False),
    ("request-header.json", {"type": "GetStats"}, False),
    ("request-header.json", {"type": "GetStats", "requestId": ""}, False),
    ("request-header.json", {"type": "GetStats", "requestId": "x" * 65}, False),
    ("request-header.json", {"type": "RegisterUser", "requestId": "1", "idempotencyKey": "k" * 129}, False),
    ("request-header.json", {"type": "GetStats", "requestId": "1", "deadline": "soon"}, False),
    ("reply-header.json", {"requestId": "1", "ok": True, "position": 7, "replayed": False}, True),
    ("reply-header.json", {"ok": False}, True),
    ("reply-header.json", {"requestId": "1", "ok": True, "position": None}, False),
    ("reply-header.json", {"requestId": "1", "ok": True, "stray": 1}, False),
    ("error.json", {"code": "SEAT_UNAVAILABLE", "message": "seat 17 is held", "details": {"seatNumbers": [17]}}, True),
    ("error.json", {"code": "SEAT_UNAVAILABLE", "message": "seat 17 is held"}, False),
    ("error.json", {"code": "BAD_REQUEST", "message": "bad", "details": {"field": "sections.1.price"}}, True),
    ("error.json", {"code": "BAD_REQUEST", "message": "bad"}, True),
    ("error.json", {"code": "NOPE", "message": "bad"}, False),
    ("error.json", {"code": "INTERNAL", "message": "x", "details": None}, False),
    ("error.json", {"code": "INVALID_SCHEDULE", "message": "x", "details": {"rule": "seatCount"}}, True),
    ("error.json", {"code": "INVALID_SCHEDULE", "message": "x"}, False),
    ("error.json", {"code": "INVALID_SCHEDULE", "message": "x", "details": {"rule": "seats"}}, False),
    ("event-header.json", {"seq": 1, "categorySeq": 1, "storeId": "st", "type": "SeatsHeld", "streamId": "reservation-r-1",
                           "streamVersion": 1, "position": 1, "occurredAt": TS, "causationId": "k"}, True),
    ("event-header.json", {"seq": 0, "categorySeq": 1, "storeId": "st", "type": "SeatsHeld", "streamId": "x",
                           "streamVersion": 1, "position": 1, "occurredAt": TS, "causationId": "k"}, False),
    ("heartbeat.json", {"storeId": "st", "headSeq": 12,
                        "categories": {"reservation": 3, "user": 9, "wallet": 0, "concert": 0, "queue": 0}}, True),
    ("heartbeat.json", {"storeId": "st", "headSeq": 0,
                        "categories": {"reservation": 0, "user": 0, "wallet": 0, "concert": 0, "queue": 0}}, True),
    ("heartbeat.json", {"storeId": "st", "headSeq": 12, "categories": {"reservation": 3, "user": 9}}, False),
    ("heartbeat.json", {"storeId": "st", "headSeq": 0, "categories": {}}, False),
    ("heartbeat.json", {"storeId": "st", "headSeq": 12,
                        "categories": {"reservation": 3, "user": 9, "wallet": 0, "concert": 0, "queue": 0, "nope": 3}}, False),
    # requests
    ("requests/RegisterUser.json", {"name": "  Alice  "}, True),
    ("requests/RegisterUser.json", {"name": "\U0001F3B5" * 100}, True),
    ("requests/RegisterUser.json", {"name": "\U0001F3B5" * 101}, False),
    ("requests/RegisterUser.json", {"name": ""}, False),
    ("requests/RegisterUser.json", {"name": "   "}, False),
    ("requests/RegisterUser.json", {"name": "Bob", "unknown": [1]}, True),
    ("requests/ChargePoints.json", {"userId": U, "amount": 10}, True),
    ("requests/ChargePoints.json", {"userId": U, "amount": 10.0}, True),
    ("requests/ChargePoints.json", {"userId": U, "amount": 0}, True),  # INVALID_AMOUNT, not BAD_REQUEST
    ("requests/ChargePoints.json", {"userId": U, "amount": 9223372036854775807}, True),
    ("requests/ChargePoints.json", {"userId": U, "amount": 9223372036854775808}, False),
    ("requests/ChargePoints.json", {"userId": U, "amount": 99999999999999999999}, False),
    ("requests/ChargePoints.json", {"userId": U, "amount": 1e30}, False),
    ("requests/ChargePoints.json", {"userId": U, "amount": 1.5}, False),
    ("requests/ChargePoints.json", {"userId": U, "amount": "10"}, False),
    ("requests/ChargePoints.json", {"userId": U, "amount": True}, False),
    ("requests/ChargePoints.json", {"userId": U}, False),
    ("requests/ChargePoints.json", {"userId": 5, "amount": 10}, False),
    ("requests/CreateConcert.json", {"name": "Winter", "artist": "IU"}, True),
    ("requests/ScheduleConcert.json", {"concertId": C, "startsAt": "2026-12-24T19:00:00+09:00",
                                       "reservationOpensAt": "2026-12-01T00:00:00Z",
                                       "reservationClosesAt": "2026-12-23T00:00:00.5Z",
                                       "sections": [{"name": "R", "seatCount": 10, "price": 1000}],
                                       "queue": {"maxActive": 1}}, True),
    ("requests/ScheduleConcert.json", {"concertId": C, "startsAt": TS, "reservationOpensAt": TS,
                                       "reservationClosesAt": TS,
                                       "sections": [{"name": "R", "seatCount": 10, "price": 1000},
                                                    {"name": "S", "seatCount": 10, "price": "1000"}]}, False),
    ("requests/ScheduleConcert.json", {"concertId": C, "startsAt": "tomorrow", "reservationOpensAt": TS,
                                       "reservationClosesAt": TS, "sections": []}, False),
] + [
    # timestampIn: what the server's RFC 3339 reader takes, field by field
    ("requests/ScheduleConcert.json", {"concertId": C, "startsAt": t, "reservationOpensAt": TS, "reservationClosesAt": TS,
                                       "sections": [{"name": "R", "seatCount": 10, "price": 1000}]}, valid)
    for t, valid in (("2026-12-24t19:00:60z", True), ("2026-12-24 23:59:59.123456-23:59", True),
                     ("2026-13-24T19:00:00Z", False), ("2026-12-32T19:00:00Z", False), ("2026-12-00T19:00:00Z", False),
                     ("2026-12-24T24:00:00Z", False), ("2026-12-24T19:60:00Z", False), ("2026-12-24T19:00:61Z", False),
                     ("2026-12-24T19:00:00+24:00", False), ("2026-12-24T19:00:00+09:60", False),
                     ("\u0662026-12-24T19:00:00Z", False), ("2026-12-24T19:00:00.Z", False),
                     ("2026-12-24T19:00:00Z\n", False))
] + [
    ("requests/HoldSeats.json", {"userId": U, "scheduleId": SCH, "seatNumbers": [3, 1]}, True),
    ("requests/HoldSeats.json", {"userId": U, "scheduleId": SCH, "seatNumbers": [1], "queueToken": T}, True),
    ("requests/HoldSeats.json", {"userId": U, "scheduleId": SCH, "seatNumbers": []}, False),
    ("requests/HoldSeats.json", {"userId": U, "scheduleId": SCH, "seatNumbers": [1, 1]}, False),
    ("requests/HoldSeats.json", {"userId": U, "scheduleId": SCH, "seatNumbers": [1, 1.0]}, False),
    ("requests/HoldSeats.json", {"userId": U, "scheduleId": SCH, "seatNumbers": [-1]}, False),
    ("requests/HoldSeats.json", {"userId": U, "scheduleId": SCH, "seatNumbers": [0]}, False),
    ("requests/GetPointHistory.json", {"userId": U, "limit": 5000, "before": 3}, True),
    ("requests/GetPointHistory.json", {"userId": U, "limit": 0}, False),
    ("requests/ListSchedules.json", {}, True),
    ("requests/ListSchedules.json", {"openAt": "2026-12-24T19:00:00.123456-05:30"}, True),
    ("requests/ListSchedules.json", {"openAt": "2026-12-24 19:00:00z"}, True),
    ("requests/ListSchedules.json", {"openAt": "2026-12-24 19:00"}, False),
    ("requests/ListSchedules.json", {"openAt": "2026-12-24T19:00:00"}, False),
    ("requests/ListSchedules.json", {"openAt": "2026-12-24T19:00:00+0900"}, False),
    ("requests/ReadEvents.json", {"afterSeq": 0, "limit": 10, "category": "wallet"}, True),
    ("requests/ReadEvents.json", {"limit": 10}, False),
    ("requests/GetStats.json", {}, True),
    # replies
    ("replies/RegisterUser.json", {"userId": U, "name": "Alice", "balance": 0}, True),
    ("replies/RegisterUser.json", {"userId": U, "name": " Alice", "balance": 0}, False),
    ("replies/RegisterUser.json", {"userId": U, "name": "Alice", "balance": 0, "x": 1}, False),
    ("replies/HoldSeats.json", {"reservationId": R, "scheduleId": SCH, "seatNumbers": [1, 2], "price": 3000,
                                "expiresAt": TS}, True),
    ("replies/HoldSeats.json", {"reservationId": R, "scheduleId": SCH, "seatNumbers": [1, 2], "price": 3000,
                                "expiresAt": "2026-12-24T19:00:00Z"}, False),
    ("replies/JoinQueue.json", {"tokenId": T, "status": "ACTIVE", "ahead": 0}, True),
    ("replies/JoinQueue.json", {"tokenId": T, "status": "ACTIVE", "ahead": 2}, False),
    ("replies/JoinQueue.json", {"tokenId": T, "status": "WAITING", "ahead": 2}, True),
    ("replies/GetQueueStatus.json", {"tokenId": T, "status": "ACTIVE", "ahead": 0, "activeUntil": TS}, True),
    ("replies/GetQueueStatus.json", {"tokenId": T, "status": "ACTIVE", "ahead": 0}, False),
    ("replies/GetQueueStatus.json", {"tokenId": T, "status": "WAITING", "ahead": 4}, True),
    ("replies/GetQueueStatus.json", {"tokenId": T, "status": "WAITING", "ahead": 4, "activeUntil": None}, False),
    ("replies/CancelReservation.json", {"reservationId": R, "status": "CANCELLED", "refunded": 3000}, True),
    ("replies/CancelReservation.json", {"reservationId": R, "status": "RELEASED", "refunded": 3000}, False),
    ("replies/GetPointHistory.json", {"entries": [
        {"n": 2, "kind": "USE", "amount": 3000, "balance": 7000, "reservationId": R, "at": TS},
        {"n": 1, "kind": "CHARGE", "amount": 10000, "balance": 10000, "at": TS}]}, True),
    ("replies/GetPointHistory.json", {"entries": [{"n": 1, "kind": "USE", "amount": 1, "balance": 0, "at": TS}]}, False),
    ("replies/GetPointHistory.json", {"entries": [{"n": 1, "kind": "CHARGE", "amount": -5, "balance": 0, "at": TS}]}, False),
    ("replies/GetReservation.json", {"reservationId": R, "userId": U, "scheduleId": SCH, "seatNumbers": [4],
                                     "price": 10, "status": "HELD", "expiresAt": TS, "createdAt": TS}, True),
    ("replies/GetReservation.json", {"reservationId": R, "userId": U, "scheduleId": SCH, "seatNumbers": [4],
                                     "price": 10, "status": "HELD", "expiresAt": TS, "createdAt": TS, "x": 1}, False),
    ("replies/GetSeatMap.json", {"scheduleId": SCH, "available": 1, "held": 0, "sold": 1, "seats": [
        {"number": 1, "section": "R", "price": 100, "status": "AVAILABLE"},
        {"number": 2, "section": "R", "price": 100, "status": "SOLD"}]}, True),
    ("replies/GetStats.json", {"storeId": "st", "position": 3, "headSeq": 3, "publishedSeq": 2, "commands": 5,
                               "extra": {"anything": True}}, True),
    ("replies/RegisterUser.json", {"userId": "usr_1", "name": "\u001fabc", "balance": 0}, True),
    ("replies/RegisterUser.json", {"userId": "usr_1", "name": "abc\u3000", "balance": 0}, False),
    ("requests/RegisterUser.json", {"name": "\u001f" + "a" * 100}, False),
    ("requests/RegisterUser.json", {"name": "\u3000" + "a" * 100 + "\u0085"}, True),
    ("replies/GetStats.json", {"storeId": "st", "position": 3, "headSeq": 3, "publishedSeq": 2}, False),
    ("replies/GetStats.json", {"storeId": "st", "position": 3, "headSeq": 3, "publishedSeq": 2, "commands": 5,
                               "synchronous": "NORMAL", "groupCommit": False}, True),
    ("replies/GetStats.json", {"storeId": "st", "position": 3, "headSeq": 3, "publishedSeq": 2, "commands": 5,
                               "synchronous": "OFF"}, False),
    ("replies/GetStats.json", {"storeId": "st", "position": 3, "headSeq": 3, "publishedSeq": 2, "commands": 5,
                               "users": 2, "reservations": 0}, True),
    ("replies/GetStats.json", {"storeId": "st", "position": 3, "headSeq": 3, "publishedSeq": 2, "commands": 5,
                               "users": -1}, False),
    ("replies/ReadEvents.json", {"headSeq": 1, "events": [{
        "topic": "user.UserRegistered",
        "header": {"seq": 1, "categorySeq": 1, "storeId": "st", "type": "UserRegistered", "streamId": "user-1",
                   "streamVersion": 1, "position": 1, "occurredAt": TS, "causationId": "k"},
        "body": {"userId": U, "name": "Alice"}}]}, True),
    ("replies/ReadEvents.json", {"headSeq": 1, "events": [{
        "topic": "wallet.UserRegistered",
        "header": {"seq": 1, "categorySeq": 1, "storeId": "st", "type": "UserRegistered", "streamId": "user-1",
                   "streamVersion": 1, "position": 1, "occurredAt": TS, "causationId": "k"},
        "body": {"userId": U, "name": "Alice"}}]}, False),
    ("replies/ReadEvents.json", {"headSeq": 1, "events": [{
        "topic": "user.UserRegistered",
        "header": {"seq": 1, "categorySeq": 1, "storeId": "st", "type": "UserRegistered", "streamId": "user-1",
                   "streamVersion": 1, "position": 1, "occurredAt": TS, "causationId": "k"},
        "body": {"userId": U}}]}, False),
    # events
    ("events/ConcertScheduled.json", {"scheduleId": SCH, "concertId": C, "startsAt": TS, "reservationOpensAt": TS,
                                      "reservationClosesAt": TS, "seatCount": 30,
                                      "sections": [{"name": "R", "seatCount": 30, "price": 0}],
                                      "maxSeatsPerUser": 4,
                                      "queue": {"maxActive": 60, "activeTtlSeconds": 180, "waitingTtlSeconds": 21600}},
     True),
    ("events/ConcertScheduled.json", {"scheduleId": SCH, "concertId": C, "startsAt": TS, "reservationOpensAt": TS,
                                      "reservationClosesAt": TS, "seatCount": 30,
                                      "sections": [{"name": "R", "seatCount": 30, "price": 0}],
                                      "maxSeatsPerUser": 4, "queue": {"maxActive": 60}}, False),
    ("events/PointsCharged.json", {"userId": U, "amount": 1000001, "balance": 5}, False),
    ("events/PointsRefunded.json", {"userId": U, "amount": 5000, "balance": 1003000, "reservationId": R}, True),
    ("events/ReservationCancelled.json", {"reservationId": R, "userId": U, "scheduleId": SCH, "seatNumbers": [1],
                                          "price": 5, "refunded": 5}, True),
    ("events/QueueTokenActivated.json", {"tokenId": T, "userId": U, "scheduleId": SCH, "activeUntil": TS}, True),
]


def check_examples() -> None:
    for i, (rel, instance, want) in enumerate(EXAMPLES):
        errs = S.errors(rel, instance)
        if want and errs:
            problem(f"example {i} ({rel}) should validate: {errs[0].message}")
        if not want and not errs:
            problem(f"example {i} ({rel}) should not validate: {instance!r}")


def main() -> int:
    check_files()
    check_index()
    check_examples()
    for p in problems:
        print("PROBLEM:", p)
    n = len(S.schema_files())
    if problems:
        print(f"{len(problems)} problem(s) in {n} schemas")
        return 1
    print(f"{n} schemas valid, every $ref resolves, index.json consistent, {len(EXAMPLES)} examples behave")
    return 0


if __name__ == "__main__":
    sys.exit(main())
