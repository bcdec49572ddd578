"""tools/series.py, the README's benchmark series in one command (issue #5): a short series of
each kind of run against the real server (the table, the targets and what the JSON keeps), the
order it takes the runs in, and its refusals of what it cannot run."""
import json
import os
import re
import shutil
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
        # The targets: 30,000 commands/s measured by the closed loop without the queue only; the
        # 10,000/s p99 not at all (no such run); the lag in every kind.
        rate_line = next(line for line in done.stdout.splitlines() if line.startswith("30,000 commands/s"))
        assert rate_line.startswith("30,000 commands/s or more: closed loop, 2 × 4 ") and "queue" not in rate_line, rate_line
        assert "at 10,000/s offered" not in done.stdout, done.stdout
        lags = [r["publishLag"]["p99Ms"] for k in result["kinds"] for r in k["reports"]]
        assert f"publish lag p99 under 50 ms: closed loop, 2 × 4 {sum(v < 50 for v in lags[:2])} of 2" in done.stdout
        assert "invariants OK in every run" in done.stdout, done.stdout
        assert re.search(r"steal \d+\.\d%", done.stdout), done.stdout
        # The idle-CPU wake-up, measured before each run where the machine allows (a C compiler
        # for tools/wake.c, and CPUs 0 and 1); otherwise said not measured, and why.
        readings = [r.get("wakeRoundTripMicros") for k in result["kinds"] for r in k["reports"]]
        if {0, 1} <= os.sched_getaffinity(0) and (shutil.which("clang") or shutil.which("cc")):
            assert len(readings) == 4 and all(isinstance(v, float) and v > 0 for v in readings), readings
            assert re.search(r"^idle-CPU wake-up round trip \(tools/wake\.c, the median before each run\): "
                             r"\d+(–\d+)? µs", done.stdout, re.M), done.stdout
            assert len(re.findall(r"; wake-up before it \d+ µs, disk flush ", done.stdout, re.M)) == 4, done.stdout
        else:
            assert "idle-CPU wake-up round trip (tools/wake.c): not measured (" in done.stdout, done.stdout
        # The disk's flush, measured before each run (Python alone: every machine has it).
        flushes = [r.get("syncMicros") for k in result["kinds"] for r in k["reports"]]
        assert len(flushes) == 4 and all(0 < f["p50"] <= f["p99"] for f in flushes), flushes
        assert re.search(r"^disk flush \(500 writes of 48 KiB, each followed by fdatasync, before each run\): "
                         r"p50 \d+(–\d+)? µs \(median \d+\), p99 \d+(–\d+)? µs", done.stdout, re.M), done.stdout
        assert len(re.findall(r", disk flush p50 \d+ p99 \d+ µs; ", done.stdout, re.M)) == 4, done.stdout
        # The writer's batches and the store's syncs, timed inside each server (`--timings`)
        # over its run's last --duration seconds: on each run's line, in its JSON, and per kind.
        for k in result["kinds"]:
            for r in k["reports"]:
                t = r["serverTimings"]
                assert t["batches"] > 0 and t["commandsPerBatch"] >= 1 and t["dropped"]["batches"] == 0 and t["failed"] == 0, t
                for key in ("execMicros", "execCPUMicros", "commitMicros", "walSyncMicros"):  # FULL: every commit syncs
                    assert 0 <= t[key]["p50"] <= t[key]["p99"], (key, t)
        timed = r"[\d,]+/[\d,]+"
        assert len(re.findall(rf"; the writer: [\d,]+ batches of \d+: batch execution {timed}, its CPU time {timed}, commit {timed}, "
                              rf"WAL sync {timed}(, database-file sync {timed})? µs \(p50/p99\)$", done.stdout, re.M)) == 4, \
            done.stdout
        assert re.search(rf"^the writer in closed loop, 2 × 4 \(2 runs; medians of p50/p99, µs\): batch execution {timed}, "
                         rf"its CPU time {timed}, commit {timed}, WAL sync {timed}", done.stdout, re.M), done.stdout
        # The tests run the debug build: said, since its figures are not a release build's.
        assert ("is a debug build" in done.stderr) == ("/debug/" in SLAM), done.stderr
        # The runs in the order given by `interleaved`, each named with its place.
        made = re.findall(r"^== (\S+) \((\d+)/4\)", done.stdout, re.M)
        assert made == [("closed:2x4", "1"), ("open:300", "2"), ("queue:2x4", "3"), ("closed:2x4", "4")], made
        # The JSON is of a complete series, and gives the same summary again.
        assert result["complete"] is True and result["runs"] == 4
        assert kinds["closed:2x4"]["row"]["commands/s"] == cell, kinds["closed:2x4"]["row"]
        again = run_series(["--from-json", out])
        assert again.returncode == 0 and done.stdout.rstrip().endswith(again.stdout.strip()), (again.stdout, done.stdout)


def test_the_kinds_are_spread_over_the_series():
    kinds = series.kinds_of("open:10000*3 closed:8x32 queue:8x32*2")
    assert [k.name for k in series.interleaved(kinds)] == \
        ["open:10000", "queue:8x32", "open:10000", "closed:8x32", "queue:8x32", "open:10000"]
    # The README's series: a kind of several runs has runs in both halves, and one of a single
    # run comes in the middle third, not all of them at the start.
    order = [k.name for k in series.interleaved(series.kinds_of(series.README_RUNS))]
    assert len(order) == 21
    for name in set(order):
        where = [i for i, n in enumerate(order) if n == name]
        if len(where) > 1:
            assert min(where) < 10 < max(where), (name, where, order)
        else:
            assert 7 <= where[0] <= 13, (name, where, order)
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
    kind.reports = [{"commandsPerSecond": 9999, "walPeakBytes": 40 << 20, "publishLag": {"count": 1000, "p99Ms": lag},
                     "latency": {"p50Ms": 0.9, "p99Ms": p99, "p999Ms": 7.0}}
                    for p99, lag in ((4.2, 7.0), (5.0, 60.0), (5.6, 16.0))]
    cells = series.row(kind)
    assert cells[0] == "open loop, 10,000/s offered (3)"
    assert cells[3] == "4.2–5.6 ms (median 5.0; 2 runs at or under 5)", cells
    assert cells[5] == "7–60 ms" and cells[6] == "40 MiB", cells
    assert series.targets([kind]) == [
        "p99 at or under 5 ms at 10,000/s offered: 2 of 3 runs (median 5.0 ms)",
        "publish lag p99 under 50 ms: open loop, 10,000/s offered 2 of 3"]
    # Two runs: a range without a median; one: a single figure.
    kind.reports = kind.reports[:2]
    assert series.row(kind)[3] == "4.2–5.0 ms (2 runs at or under 5)"
    kind.reports = kind.reports[:1]
    assert series.row(kind)[1:4] == ["9,999", "0.90 ms", "4.2 ms (1 run at or under 5)"]
    # A p99 just over 5 ms is counted over, and never printed as 5.0.
    kind.reports = [dict(kind.reports[0], latency={"p50Ms": 0.9, "p99Ms": p99, "p999Ms": 7.0})
                    for p99 in (4.2, 5.04, 5.04)]
    assert series.row(kind)[3] == "4.2–5.04 ms (median 5.04; 1 run at or under 5)", series.row(kind)
    assert series.targets([kind])[0] == "p99 at or under 5 ms at 10,000/s offered: 1 of 3 runs (median 5.04 ms)"
    kind.reports[1]["latency"] = dict(kind.reports[1]["latency"], p99Ms=5.001)
    assert series.row(kind)[3] == "4.2–5.04 ms (median 5.01; 1 run at or under 5)", series.row(kind)
    # One slow run does not round the others to whole milliseconds.
    kind.reports[2]["latency"] = dict(kind.reports[2]["latency"], p99Ms=10.83)
    assert series.row(kind)[3] == "4.2–10.8 ms (median 5.01; 1 run at or under 5)", series.row(kind)
    assert series.targets([kind])[0] == "p99 at or under 5 ms at 10,000/s offered: 1 of 3 runs (median 5.01 ms)"
    assert series.spread([12.4, 18.6]) == "12–19 ms" and series.spread([0.87, 1.27]) == "0.87–1.27 ms"


def test_server_timings_keep_the_runs_last_seconds(tmp_path):
    """`slamproc.server_timings`: what `slam serve --timings` wrote, over the window before the
    last batch of commands (the rush; the set-up before it left out), with the records dropped."""
    import slamproc
    path = tmp_path / "timings.csv"
    path.write_text("kind,at_us,micros,commit_micros,commands,cpu_micros\n"
                    "batch,1000000,9000,9000,500,8000\n"        # the set-up, 4 s before the rush's end: left out
                    "wal-sync,1000100,8000,,,\n"
                    + "".join(f"batch,{4_000_000 + i * 1000},{100 + i},{200 + i},3,{50 + i}\n" for i in range(100))
                    + "wal-sync,4000500,150,,,\nwal-sync,4001500,450,,,\ndb-sync,4002000,2500,,,\n"
                    "wal-sync-other,4003000,9999,,,\n"         # a checkpoint's: not the commits'
                    "db-sync,4200000,50000,,,\n"               # after the last batch's end (the stop's): left out
                    "dropped,,0,7,2,\n")
    t = slamproc.server_timings(str(path), 1.0)
    assert t["batches"] == 100 and t["commandsPerBatch"] == 3, t
    assert t["execMicros"] == {"p50": 150, "p99": 199} and t["commitMicros"] == {"p50": 250, "p99": 299}, t
    assert t["execCPUMicros"] == {"p50": 100, "p99": 149}, t
    assert t["walSyncMicros"] == {"p50": 450, "p99": 450} and t["dbSyncMicros"] == {"p50": 2500, "p99": 2500}, t
    assert t["dropped"] == {"batches": 0, "syncs": 7} and t["failed"] == 2
    # A window reaching back to the set-up takes it in; a file without batches gives nothing.
    assert slamproc.server_timings(str(path), 10.0)["batches"] == 101
    path.write_text("kind,at_us,micros,commit_micros,commands,cpu_micros\nwal-sync,1,5,,,\ndropped,,0,0,0,\n")
    assert slamproc.server_timings(str(path), 1.0) is None
    assert series.timings_text(None) == "not timed"
    assert series.timings_text({"batches": 1234, "commandsPerBatch": 3, "execMicros": {"p50": 150.4, "p99": 1999.6},
                                "execCPUMicros": {"p50": 90, "p99": 700}, "commitMicros": {"p50": 250, "p99": 299},
                                "walSyncMicros": None, "dbSyncMicros": None}) == \
        "1,234 batches of 3: batch execution 150/2,000, its CPU time 90/700, commit 250/299 µs (p50/p99)"


def test_the_wake_up_line_says_what_was_measured_and_what_was_not(tmp_path, monkeypatch):
    """The summary's idle-CPU wake-up readings: their range and median, the runs before which
    none was taken, and a series without any (one from before 2026-12-07, or a machine without a
    C compiler) said not measured, with the probe's reason when there is one."""
    def of(*readings, why=None):
        return {"wakeProbe": why, "kinds": [{"reports": [{"wakeRoundTripMicros": v} for v in readings]}]}
    line = "idle-CPU wake-up round trip (tools/wake.c, the median before each run): "
    assert series.wake_line(of(41.2, 58.4, 44.0)) == line + "41–58 µs (median 44)"
    assert series.wake_line(of(41.2, None)) == line + "41 µs; not measured before 1 run"
    assert series.wake_line(of(None, None, why="tools/wake.c: wake: cannot run on CPU 1")) == \
        "idle-CPU wake-up round trip (tools/wake.c): not measured (tools/wake.c: wake: cannot run on CPU 1)"
    assert series.wake_line({"kinds": [{"reports": [{}]}]}) == "idle-CPU wake-up round trip (tools/wake.c): not measured"
    # With no C compiler on the PATH the probe is not built, and says so.
    monkeypatch.setenv("PATH", str(tmp_path))
    probe = series.WakeProbe(str(tmp_path))
    assert probe.measure() is None and probe.why == "no C compiler (clang or cc) to build tools/wake.c"
    # A probe that cannot run (its binary gone) is not measured, and does not stop the series.
    probe.binary = str(tmp_path / "gone")
    assert probe.measure() is None and probe.why.startswith("tools/wake.c: ") and "gone" in probe.why, probe.why


def test_the_disk_flush_line_says_what_was_measured_and_what_was_not(tmp_path):
    """The summary's disk-flush readings (p50 and p99 of each probe): their ranges and medians,
    the runs before which none was taken, and a series without any said not measured."""
    def of(*readings, why=None):
        return {"syncProbe": why, "kinds": [{"reports": [{"syncMicros": v} for v in readings]}]}
    line = "disk flush (500 writes of 48 KiB, each followed by fdatasync, before each run): "
    assert series.sync_line(of({"p50": 240.2, "p99": 610.0}, {"p50": 318.0, "p99": 990.4}, {"p50": 260.0, "p99": 520.0})) \
        == line + "p50 240–318 µs (median 260), p99 520–990 µs (median 610)"
    assert series.sync_line(of({"p50": 240.2, "p99": 610.0}, None)) == line + "p50 240 µs, p99 610 µs; not measured before 1 run"
    assert series.sync_line({"kinds": [{"reports": [{}]}]}) == \
        "disk flush (500 writes of 48 KiB, each followed by fdatasync): not measured"
    # A probe whose folder is gone is not measured, says why, and does not stop the series.
    probe = series.SyncProbe(str(tmp_path / "gone"))
    assert probe.measure() is None and probe.why.startswith("the sync probe: ") and "gone" in probe.why, probe.why
    assert series.sync_line(of(None, why=probe.why)) == \
        "disk flush (500 writes of 48 KiB, each followed by fdatasync): not measured (" + probe.why + ")"
    # Where it can write, it measures: each flush timed, p50 no more than p99.
    reading = series.SyncProbe(str(tmp_path)).measure()
    assert reading is not None and 0 < reading["p50"] <= reading["p99"], reading
    assert os.listdir(tmp_path) == [], "the probe's file is left"


def test_a_run_whose_subscriber_received_nothing_does_not_meet_the_lag_target():
    """A run whose subscriber received no event (a wrong --events) has no lag to give (null in
    the bench's JSON; 0 in reports written before 2026-12-07), and does not count as under 50 ms."""
    kind = series.Kind("closed:8x32*2")
    kind.reports = [{"commandsPerSecond": 31000, "walPeakBytes": 50 << 20, "publishLag": lag,
                     "latency": {"p50Ms": 7.0, "p99Ms": 15.0, "p999Ms": 20.0}}
                    for lag in ({"count": 0, "p99Ms": None}, {"count": 0, "p99Ms": 0})]
    assert series.row(kind)[5] == "none received"
    assert series.targets([kind])[-1] == "publish lag p99 under 50 ms: closed loop, 8 × 32 0 of 2"
    kind.reports[1]["publishLag"] = {"count": 100, "p99Ms": 16.0}
    assert series.row(kind)[5] == "16 ms"
    assert series.targets([kind])[-1] == "publish lag p99 under 50 ms: closed loop, 8 × 32 1 of 2"


def test_commands_not_sent_on_time_are_counted_for_the_open_loop_only():
    """A closed loop through the queue has no schedule: its users waiting in the queue (starved)
    are not commands sent late, as they are in the open loop."""
    def report(**outcomes):
        return {"repliesDropped": 1, "invariants": {"ok": True}, "eventsNotReceived": None,
                "expiries": {"early": 0, "late": 1, "missing": 0}, "serverRestarted": False,
                "outcomes": {"timedOut": 0, "overloaded": 2, "noReply": 0, "otherErrors": 0, **outcomes}}
    queue, opened = series.Kind("queue:8x32"), series.Kind("open:10000*2")
    queue.reports = [report(starved=256, notSent=0, unreached=0)]
    opened.reports = [report(starved=3, notSent=2, unreached=2), report(starved=0, notSent=1, unreached=0)]
    opened.reports[0].update(eventsNotReceived=5, serverRestarted=True)
    total, violated = series.incidents([queue, opened])
    assert total == {"timedOut": 0, "overloaded": 6, "noReply": 0, "otherErrors": 0, "repliesDropped": 3,
                     "eventsNotReceived": 5, "expiries early": 0, "expiries late": 3, "expiries missing": 0,
                     "serverRestarted": 1, "open loop starved": 3, "open loop notSent": 3, "open loop unreached": 2}, total
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


# A `slam` for series.py to run: `serve` is the real one; `bench` runs the real bench, then, as
# $MODE says, reports its invariants violated (and exits 1, as the bench does then), or on its
# second run fails without a report.
WRAPPER = """#!{python}
import json, os, subprocess, sys
real, mode, count = os.environ["REAL_SLAM"], os.environ["MODE"], os.environ["COUNT"]
if sys.argv[1] != "bench":
    os.execv(real, [real, *sys.argv[1:]])
n = int(open(count).read()) + 1 if os.path.exists(count) else 1
open(count, "w").write(str(n))
if mode == "fail-second" and n == 2:
    sys.exit("slam bench: no such luck")
code = subprocess.run([real, *sys.argv[1:]]).returncode
if mode == "violate":
    out = sys.argv[sys.argv.index("--json") + 1]
    report = json.load(open(out))
    report["invariants"]["ok"] = False
    json.dump(report, open(out, "w"))
    code = 1
sys.exit(code)
"""


def run_wrapped(tmp, mode, args):
    wrapper = os.path.join(tmp, "slam")
    with open(wrapper, "w") as f:
        f.write(WRAPPER.format(python=sys.executable))
    os.chmod(wrapper, 0o755)
    return subprocess.run([sys.executable, SERIES, *SMALL, *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "SLAM_BIN": wrapper, "REAL_SLAM": SLAM, "MODE": mode,
                               "COUNT": os.path.join(tmp, "count")})


def test_a_violated_invariant_is_reported_and_the_series_exits_1():
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "series.json")
        done = run_wrapped(tmp, "violate", ["--runs", "closed:2x4", "--bench-cpus", "any", "--json", out])
        assert done.returncode == 1, done.stdout + done.stderr
        assert "invariants VIOLATED in 1" in done.stdout and "the bench where the scheduler puts it" in done.stdout, done.stdout
        kept = re.search(r"invariants VIOLATED; kept for a look: (\S+)", done.stdout).group(1)
        try:
            assert os.path.exists(os.path.join(kept, "bench.json")), kept
        finally:
            subprocess.run(["rm", "-rf", kept])
        with open(out) as f:
            result = json.load(f)
        assert result["violated"] == 1 and result["complete"] is True
        # --bench-cpus any: no list, and the bench could run on every CPU this process may.
        assert result["benchCPUs"] is None
        assert result["kinds"][0]["reports"][0]["benchCPUs"] == sorted(os.sched_getaffinity(0))


def test_a_series_stopped_by_a_failed_run_keeps_the_runs_before_it():
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "series.json")
        done = run_wrapped(tmp, "fail-second", ["--runs", "closed:2x4*2 open:300", "--json", out])
        assert done.returncode == 1 and "slam bench failed (exit 1): slam bench: no such luck" in done.stderr, \
            done.stdout + done.stderr
        kept = done.stderr.rsplit("(kept for a look: ", 1)[1].rstrip().rstrip(")")
        subprocess.run(["rm", "-rf", kept])
        assert "== open:300 (2/3)" in done.stdout and "(3/3)" not in done.stdout, done.stdout
        with open(out) as f:
            result = json.load(f)
        assert result["complete"] is False and result["runs"] == 3
        assert [len(k["reports"]) for k in result["kinds"]] == [1, 0]
        again = run_series(["--from-json", out])
        assert again.returncode == 0, again.stderr
        assert "INCOMPLETE: 1 of 3 runs made" in again.stdout and "| closed loop, 2 × 4 (1) |" in again.stdout, again.stdout
        assert "| open loop" not in again.stdout, again.stdout
