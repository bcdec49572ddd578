#!/usr/bin/env python3
"""The README's benchmark series (Performance: The latest figures) in one command.

Runs each kind of run the README's table gives, each run against a fresh `slam serve` as the
README's commands do (the server `--writer-cpu 1 --io-cpu 0`, the bench on CPU 0 as
`taskset -c 0` would put it), each kind's runs spread evenly over the series rather than run
in a block (the machine's speed drifts within the hour, and each kind then sees the same
drift). Then it prints
the table: per kind, the range over its runs of commands/s, p50, p99, p99.9, publish lag p99
and WAL peak; each DESIGN.md target against the runs that measure it; and the share of the
CPUs' time the host took over the series (steal, from /proc/stat: a slow hour's mark on a
virtual machine when there is one; this machine's slower hours had none), and the time to wake a
thread on an idle CPU, measured before each run by tools/wake.c (compiled with clang or cc; the
median of 2,000 round trips between CPUs 0 and 1, 200 µs apart): on the README's machine about
40 µs in its fast hours and 51-61 µs in its slower ones (docs/benchmark-history.md, "What marks
a slower hour"), so a series' figures come with the hour's mark; and the disk's flush, measured
before each run too (500 writes of 48 KiB, each followed by fdatasync, in the file system the
stores are made in: p50 and p99 in µs), since every commit of the server waits for one. Each
server runs with `--timings` too: the writer's batches (their execution, the writer's CPU time
in it, and their commit) and
the store's syncs (the writer's WAL syncs, the database file's) over each run's last --duration
seconds (its rush), their p50 and p99 on each run's line and in its JSON (`serverTimings`), and
for each kind the medians over its runs: where the writer's time went, run by run and hour by
hour.

A kind is `closed:CxK` (`slam bench --max`, C connections, K in flight each), `open:R` (`--rate
R`) or `queue:CxK` (`--max --queue`), with `*N` for N runs of it:

    swift build -c release --product slam
    python3 tools/series.py                  # the README's series: about 5 minutes
    python3 tools/series.py --runs "open:10000*8 closed:8x32*8" --duration 60 --json /tmp/s.json
    python3 tools/series.py --from-json /tmp/s.json   # its summary again, from the reports kept
"""
import argparse
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import slamproc  # noqa: E402

README_RUNS = "closed:8x32*6 closed:8x128*2 closed:8x256 open:3000*2 open:10000*8 queue:8x32*2"
# DESIGN.md section 4.
TARGET_RATE = 30000
TARGET_P99_MS = 5.0
TARGET_P99_AT = 10000
TARGET_LAG_MS = 50.0


class Kind:
    """One kind of run, from its spelling in --runs."""

    def __init__(self, text):
        m = re.fullmatch(r"(closed|queue):(\d+)x(\d+)(?:\*(\d+))?|open:(\d+)(?:\*(\d+))?", text)
        if not m:
            raise argparse.ArgumentTypeError(f"{text!r}: a run is closed:CxK, queue:CxK or open:R, "
                                             "with *N for N runs (closed:8x32*6)")
        if m.group(1):
            self.loop, self.connections, self.in_flight = m.group(1), int(m.group(2)), int(m.group(3))
            self.count = int(m.group(4) or 1)
            self.rate = None
            self.args = ["--max", "--connections", str(self.connections), "--in-flight", str(self.in_flight)]
            if self.loop == "queue":
                self.args.append("--queue")
            queue = " with a waiting queue" if self.loop == "queue" else ""
            self.label = f"closed loop{queue}, {self.connections} × {self.in_flight}"
        else:
            self.loop, self.rate, self.count = "open", int(m.group(5)), int(m.group(6) or 1)
            self.args = ["--rate", str(self.rate)]
            self.label = f"open loop, {self.rate:,}/s offered"
        if self.count < 1:
            raise argparse.ArgumentTypeError(f"{text!r}: at least one run (*1)")
        self.name = text.split("*")[0]
        self.reports = []


def kinds_of(text):
    kinds = [Kind(part) for part in re.split(r"[\s,]+", text.strip()) if part]
    if not kinds:
        raise argparse.ArgumentTypeError("no runs given")
    names = [k.name for k in kinds]
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"a kind named twice in {text!r}: give its count once (*N)")
    return kinds


def interleaved(kinds):
    """Every run, the kinds spread over the series alike: each kind's j-th of n runs is placed at
    (j + ½)/n of the way, so that 2 runs of one kind among 8 of another come a quarter and three
    quarters through, not both at the start; ties go in the order the kinds were given."""
    slots = [((j + 0.5) / k.count, i, k) for i, k in enumerate(kinds) for j in range(k.count)]
    return [k for _, _, k in sorted(slots, key=lambda slot: slot[:2])]


def bench_cpus_of(text):
    """--bench-cpus: a CPU list, or `any` (an empty list: where the scheduler puts it)."""
    if text == "any":
        return []
    try:
        return slamproc.cpu_list(text)
    except AttributeError:  # no os.sched_getaffinity: not Linux
        raise argparse.ArgumentTypeError("pinning the bench needs Linux: give `any`")


def steal_ticks():
    """(steal, total) jiffies of every CPU so far, from /proc/stat; None off Linux."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    return fields[7], sum(fields)


class WakeProbe:
    """tools/wake.c, compiled once into `folder`; `measure()` is the median round trip in µs, or
    None (and `why` says why) when it cannot be compiled or run (no C compiler; no CPU 1)."""

    SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wake.c")
    ROUND_TRIPS, GAP_MICROS = 2000, 200

    def __init__(self, folder):
        self.binary, self.why = None, "no C compiler (clang or cc) to build tools/wake.c"
        for cc in ("clang", "cc"):
            if not shutil.which(cc):
                continue
            out = os.path.join(folder, "wake")
            try:
                done = subprocess.run([cc, "-O2", "-pthread", self.SOURCE, "-o", out], capture_output=True, text=True,
                                      timeout=120)
            except (OSError, subprocess.TimeoutExpired) as error:
                self.why = f"{cc} could not build tools/wake.c: {error}"
                continue
            if done.returncode == 0:
                self.binary, self.why = out, None
                return
            self.why = f"{cc} could not build tools/wake.c: {done.stderr.strip()[-300:]}"

    def measure(self):
        if not self.binary:
            return None
        try:
            done = subprocess.run([self.binary, str(self.ROUND_TRIPS), str(self.GAP_MICROS)], capture_output=True,
                                  text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as error:  # a probe that cannot run stops no series
            self.why = f"tools/wake.c: {error}"
            return None
        m = re.search(r"p50 ([\d.]+)", done.stdout)
        if done.returncode != 0 or not m:
            self.why = f"tools/wake.c: {(done.stderr or done.stdout).strip() or f'exit {done.returncode}'}"
            return None
        return float(m.group(1))


class SyncProbe:
    """The disk's flush, as a commit of the server meets it: `WRITES` writes of `SIZE` bytes (about
    a batch's WAL frames at 10,000/s) to a file in `folder`, each followed by `fdatasync` and
    timed, `GAP` s apart. `measure()` gives {"p50": µs, "p99": µs}, or None (and `why` says why)."""

    WRITES, SIZE, GAP = 500, 49152, 0.0003

    def __init__(self, folder):
        self.path, self.why = os.path.join(folder, "sync-probe"), None

    def measure(self):
        times = []
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                block = b"\x07" * self.SIZE
                for i in range(self.WRITES):
                    os.pwrite(fd, block, (i % 256) * self.SIZE)
                    started = time.perf_counter()
                    os.fdatasync(fd)
                    times.append((time.perf_counter() - started) * 1e6)
                    time.sleep(self.GAP)
            finally:
                os.close(fd)
                os.unlink(self.path)
        except OSError as error:  # a probe that cannot run stops no series
            self.why = f"the sync probe: {error}"
            return None
        return slamproc.percentiles(times)


def sync_line(series):
    """The summary's line on the disk-flush readings taken before the runs."""
    readings = [r.get("syncMicros") for k in series["kinds"] for r in k["reports"]]
    measured = [v for v in readings if v is not None]
    what = f"disk flush ({SyncProbe.WRITES} writes of {SyncProbe.SIZE // 1024} KiB, each followed by fdatasync"
    if not measured:
        why = series.get("syncProbe")
        return what + "): not measured" + (f" ({why})" if why else "")
    us = dict(fmt=lambda v, _: f"{v:.0f}", unit=" µs", median=True)
    return (what + ", before each run): p50 " + spread([v["p50"] for v in measured], **us)
            + ", p99 " + spread([v["p99"] for v in measured], **us) + not_measured_before(len(readings) - len(measured)))


def not_measured_before(missing):
    """The end of a probe's summary line when some runs had no reading."""
    return f"; not measured before {missing} run{'' if missing == 1 else 's'}" if missing else ""


def wake_line(series):
    """The summary's line on the idle-CPU wake-up readings taken before the runs."""
    readings = [r.get("wakeRoundTripMicros") for k in series["kinds"] for r in k["reports"]]
    measured = [v for v in readings if v is not None]
    if not measured:
        why = series.get("wakeProbe")
        return "idle-CPU wake-up round trip (tools/wake.c): not measured" + (f" ({why})" if why else "")
    return ("idle-CPU wake-up round trip (tools/wake.c, the median before each run): "
            + spread(measured, fmt=lambda v, _: f"{v:.0f}", unit=" µs", median=True)
            + not_measured_before(len(readings) - len(measured)))


TIMED = (("execMicros", "batch execution"), ("execCPUMicros", "its CPU time"), ("commitMicros", "commit"), ("walSyncMicros", "WAL sync"),
         ("dbSyncMicros", "database-file sync"))


def timings_text(t):
    """A run's `serverTimings` as "batch execution 150/1,000 µs, …" (p50/p99)."""
    if not t:
        return "not timed"
    parts = [f"{name} {t[key]['p50']:,.0f}/{t[key]['p99']:,.0f}" for key, name in TIMED if t.get(key)]
    return f"{t['batches']:,} batches of {t['commandsPerBatch']}: " + ", ".join(parts) + " µs (p50/p99)"


def timings_lines(kinds):
    """Per kind, the medians over its runs of each part's p50 and p99 (`slam serve --timings`)."""
    lines = []
    for kind in kinds:
        timed = [r["serverTimings"] for r in kind.reports if r.get("serverTimings")]
        if not timed:
            continue
        parts = []
        for key, name in TIMED:
            got = [t[key] for t in timed if t.get(key)]
            if got:
                parts.append(f"{name} {statistics.median(g['p50'] for g in got):,.0f}/"
                             f"{statistics.median(g['p99'] for g in got):,.0f}")
        lines.append(f"the writer in {kind.label} ({len(timed)} run{'' if len(timed) == 1 else 's'}; medians of p50/p99, "
                     f"µs): " + ", ".join(parts))
    return lines


def number(value, like):
    """A latency as the README writes it (0.94, 4.6, 15), to the precision `like` would have (a
    range's ends alike: 2.0–2.6, not 1.98–2.6)."""
    return f"{value:.2f}" if like < 2 else f"{value:.1f}" if like < 10 else f"{value:.0f}"


def p99_number(value, like):
    """A p99 as `number` writes it, but one just over the target with two decimals rounded up
    (5.04 and 5.001 as 5.04 and 5.01, not 5.0), so that a run counted as over it never prints as
    the target itself."""
    text = number(value, like)
    return f"{math.ceil(value * 100) / 100:.2f}" if value > TARGET_P99_MS and float(text) <= TARGET_P99_MS else text


def precision_of(values):
    """The value whose precision `number` gives a range of `values` (see `spread`)."""
    return max(values) if min(values) >= 10 else min(max(values), 9.99)


def spread(values, fmt=number, unit=" ms", median=False, note=None):
    """The range of `values` ("4.2–5.6 ms"), one figure when its ends print alike; then, in
    brackets, the median when asked for (three values or more, and a range) and `note`. The
    figures have the precision of the range's high end, but of one under 10 when the low end is
    (3.5–10.8 ms, not 4–11, where a single slow run would round every other one away)."""
    low, high = min(values), max(values)
    like = precision_of(values)
    collapsed = fmt(low, like) == fmt(high, like)
    text = (fmt(high, like) if collapsed else f"{fmt(low, like)}–{fmt(high, like)}") + unit
    notes = [f"median {fmt(statistics.median(values), like)}"] if median and len(values) >= 3 and not collapsed else []
    notes += [note] if note else []
    return text + (f" ({'; '.join(notes)})" if notes else "")


def lag_p99(report):
    """The publish lag p99 of a run whose subscriber received events; None when it received
    none (the bench then writes null; until 2026-12-07 it wrote a lag of 0 over no events)."""
    lag = report.get("publishLag") or {}
    return lag.get("p99Ms") if lag.get("count", 0) > 0 else None


def row(kind):
    reports = kind.reports
    lat = [r["latency"] for r in reports]
    lags = [lag_p99(r) for r in reports if lag_p99(r) is not None]
    p99s = [x["p99Ms"] for x in lat]
    # At the target's rate, as the README's table: the median, and how many runs met it.
    at = kind.rate == TARGET_P99_AT
    under = sum(v <= TARGET_P99_MS for v in p99s)
    p99 = spread(p99s, fmt=p99_number, median=at, note=f"{under} run{'' if under == 1 else 's'} at or under {TARGET_P99_MS:g}" if at else None)
    return [f"{kind.label} ({len(reports)})",
            spread([r["commandsPerSecond"] for r in reports], fmt=lambda v, _: f"{v:,.0f}", unit="", median=True),
            spread([x["p50Ms"] for x in lat]), p99, spread([x["p999Ms"] for x in lat]),
            spread(lags, fmt=lambda v, _: f"{v:.0f}") if lags else "none received",
            spread([r["walPeakBytes"] / 1048576 for r in reports], fmt=lambda v, _: f"{v:.0f}", unit=" MiB")]


def targets(kinds):
    """Each target against the runs that measure it: 'k of n'."""
    lines = []
    closed = [k for k in kinds if k.loop == "closed"]
    if closed:
        lines.append(f"{TARGET_RATE:,} commands/s or more: " + "; ".join(
            f"{k.label} {sum(r['commandsPerSecond'] >= TARGET_RATE for r in k.reports)} of {len(k.reports)} runs"
            for k in closed))
    at = [k for k in kinds if k.rate == TARGET_P99_AT]
    if at:
        p99s = [r["latency"]["p99Ms"] for k in at for r in k.reports]
        lines.append(f"p99 at or under {TARGET_P99_MS:g} ms at {TARGET_P99_AT:,}/s offered: "
                     f"{sum(v <= TARGET_P99_MS for v in p99s)} of {len(p99s)} runs (median {p99_number(statistics.median(p99s), precision_of(p99s))} ms)")
    lines.append(f"publish lag p99 under {TARGET_LAG_MS:g} ms: " + "; ".join(
        f"{k.label} {sum(lag_p99(r) is not None and lag_p99(r) < TARGET_LAG_MS for r in k.reports)} "
        f"of {len(k.reports)}" for k in kinds))
    return lines


def incidents(kinds):
    """What went wrong in any run, counted over the series (the README says "no run had …"):
    timeouts, refusals and lost replies; the run's events the subscriber did not receive (where
    the server said how many there were); expiries recorded early, late or not at all; servers
    restarted during a run; and the open loop's commands not sent on time (no simulated user
    free) or not at all (among them slots the bench's own thread did not reach in time:
    `unreached`). Returns them with the number of runs whose invariant check failed."""
    reports = [r for k in kinds for r in k.reports]
    total = {key: sum(r["outcomes"].get(key, 0) for r in reports) for key in ("timedOut", "overloaded", "noReply", "otherErrors")}
    total["repliesDropped"] = sum(r.get("repliesDropped") or 0 for r in reports)
    total["eventsNotReceived"] = sum(r.get("eventsNotReceived") or 0 for r in reports)
    for key in ("early", "late", "missing"):
        total[f"expiries {key}"] = sum((r.get("expiries") or {}).get(key) or 0 for r in reports)
    total["serverRestarted"] = sum(bool(r.get("serverRestarted")) for r in reports)
    opened = [r["outcomes"] for k in kinds if k.loop == "open" for r in k.reports]
    for key in ("starved", "notSent", "unreached"):
        total[f"open loop {key}"] = sum(o.get(key, 0) for o in opened)
    violated = sum(not r.get("invariants", {}).get("ok", True) for r in reports)
    return total, violated


def machine():
    """The machine, the binary (its path and when it was built) and the tools' commit (`git
    describe --dirty`: the binary may be of another; the README names the build's)."""
    model = None
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
    except OSError:
        pass
    try:
        head = subprocess.run(["git", "-C", slamproc.ROOT, "describe", "--always", "--dirty"],
                              capture_output=True, text=True).stdout.strip() or None
    except OSError:
        head = None
    binary = slamproc.slam_binary()
    built = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(os.path.getmtime(binary))) if os.path.exists(binary) else None
    return {"cpu": model, "cpus": os.cpu_count(), "platform": platform.platform(),
            "binary": binary, "binaryBuilt": built, "toolsCommit": head}


def summary(series):
    """The series as text: when, where and how; the table; the targets; what went wrong. From a
    series just made or read back from its JSON (`--from-json`)."""
    kinds = kinds_of(" ".join(k["kind"] for k in series["kinds"]))
    for kind, saved in zip(kinds, series["kinds"]):
        kind.reports = saved["reports"]
    kinds = [k for k in kinds if k.reports]
    m, steal, cpus = series["machine"], series.get("stealPercent"), series.get("benchCPUs")
    ended = series.get("ended") or series.get("saved") or series["started"]  # an incomplete one: its last run
    lines = [time.strftime("%Y-%m-%d %H:%M", time.gmtime(series["started"])) + time.strftime("–%H:%M UTC", time.gmtime(ended))
             + f"; {m['cpus']} CPUs ({m['cpu']}), {m['platform']}; steal {'unknown' if steal is None else f'{steal:.1f}%'}"
             + ("" if series.get("complete") else f"; INCOMPLETE: {sum(len(k.reports) for k in kinds)} of {series['runs']} runs made"),
             f"{m['binary']} (built {m['binaryBuilt']}; tools at {m['toolsCommit']})"
             + f"; slam serve {' '.join(series['serve']) or '(not pinned)'}; the bench "
             + (f"on CPU {','.join(map(str, cpus))}" if cpus else "where the scheduler puts it")
             + f"; {series['duration']:g} s a run, a fresh database each", wake_line(series), sync_line(series), ""]
    if not kinds:
        return "\n".join(lines + ["no run made"])
    lines.append("| " + " | ".join(HEADER) + " |")
    lines.append("|" + "---|" * len(HEADER))
    lines += ["| " + " | ".join(row(k)) + " |" for k in kinds]
    lines.append("")
    lines += targets(kinds)
    lines += timings_lines(kinds)
    total, violated = incidents(kinds)
    lines.append("in all runs: " + ", ".join(f"{key} {value}" for key, value in total.items())
                 + f"; invariants {'OK in every run' if not violated else f'VIOLATED in {violated}'}")
    return "\n".join(lines)


HEADER = ["run", "commands/s", "p50", "p99", "p99.9", "publish lag p99", "WAL peak"]


def save(series, path):
    """Writes the series so far (after every run: a series stopped by a failed run keeps the
    runs before it), through a new file renamed over the old."""
    series["saved"] = time.time()
    with open(path + ".tmp", "w") as f:
        json.dump(series, f, indent=2)
    os.replace(path + ".tmp", path)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=kinds_of, default=README_RUNS, metavar="KINDS",
                   help=f"the runs to make (default: the README's, {README_RUNS!r})")
    p.add_argument("--duration", type=float, default=10, help="each run's --duration (default 10 s)")
    p.add_argument("--seats", type=int, default=50000)
    p.add_argument("--users", type=int, default=20000)
    p.add_argument("--writer-cpu", type=int, default=1, help="slam serve --writer-cpu (default 1; -1: not pinned)")
    p.add_argument("--io-cpu", type=int, default=0, help="slam serve --io-cpu (default 0; -1: not pinned)")
    p.add_argument("--bench-cpus", type=bench_cpus_of, metavar="LIST",
                   help="the CPUs the bench may run on, as `taskset -c LIST` (default 0, or the first this process "
                        "may run on; 'any': where the scheduler puts it)")
    p.add_argument("--json", help="write every run's report here, after each run")
    p.add_argument("--from-json", metavar="FILE", help="make no run: print the summary of the series in FILE (its --json)")
    a = p.parse_args()
    if a.from_json:
        with open(a.from_json) as f:
            print(summary(json.load(f)))
        return
    if a.duration <= 0 or a.seats < 4 or a.users < 1:
        p.error("--duration must be above 0, --seats at least 4 and --users at least 1")
    if a.json and not os.path.isdir(os.path.dirname(os.path.abspath(a.json))):
        p.error(f"--json {a.json}: its folder does not exist")
    kinds = a.runs
    if a.bench_cpus is None:
        allowed = os.sched_getaffinity(0)
        a.bench_cpus = [0 if 0 in allowed else min(allowed)]
    bench_cpus = a.bench_cpus or None
    serve = []
    for option, cpu in (("--writer-cpu", a.writer_cpu), ("--io-cpu", a.io_cpu)):
        if cpu >= 0:
            serve += [option, str(cpu)]
    common = ["--duration", f"{a.duration:g}", "--seats", str(a.seats), "--users", str(a.users)]

    slamproc.warn_if_debug_build()
    order = interleaved(kinds)
    series = {"started": time.time(), "ended": None, "complete": False, "runs": len(order), "machine": machine(),
              "stealPercent": None, "serve": serve, "benchCPUs": bench_cpus, "duration": a.duration,
              "kinds": [{"kind": k.name, "label": k.label, "reports": k.reports} for k in kinds]}
    steal0 = steal_ticks()
    with tempfile.TemporaryDirectory() as probe_dir:
        # The stores are made in the temporary folder too (slamproc), so the flush is their disk's.
        probe, sync_probe = WakeProbe(probe_dir), SyncProbe(probe_dir)
        for i, kind in enumerate(order):
            wake, sync = probe.measure(), sync_probe.measure()
            series["wakeProbe"], series["syncProbe"] = probe.why, sync_probe.why
            r = slamproc.bench_run(f"{kind.name} ({i + 1}/{len(order)})", serve, [*kind.args, *common], bench_cpus,
                                   timings=True)
            r["wakeRoundTripMicros"], r["syncMicros"] = wake, sync
            kind.reports.append(r)
            lag = lag_p99(r)
            print(f"   {r['commandsPerSecond']:,.0f} commands/s, p50 {r['latency']['p50Ms']:.2f} p99 {r['latency']['p99Ms']:.2f} "
                  f"p99.9 {r['latency']['p999Ms']:.2f} ms, publish lag p99 {'-' if lag is None else f'{lag:.0f} ms'}; "
                  f"wake-up before it {'not measured' if wake is None else f'{wake:.0f} µs'}, disk flush "
                  + ("not measured" if sync is None else f"p50 {sync['p50']:.0f} p99 {sync['p99']:.0f} µs")
                  + f"; the writer: {timings_text(r.get('serverTimings'))}", flush=True)
            if a.json:
                save(series, a.json)
    steal1 = steal_ticks()
    series.update(ended=time.time(), complete=True,
                  stealPercent=(100 * (steal1[0] - steal0[0]) / max(1, steal1[1] - steal0[1])) if steal0 and steal1 else None)
    for saved, kind in zip(series["kinds"], kinds):
        saved["row"] = dict(zip(HEADER, row(kind)))
    series["targets"] = targets(kinds)
    series["incidents"], series["violated"] = incidents(kinds)
    if a.json:
        save(series, a.json)
    print()
    print(summary(series))
    if series["violated"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
