#!/usr/bin/env python3
"""The effect of group commit, measured on whatever machine runs this.

Runs the same closed-loop ticket rush (`slam bench --max`) against SLAM twice, each on a fresh
database: once with group commit disabled (`slam serve --no-group-commit`: one command per
transaction, one fsync each), once as shipped, and prints both and their ratio.

    swift build -c release --product slam
    python3 tools/baseline.py [--seats 50000] [--users 20000] [--duration 10] [--sync full]
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import slamproc  # noqa: E402


def run(label, serve_args, bench_args):
    server = slamproc.Server(*serve_args)
    out = os.path.join(server.dir, "bench.json")
    try:
        cmd = [server.binary, "bench", "--server", server.commands, "--events", server.events, "--json", out, *bench_args]
        print(f"== {label}: slam serve {' '.join(serve_args)}; slam bench {' '.join(bench_args)}", flush=True)
        # The bench exits 1 when its invariant checks fail, having written its report: that
        # run is printed as VIOLATED below (and this script exits 1); with no report, it failed.
        done = subprocess.run(cmd, stderr=subprocess.PIPE, text=True)
    finally:
        server.stop()
    if not os.path.exists(out):
        sys.exit(f"slam bench failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")
    with open(out) as f:
        return json.load(f)


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
    p.add_argument("--json", help="write both results and the ratio here")
    a = p.parse_args()
    bench = ["--max", "--seats", str(a.seats), "--users", str(a.users), "--duration", str(a.duration),
             "--connections", str(a.connections), "--in-flight", str(a.in_flight)]
    serve = ["--sync", a.sync]
    for option, cpu in (("--writer-cpu", a.writer_cpu), ("--io-cpu", a.io_cpu)):
        if cpu is not None:
            serve += [option, str(cpu)]
    base = run("baseline (no group commit)", serve + ["--no-group-commit"], bench)
    shipped = run("as shipped (group commit)", serve, bench)
    ratio = shipped["commandsPerSecond"] / max(base["commandsPerSecond"], 1)
    print()
    print(f"machine: {os.cpu_count()} cores, {platform.platform()}, synchronous={a.sync.upper()}"
          f"{', slam serve ' + ' '.join(serve[2:]) if len(serve) > 2 else ''}")
    for label, r in (("no group commit", base), ("group commit", shipped)):
        lat = r["latency"]
        print(f"{label:16} {r['commandsPerSecond']:>9.0f} commands/s   p50 {lat['p50Ms']:.2f} ms  p99 {lat['p99Ms']:.2f} ms"
              f"  p99.9 {lat['p999Ms']:.2f} ms   invariants {'OK' if r.get('invariants', {}).get('ok', True) else 'VIOLATED'}")
    print(f"ratio            {ratio:.1f}x")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"baseline": base, "groupCommit": shipped, "ratio": ratio}, f, indent=2)
    if not all(r.get("invariants", {}).get("ok", True) for r in (base, shipped)):
        sys.exit(1)


if __name__ == "__main__":
    main()
