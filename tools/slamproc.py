"""Start and stop `slam serve`, and run `slam bench` against it, for the scripts in tools/
(stdlib only)."""
import argparse
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def slam_binary():
    """The release build if there is one (benchmarks), else the debug build."""
    env = os.environ.get("SLAM_BIN")
    if env:
        return env
    for path in (".build/release/slam", ".build-release/release/slam", ".build/debug/slam"):
        full = os.path.join(ROOT, path)
        if os.path.exists(full):
            return full
    raise SystemExit("no slam binary: run `swift build -c release --product slam` first")


def warn_if_debug_build():
    """For the benchmark scripts: says on stderr when the binary they will run is a debug build
    (`slam_binary` falls back to one), whose figures are not the release build's."""
    binary = slam_binary()
    if "/debug/" in binary:
        print(f"note: {binary} is a debug build: its figures are not comparable with a release build's "
              "(swift build -c release --product slam)", file=sys.stderr, flush=True)


class Server:
    """`slam serve` on a fresh database (or `db`) with ephemeral loopback ports."""

    def __init__(self, *extra, db=None, binary=None, timings=False):
        self.dir = tempfile.mkdtemp(prefix="slam-tools-")
        self.db = db or os.path.join(self.dir, "slam.sqlite")
        self.binary = binary or slam_binary()
        # `slam serve --timings`: the writer's batches and the store's syncs, written at the stop.
        self.timings = os.path.join(self.dir, "timings.csv") if timings else None
        self.args = [self.binary, "serve", "--db", self.db, "--commands", "tcp://127.0.0.1:*",
                     "--events", "tcp://127.0.0.1:*", *extra, *(["--timings", self.timings] if timings else [])]
        self.started = time.monotonic()
        # Its log goes to a file: a pipe nobody reads would fill and stop the server.
        self.stderr_path = os.path.join(self.dir, "serve.stderr")
        with open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=err, text=True)
        line = self.proc.stdout.readline()
        self.ready_seconds = time.monotonic() - self.started
        m = re.match(r"SLAM ready commands=(\S+) events=(\S+)", line or "")
        if not m:
            raise SystemExit(f"slam serve did not start: {line!r} {self.log()}")
        self.commands, self.events = m.group(1), m.group(2)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=60)
        if code != 0:
            raise SystemExit(f"slam serve exited {code}: {self.log()}")

    def remove_files(self):
        """Deletes this server's directory: its log, and its database unless `db` was given
        (a benchmark's is tens of MB). Call it once a run has passed; a failed run keeps them."""
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self):
        """What the server wrote to stderr so far."""
        with open(self.stderr_path) as f:
            return f.read()


def percentiles(values):
    """{"p50", "p99"} of `values` (nearest rank below), or None when there are none."""
    if not values:
        return None
    v = sorted(values)
    return {"p50": v[len(v) // 2], "p99": v[len(v) * 99 // 100]}


def server_timings(path, window_seconds):
    """What `slam serve --timings` wrote, over the last `window_seconds` up to the end of its last
    batch of commands (a run's rush: the set-up before it, and the checkpoints and the stop after
    it, left out): the batches and their median size, each part's p50 and p99 in µs (a batch's
    execution, the writer's CPU time in it, its commit, the WAL syncs of the commits and the
    database file's syncs: None when there were none), and what the server timed but did not keep
    (`dropped`: batches, syncs) or could not commit (`failed` batches)."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))[1:]
    batches = [(float(r[1]), float(r[2]), float(r[3]), int(r[4]), float(r[5])) for r in rows if r[0] == "batch"]
    if not batches:
        return None
    end = max(b[0] + b[1] + b[2] for b in batches)
    start = end - window_seconds * 1e6
    batches = [b for b in batches if b[0] >= start]
    syncs = [(r[0], float(r[2])) for r in rows if r[0] in ("wal-sync", "db-sync") and start <= float(r[1]) <= end]
    dropped = next(([int(r[2]), int(r[3]), int(r[4])] for r in rows if r[0] == "dropped"), [0, 0, 0])
    sizes = sorted(b[3] for b in batches)
    return {"batches": len(batches), "commandsPerBatch": sizes[len(sizes) // 2],
            "execMicros": percentiles([b[1] for b in batches]), "execCPUMicros": percentiles([b[4] for b in batches]),
            "commitMicros": percentiles([b[2] for b in batches]),
            "walSyncMicros": percentiles([s[1] for s in syncs if s[0] == "wal-sync"]),
            "dbSyncMicros": percentiles([s[1] for s in syncs if s[0] == "db-sync"]),
            "dropped": {"batches": dropped[0], "syncs": dropped[1]}, "failed": dropped[2]}


def bench_run(label, serve_args, bench_args, bench_cpus=None, timings=False):
    """One benchmark run: `slam serve *serve_args` on a fresh database, `slam bench *bench_args`
    against it (on `bench_cpus` only, as `taskset -c` would, when given), the server stopped.
    Returns the bench's report; with `timings`, the server also runs with `--timings` and the
    report gets `serverTimings` (`server_timings` over the run's `--duration`). Exits naming
    `label` when the run cannot be compared: no report, a server that stopped answering mid-run
    (exit 2), or one that ran with another group-commit or synchronous setting than asked for;
    its directory is then kept."""
    server = Server(*serve_args, timings=timings)
    out = os.path.join(server.dir, "bench.json")
    pin = (lambda: os.sched_setaffinity(0, bench_cpus)) if bench_cpus else None
    try:
        cmd = [server.binary, "bench", "--server", server.commands, "--events", server.events, "--json", out, *bench_args]
        where = f"taskset -c {','.join(map(str, bench_cpus))} " if bench_cpus else ""
        print(f"== {label}: slam serve {' '.join(serve_args)}; {where}slam bench {' '.join(bench_args)}", flush=True)
        # The bench exits 1 when its invariant checks fail, having written its report: that
        # run is the caller's to report as VIOLATED (and exit 1 for); with no report, it failed.
        done = subprocess.run(cmd, stderr=subprocess.PIPE, text=True, preexec_fn=pin)
    finally:
        server.stop()
    if not os.path.exists(out):
        sys.exit(f"slam bench failed (exit {done.returncode}): {done.stderr.strip()[-2000:]} (kept for a look: {server.dir})")
    with open(out) as f:
        report = json.load(f)
    if report.get("serverStoppedAnswering") or done.returncode not in (0, 1):
        # A report of what was measured, from a server that stopped answering (exit 2): not a run
        # to compare, and its store is kept for a look.
        sys.exit(f"{label}: slam bench exit {done.returncode}: "
                 f"{report.get('serverStoppedAnsweringError', done.stderr.strip()[-2000:])} (kept for a look: {server.dir})")
    want = "--no-group-commit" not in serve_args
    if report.get("groupCommit") is not want or report.get("synchronous") != _sync_of(serve_args):
        sys.exit(f"{label}: the server reports groupCommit={report.get('groupCommit')}, "
                 f"synchronous={report.get('synchronous')}; asked for {want}, {_sync_of(serve_args)} "
                 f"(kept for a look: {server.dir})")
    if timings:
        duration = float(bench_args[bench_args.index("--duration") + 1]) if "--duration" in bench_args else 10.0
        report["serverTimings"] = server_timings(server.timings, duration) if os.path.exists(server.timings) else None
    # A run that passed leaves nothing behind; a violated one keeps its database and report.
    if report.get("invariants", {}).get("ok", True):
        server.remove_files()
    else:
        print(f"{label}: invariants VIOLATED; kept for a look: {server.dir}", flush=True)
    return report


def _sync_of(serve_args):
    """The synchronous mode `slam serve *serve_args` runs with (FULL by default)."""
    return serve_args[serve_args.index("--sync") + 1].upper() if "--sync" in serve_args else "FULL"


def cpu_list(text):
    """A CPU list as `taskset -c` takes it ("0", "0-3,5") for `bench_run`'s `bench_cpus`;
    refused (argparse's error) when malformed or naming a CPU this process may not run on."""
    cpus = set()
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)(?:-(\d+))?\s*", part)
        if not m or (m.group(2) and int(m.group(2)) < int(m.group(1))):
            raise argparse.ArgumentTypeError(f"{text!r}: not a CPU list such as 0 or 0-3,5")
        cpus.update(range(int(m.group(1)), int(m.group(2) or m.group(1)) + 1))
    allowed = os.sched_getaffinity(0)
    if not cpus <= allowed:
        raise argparse.ArgumentTypeError(f"{text!r}: this process may not run on CPU "
                                         f"{','.join(map(str, sorted(cpus - allowed)))} "
                                         f"(it may on {','.join(map(str, sorted(allowed)))})")
    return sorted(cpus)
