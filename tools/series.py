#!/usr/bin/env python3
"""The README's benchmark series (Performance: The latest figures) in one command.

Runs each kind of run the README's table gives, each run against a fresh `slam serve` as the
README's commands do (the server `--writer-cpu 1 --io-cpu 0`, the bench on CPU 0 as
`taskset -c 0` would put it), the kinds taken in turn rather than one block after another (the
machine's speed drifts within the hour, and each kind then sees the same drift). Then it prints
the table: per kind, the range over its runs of commands/s, p50, p99, p99.9, publish lag p99
and WAL peak; each DESIGN.md target against the runs that measure it; and the share of the
CPUs' time the host took over the series (steal, from /proc/stat: high in the machine's slow
hours).

A kind is `closed:CxK` (`slam bench --max`, C connections, K in flight each), `open:R` (`--rate
R`) or `queue:CxK` (`--max --queue`), with `*N` for N runs of it:

    swift build -c release --product slam
    python3 tools/series.py                  # the README's series: about 5 minutes
    python3 tools/series.py --runs "open:10000*8 closed:8x32*8" --duration 60 --json /tmp/s.json
"""
import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
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
    """Every run, the kinds in turn: with 8 of one and 2 of another, the two come first and
    last, not together."""
    order = []
    for i in range(max(k.count for k in kinds)):
        order += [k for k in kinds if i < k.count]
    return order


def bench_cpus_of(text):
    """--bench-cpus: a CPU list, or `any` (no list: where the scheduler puts it)."""
    return [] if text == "any" else slamproc.cpu_list(text)


def steal_ticks():
    """(steal, total) jiffies of every CPU so far, from /proc/stat; None off Linux."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    return fields[7], sum(fields)


def number(value, like):
    """A latency as the README writes it (0.94, 4.6, 15), to the precision `like` would have (a
    range's ends alike: 2.0–2.6, not 1.98–2.6)."""
    return f"{value:.2f}" if like < 2 else f"{value:.1f}" if like < 10 else f"{value:.0f}"


def spread(values, fmt=number, unit=" ms", median=False):
    """The range of `values` ("4.2–5.6 ms"), one figure when its ends print alike, with the
    median when asked for and there are three or more."""
    low, high = min(values), max(values)
    text = fmt(low, high) if fmt(low, high) == fmt(high, high) else f"{fmt(low, high)}–{fmt(high, high)}"
    if median and len(values) >= 3:
        text += f" (median {fmt(statistics.median(values), high)})"
    return text + unit


def row(kind):
    reports = kind.reports
    lat = [r["latency"] for r in reports]
    lags = [r["publishLag"]["p99Ms"] for r in reports if r.get("publishLag")]
    p99s = [x["p99Ms"] for x in lat]
    p99 = spread(p99s)
    if kind.rate == TARGET_P99_AT:
        # As the README's table: the median, and how many runs met the target.
        under = sum(v <= TARGET_P99_MS for v in p99s)
        p99 += f" (median {number(statistics.median(p99s), max(p99s))}; {under} at or under {TARGET_P99_MS:g})"
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
                     f"{sum(v <= TARGET_P99_MS for v in p99s)} of {len(p99s)} runs (median {number(statistics.median(p99s), max(p99s))} ms)")
    lines.append(f"publish lag p99 under {TARGET_LAG_MS:g} ms: " + "; ".join(
        f"{k.label} {sum((r.get('publishLag') or {}).get('p99Ms', float('inf')) < TARGET_LAG_MS for r in k.reports)} "
        f"of {len(k.reports)}" for k in kinds))
    return lines


def incidents(kinds):
    """What went wrong in any run, counted over the series (the README says "no run had …"), and
    the open loop's commands not sent on time (no simulated user free) or not at all (among them
    slots the bench's own thread did not reach in time: `unreached`)."""
    reports = [r for k in kinds for r in k.reports]
    total = {key: sum(r["outcomes"].get(key, 0) for r in reports) for key in ("timedOut", "overloaded", "noReply", "otherErrors")}
    total["repliesDropped"] = sum(r.get("repliesDropped") or 0 for r in reports)
    opened = [r["outcomes"] for k in kinds if k.loop == "open" for r in k.reports]
    for key in ("starved", "notSent", "unreached"):
        total[f"open loop {key}"] = sum(o.get(key, 0) for o in opened)
    violated = sum(not r.get("invariants", {}).get("ok", True) for r in reports)
    return total, violated


def machine():
    model = None
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
    except OSError:
        pass
    head = subprocess.run(["git", "-C", slamproc.ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return {"cpu": model, "cpus": os.cpu_count(), "platform": platform.platform(),
            "binary": slamproc.slam_binary(), "gitHead": head.stdout.strip() or None}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=kinds_of, default=README_RUNS, metavar="KINDS",
                   help=f"the runs to make (default: the README's, {README_RUNS!r})")
    p.add_argument("--duration", type=float, default=10, help="each run's --duration (default 10 s)")
    p.add_argument("--seats", type=int, default=50000)
    p.add_argument("--users", type=int, default=20000)
    p.add_argument("--writer-cpu", type=int, default=1, help="slam serve --writer-cpu (default 1; -1: not pinned)")
    p.add_argument("--io-cpu", type=int, default=0, help="slam serve --io-cpu (default 0; -1: not pinned)")
    p.add_argument("--bench-cpus", type=bench_cpus_of, default="0", metavar="LIST",
                   help="the CPUs the bench may run on, as `taskset -c LIST` (default 0; 'any': where the scheduler puts it)")
    p.add_argument("--json", help="write every run's report and the table here")
    a = p.parse_args()
    kinds, bench_cpus = a.runs, a.bench_cpus or None
    if a.json and not os.path.isdir(os.path.dirname(os.path.abspath(a.json))):
        sys.exit(f"--json {a.json}: its folder does not exist")
    serve = []
    for option, cpu in (("--writer-cpu", a.writer_cpu), ("--io-cpu", a.io_cpu)):
        if cpu >= 0:
            serve += [option, str(cpu)]
    common = ["--duration", f"{a.duration:g}", "--seats", str(a.seats), "--users", str(a.users)]

    started = time.time()
    steal0 = steal_ticks()
    order = interleaved(kinds)
    for i, kind in enumerate(order):
        kind.reports.append(slamproc.bench_run(f"{kind.name} ({i + 1}/{len(order)})", serve, [*kind.args, *common], bench_cpus))
        r = kind.reports[-1]
        lag = (r.get("publishLag") or {}).get("p99Ms")
        print(f"   {r['commandsPerSecond']:,.0f} commands/s, p50 {r['latency']['p50Ms']:.2f} p99 {r['latency']['p99Ms']:.2f} "
              f"p99.9 {r['latency']['p999Ms']:.2f} ms, publish lag p99 {'-' if lag is None else f'{lag:.0f} ms'}", flush=True)
    ended = time.time()
    steal1 = steal_ticks()
    steal = (100 * (steal1[0] - steal0[0]) / max(1, steal1[1] - steal0[1])) if steal0 and steal1 else None

    m = machine()
    stamp = time.strftime("%Y-%m-%d %H:%M", time.gmtime(started)) + time.strftime("–%H:%M UTC", time.gmtime(ended))
    print()
    print(f"{stamp}; {m['cpus']} CPUs ({m['cpu']}), {m['platform']}; steal {'unknown' if steal is None else f'{steal:.1f}%'}")
    print(f"{m['binary']}" + (f" (git HEAD {m['gitHead']})" if m["gitHead"] else "")
          + f"; slam serve {' '.join(serve) or '(not pinned)'}; the bench "
          + (f"on CPU {','.join(map(str, bench_cpus))}" if bench_cpus else "where the scheduler puts it")
          + f"; {a.duration:g} s a run, a fresh database each")
    print()
    header = ["run", "commands/s", "p50", "p99", "p99.9", "publish lag p99", "WAL peak"]
    rows = [row(k) for k in kinds]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for cells in rows:
        print("| " + " | ".join(cells) + " |")
    print()
    for line in targets(kinds):
        print(line)
    total, violated = incidents(kinds)
    print("in all runs: " + ", ".join(f"{key} {value}" for key, value in total.items())
          + f"; invariants {'OK in every run' if not violated else f'VIOLATED in {violated}'}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"started": started, "ended": ended, "machine": m, "stealPercent": steal, "serve": serve,
                       "benchCPUs": bench_cpus, "duration": a.duration,
                       "kinds": [{"kind": k.name, "label": k.label, "row": dict(zip(header, row(k))), "reports": k.reports}
                                 for k in kinds],
                       "targets": targets(kinds), "incidents": total, "violated": violated}, f, indent=2)
    if violated:
        sys.exit(1)


if __name__ == "__main__":
    main()
