#!/usr/bin/env python3
"""The effect of group commit, measured on whatever machine runs this.

Runs the same closed-loop ticket rush (`slam bench --max`) against SLAM twice, each on a fresh
database: once with group commit disabled (`slam serve --no-group-commit`: one command per
transaction, one fsync each), once as shipped, and prints both and their ratio. With
`--repeat N` it alternates the two N times (the machine's speed drifts; back-to-back pairs see
the same machine) and gives the ratio of the medians. Each run's report must say (from the
server's GetStats) that it ran with the group commit setting asked for.

    swift build -c release --product slam
    python3 tools/baseline.py [--seats 50000] [--users 20000] [--duration 10] [--sync full] [--repeat 1]
                             [--writer-cpu N] [--io-cpu N] [--bench-cpus LIST]
"""
import argparse
import json
import os
import platform
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import slamproc  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seats", type=int, default=50000)
    p.add_argument("--users", type=int, default=20000)
    p.add_argument("--duration", type=float, default=10)
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--in-flight", type=int, default=32)
    p.add_argument("--sync", default="full", choices=["full", "normal"])
    p.add_argument("--writer-cpu", type=int, help="slam serve --writer-cpu, in both runs")
    p.add_argument("--io-cpu", type=int, help="slam serve --io-cpu, in both runs")
    p.add_argument("--bench-cpus", type=slamproc.cpu_list, metavar="LIST",
                   help="run the bench on these CPUs only, as `taskset -c LIST` would (default: where the scheduler puts it)")
    p.add_argument("--repeat", type=int, default=1, help="alternate the two runs this many times (ratio of the medians)")
    p.add_argument("--json", help="write both results and the ratio here")
    a = p.parse_args()
    bench = ["--max", "--seats", str(a.seats), "--users", str(a.users), "--duration", str(a.duration),
             "--connections", str(a.connections), "--in-flight", str(a.in_flight)]
    serve = ["--sync", a.sync]
    for option, cpu in (("--writer-cpu", a.writer_cpu), ("--io-cpu", a.io_cpu)):
        if cpu is not None:
            serve += [option, str(cpu)]
    if a.repeat < 1:
        sys.exit("--repeat must be at least 1")
    slamproc.warn_if_debug_build()
    bases, shippeds = [], []
    for i in range(a.repeat):
        n = f" ({i + 1}/{a.repeat})" if a.repeat > 1 else ""
        bases.append(slamproc.bench_run("baseline (no group commit)" + n, serve + ["--no-group-commit"], bench, a.bench_cpus))
        shippeds.append(slamproc.bench_run("as shipped (group commit)" + n, serve, bench, a.bench_cpus))
    base_rate = statistics.median(r["commandsPerSecond"] for r in bases)
    shipped_rate = statistics.median(r["commandsPerSecond"] for r in shippeds)
    ratio = shipped_rate / max(base_rate, 1)
    print()
    print(f"machine: {os.cpu_count()} cores, {platform.platform()}, synchronous={a.sync.upper()}"
          f"{', slam serve ' + ' '.join(serve[2:]) if len(serve) > 2 else ''}"
          f"{', the bench on CPU ' + ','.join(map(str, a.bench_cpus)) if a.bench_cpus else ''}")
    for label, runs in (("no group commit", bases), ("group commit", shippeds)):
        for r in runs:
            lat = r["latency"]
            print(f"{label:16} {r['commandsPerSecond']:>9.0f} commands/s   p50 {lat['p50Ms']:.2f} ms  p99 {lat['p99Ms']:.2f} ms"
                  f"  p99.9 {lat['p999Ms']:.2f} ms   invariants {'OK' if r.get('invariants', {}).get('ok', True) else 'VIOLATED'}")
    if a.repeat > 1:
        print(f"medians          {base_rate:.0f} and {shipped_rate:.0f} commands/s")
    print(f"ratio            {ratio:.1f}x")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"baseline": bases if a.repeat > 1 else bases[0], "groupCommit": shippeds if a.repeat > 1 else shippeds[0],
                       "ratio": ratio}, f, indent=2)
    if not all(r.get("invariants", {}).get("ok", True) for r in bases + shippeds):
        sys.exit(1)


if __name__ == "__main__":
    main()
