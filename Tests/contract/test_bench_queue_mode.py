"""`slam bench --queue` against a fake server (pyzmq) whose queue admits each token on its
second status query: a user told to wait asks for its token's status (`GetQueueStatus`, a query)
once a second, outside the command schedule, and holds with its token once it is active; a
status query without a reply is sent again, the same bytes, after `--reply-timeout`."""
import json
import time


from test_bench_open_loop import ok_header, reply_frames, requests, result_for, run_against_fake


def queue_server(router, stop, log, unanswered_first_poll=False):
    """Answers the rush through a queue: every JoinQueue waits, each token is ACTIVE from its
    second status query on. `log` collects (time, type, header, body) of every request."""
    n = 0
    polls = {}
    for peer, header, body in requests(router, stop):
        h, b = json.loads(header), json.loads(body)
        n += 1
        t = h["type"]
        log.append((time.monotonic(), t, header, b))
        if t == "GetQueueStatus":
            polls[b["tokenId"]] = polls.get(b["tokenId"], 0) + 1
            if unanswered_first_poll and polls[b["tokenId"]] == 1:
                continue
            result = {"tokenId": b["tokenId"], "status": "ACTIVE" if polls[b["tokenId"]] >= 2 else "WAITING"}
        elif t == "JoinQueue":
            result = {"tokenId": f"tok_{n}", "status": "WAITING", "position": 1}
        elif t == "LeaveQueue":
            result = {"status": "LEFT"}
        else:
            result = result_for(t, n)
        router.send_multipart(reply_frames(peer, ok_header(h, n), result))


def test_waiting_users_poll_their_token_once_a_second_and_hold_with_it_once_active():
    log = []
    report, stdout = run_against_fake(["--queue", "--seats", "100", "--users", "4", "--threads", "1",
                                       "--connections", "1", "--rate", "20", "--duration", "4"],
                                      server_fn=queue_server, log=log)
    o = report["outcomes"]
    polls = [(at, b["tokenId"]) for at, t, _, b in log if t == "GetQueueStatus"]
    joins = [at for at, t, _, _ in log if t == "JoinQueue"]
    holds = [(at, b) for at, t, _, b in log if t == "HoldSeats"]
    assert o["polls"] == len(polls) > 0, (o, len(polls))
    # polls are queries: not commands sent, nor in the latency (which counts each command's
    # reply, and the open loop's slots never sent while every user waited in the queue)
    assert o["sent"] == sum(1 for _, t, h, _ in log if "idempotencyKey" in json.loads(h)
                            and t not in ("CreateConcert", "ScheduleConcert", "RegisterUser", "ChargePoints")), o
    assert report["latency"]["count"] == o["replies"] + o["notSent"], report
    # each token asked about about once a second: never twice within 0.7 s (times as the fake
    # server read them, with room for a loaded machine's delays)
    by_token = {}
    for at, token in polls:
        by_token.setdefault(token, []).append(at)
    for token, times in by_token.items():
        assert all(b - a >= 0.7 for a, b in zip(times, times[1:])), (token, times)
    # a user holds only with a token the server called ACTIVE, after its second status query
    active = {token: times[1] for token, times in by_token.items() if len(times) >= 2}
    assert holds and all(b.get("queueToken") in active and at >= active[b["queueToken"]] for at, b in holds), (holds, active)
    assert o["joined"] == len(joins) and o["waiting"] == o["joined"], o
    assert o["timedOut"] == 0 and o["otherErrors"] == 0, o


def test_a_status_query_without_a_reply_is_sent_again_the_same_bytes():
    log = []
    report, _ = run_against_fake(["--queue", "--seats", "100", "--users", "4", "--threads", "1",
                                  "--connections", "1", "--rate", "20", "--duration", "4", "--reply-timeout", "0.5"],
                                 server_fn=queue_server, log=log, unanswered_first_poll=True)
    o = report["outcomes"]
    by_token = {}
    for at, t, header, b in log:
        if t == "GetQueueStatus":
            by_token.setdefault(b["tokenId"], []).append((at, header))
    # each token's first query went unanswered and came again, the same bytes, about 0.5 s later
    # (times as the fake server read them, with room for a loaded machine's delays)
    assert by_token and all(len(q) >= 2 and q[0][1] == q[1][1] and q[1][0] - q[0][0] >= 0.35 for q in by_token.values()), by_token
    assert o["timedOut"] == len(by_token), (o, len(by_token))
    # the answer to the query sent again counted once: no error, and the users went on to hold
    assert o["otherErrors"] == 0 and o["holdsWon"] > 0, o
