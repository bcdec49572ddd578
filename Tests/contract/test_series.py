"""tools/series.py, the README's benchmark series in one command (issue #5): a short series of
each kind of run against the real server (the table, the targets and what the JSON keeps), the
order it takes the runs in, and its refusals of what it cannot run."""
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import series  # noqa: E402

SERIES = os.path.join(ROOT, "tools", "series.py")
SLAM = os.environ.get("SLAM_BIN", os.path.join(ROOT, ".build", "debug", "slam"))
SMALL = ["--seats", "300", "--users", "120", "--duration", "1"]


def run_series(args):
    return subprocess.run([sys.executable, SERIES, *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "SLAM_BIN": SLAM})


def test_a_short_series_prints_the_table_and_the_targets():
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "series.json")
        # One CPU for everything the machine has: the bench pinned to the first one allowed,
        # the server not pinned (a test machine may have one CPU).
        cpu = min(os.sched_getaffinity(0))
        done = run_series([*SMALL, "--runs", "closed:2x4*2 open:300 queue:2x4", "--writer-cpu", "-1", "--io-cpu", "-1",
                           "--bench-cpus", str(cpu), "--json", out])
        assert done.returncode == 0, done.stdout + done.stderr
        with open(out) as f:
            result = json.load(f)
        kinds = {k["kind"]: k for k in result["kinds"]}
        assert sorted(kinds) == ["closed:2x4", "open:300", "queue:2x4"], kinds.keys()
        assert [len(kinds[k]["reports"]) for k in ("closed:2x4", "open:300", "queue:2x4")] == [2, 1, 1]
        # Each run as asked: the bench on that CPU, the server unpinned with group commit, the
        # loop and queue of its kind, and its invariants intact.
        for k in result["kinds"]:
            for r in k["reports"]:
                assert r["benchCPUs"] == [cpu] and r["groupCommit"] is True and r["synchronous"] == "FULL", r
                assert r["invariants"]["ok"] is True and r["repliesInRun"] > 0, r
        assert kinds["open:300"]["reports"][0]["offeredRate"] == 300
        assert kinds["queue:2x4"]["reports"][0]["queue"] is True and kinds["closed:2x4"]["reports"][0]["queue"] is False
        assert result["serve"] == [] and result["benchCPUs"] == [cpu]

        # The table: one row per kind, its runs counted, its commands/s the range of the reports'.
        rates = [r["commandsPerSecond"] for r in kinds["closed:2x4"]["reports"]]
        low, high = f"{min(rates):,.0f}", f"{max(rates):,.0f}"
        cell = low if low == high else f"{low}–{high}"
        assert f"| closed loop, 2 × 4 (2) | {cell} | " in done.stdout, done.stdout
        assert "| open loop, 300/s offered (1) | " in done.stdout, done.stdout
        assert "| closed loop with a waiting queue, 2 × 4 (1) | " in done.stdout, done.stdout
        assert kinds["closed:2x4"]["row"]["commands/s"] == cell, kinds["closed:2x4"]["row"]
        # The targets: 30,000 commands/s measured by the closed loop without the queue only; the
        # 10,000/s p99 not at all (no such run); the lag in every kind.
        rate_line = next(line for line in done.stdout.splitlines() if line.startswith("30,000 commands/s"))
        assert rate_line.startswith("30,000 commands/s or more: closed loop, 2 × 4 ") and "queue" not in rate_line, rate_line
        assert "at 10,000/s offered" not in done.stdout, done.stdout
        lags = [r["publishLag"]["p99Ms"] for k in result["kinds"] for r in k["reports"]]
        assert f"publish lag p99 under 50 ms: closed loop, 2 × 4 {sum(v < 50 for v in lags[:2])} of 2" in done.stdout
        assert "invariants OK in every run" in done.stdout, done.stdout
        assert re.search(r"steal \d+\.\d%", done.stdout), done.stdout


def test_the_kinds_are_taken_in_turn():
    kinds = series.kinds_of("open:10000*3 closed:8x32 queue:8x32*2")
    assert [k.name for k in series.interleaved(kinds)] == \
        ["open:10000", "closed:8x32", "queue:8x32", "open:10000", "queue:8x32", "open:10000"]
    assert [k.args for k in kinds] == [["--rate", "10000"],
                                       ["--max", "--connections", "8", "--in-flight", "32"],
                                       ["--max", "--connections", "8", "--in-flight", "32", "--queue"]]
    # The README's series, as its table gives it.
    default = series.kinds_of(series.README_RUNS)
    assert [(k.label, k.count) for k in default] == [
        ("closed loop, 8 × 32", 6), ("closed loop, 8 × 128", 2), ("closed loop, 8 × 256", 1),
        ("open loop, 3,000/s offered", 2), ("open loop, 10,000/s offered", 8),
        ("closed loop with a waiting queue, 8 × 32", 2)]


def test_the_10000_row_and_target_count_the_runs_at_or_under_5_ms():
    kind = series.Kind("open:10000*3")
    kind.reports = [{"commandsPerSecond": 9999, "walPeakBytes": 40 << 20, "publishLag": {"p99Ms": lag},
                     "latency": {"p50Ms": 0.9, "p99Ms": p99, "p999Ms": 7.0}}
                    for p99, lag in ((4.2, 7.0), (5.0, 60.0), (5.6, 16.0))]
    cells = series.row(kind)
    assert cells[0] == "open loop, 10,000/s offered (3)"
    assert cells[3] == "4.2–5.6 ms (median 5.0; 2 at or under 5)", cells
    assert cells[5] == "7–60 ms" and cells[6] == "40 MiB", cells
    assert series.targets([kind]) == [
        "p99 at or under 5 ms at 10,000/s offered: 2 of 3 runs (median 5.0 ms)",
        "publish lag p99 under 50 ms: open loop, 10,000/s offered 2 of 3"]


def test_commands_not_sent_on_time_are_counted_for_the_open_loop_only():
    """A closed loop through the queue has no schedule: its users waiting in the queue (starved)
    are not commands sent late, as they are in the open loop."""
    def report(**outcomes):
        return {"repliesDropped": 1, "invariants": {"ok": True},
                "outcomes": {"timedOut": 0, "overloaded": 2, "noReply": 0, "otherErrors": 0, **outcomes}}
    queue, opened = series.Kind("queue:8x32"), series.Kind("open:10000*2")
    queue.reports = [report(starved=256, notSent=0, unreached=0)]
    opened.reports = [report(starved=3, notSent=2, unreached=2), report(starved=0, notSent=1, unreached=0)]
    total, violated = series.incidents([queue, opened])
    assert total == {"timedOut": 0, "overloaded": 6, "noReply": 0, "otherErrors": 0, "repliesDropped": 3,
                     "open loop starved": 3, "open loop notSent": 3, "open loop unreached": 2}, total
    assert violated == 0
    opened.reports[1]["invariants"]["ok"] = False
    assert series.incidents([queue, opened])[1] == 1


def test_what_it_cannot_run_is_refused_before_any_run():
    for args, said in ((["--runs", "open:10000*0"], "at least one run"),
                       (["--runs", "closed:8"], "a run is closed:CxK, queue:CxK or open:R"),
                       (["--runs", "open:300 open:300*2"], "a kind named twice"),
                       (["--bench-cpus", "1-0"], "not a CPU list"),
                       (["--bench-cpus", "4096"], "this process may not run on CPU 4096"),
                       (["--json", "/nonexistent/folder/s.json"], "its folder does not exist")):
        done = run_series([*SMALL, *args])
        assert done.returncode != 0 and said in done.stderr, (args, done.stdout, done.stderr)
        assert "== " not in done.stdout, done.stdout
