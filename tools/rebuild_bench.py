#!/usr/bin/env python3
"""Benchmark `slam projections rebuild` and `slam serve` start-up on a large store.

1. Generates a store of N events (default 10,000,000) with `slam debug-generate`: a ticket rush
   decided by the real deciders, appended by the real store writer with the real inline
   projections, thousands of commands per transaction (see Sources/slam/DebugGenerate.swift).
   `--db PATH` keeps the store there; an existing file is reused (generation takes minutes).
2. Rebuilds its read models with `slam projections rebuild` (the default: each table compared
   with the fold, only differing rows written) and with `--full` (every table emptied and
   bulk-inserted: the worst case), and reports wall time and events/s.
3. Starts `slam serve` on the store and measures the time from the process start to its ready
   line, to its answer to a first command (RegisterUser), and to its answer to a GetStats sent
   after it, over ZeroMQ (pyzmq), then stops it with SIGTERM. The store was closed cleanly (no
   WAL to recover); without --cold the file is in the page cache, right after the rebuilds.
4. With --after-kill SECONDS, serves the store under the rush at 10,000 commands/s (`slam
   bench`) for that long, kills the server with SIGKILL, and times its restart as in 3, the WAL
   to recover this time.
5. With --verify, runs `slam verify` and reports its time and verdict; exit 1 when it fails.

With --cold, the kernel's page cache is dropped (`sync`, then 3 into /proc/sys/vm/drop_caches;
root only) before each step, so that each reads the store from the disk, as after a reboot.

Targets (DESIGN.md section 4): rebuild 10M events < 30 s; serving commands < 5 s after start.
Exit 1 when `slam verify` fails.

    swift build -c release --product slam
    python3 tools/rebuild_bench.py --events 1000000 --db /tmp/slam-1m.sqlite
    python3 tools/rebuild_bench.py --json            # 10M events, a temporary store
    python3 tools/rebuild_bench.py --db /tmp/m10.sqlite --cold --after-kill 10 --verify

Stdlib only, plus pyzmq for the first command.
"""
import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def slam_binary(explicit):
    if explicit:
        return explicit
    if os.environ.get("SLAM_BIN"):
        return os.environ["SLAM_BIN"]
    for path in (".build/release/slam", ".build-release/release/slam", ".build-rebuild/release/slam"):
        full = os.path.join(ROOT, path)
        if os.path.exists(full):
            return full
    sys.exit("no release slam binary: run `swift build -c release --product slam` (or pass --slam / SLAM_BIN)")


def machine(db):
    info = {"nproc": os.cpu_count(), "platform": platform.platform()}
    try:
        with open("/proc/cpuinfo") as f:
            models = [l.split(":", 1)[1].strip() for l in f if l.startswith("model name")]
        info["cpu"] = models[0] if models else "?"
    except OSError:
        info["cpu"] = "?"
    try:
        with open("/proc/meminfo") as f:
            total = next(l for l in f if l.startswith("MemTotal"))
        info["memory_gib"] = round(int(total.split()[1]) / 1048576, 1)
    except (OSError, StopIteration):
        pass
    try:
        out = subprocess.run(["df", "-hT", os.path.dirname(os.path.abspath(db))], capture_output=True, text=True).stdout
        fields = out.strip().splitlines()[-1].split()
        info["disk"] = f"{fields[0]} ({fields[1]}, {fields[2]} total, {fields[4]} free)"
    except (OSError, IndexError):
        info["disk"] = "?"
    try:
        with open("/proc/loadavg") as f:
            info["loadavg_at_start"] = f.read().split()[:3]
    except OSError:
        pass
    return info


def run(cmd, **kw):
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return elapsed, proc.stdout.strip()


def cpu_of_children():
    r = os.times()
    return r.children_user + r.children_system


def drop_caches():
    """Empties the kernel's page cache (dirty pages written first), so that the next step
    reads the store from the disk."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError as e:
        sys.exit(f"--cold: cannot drop the page cache ({e}); it needs root on Linux")


def rebuild(slam, db, full):
    cmd = [slam, "projections", "rebuild", "--db", db] + (["--full"] if full else [])
    cpu0 = cpu_of_children()
    wall, out = run(cmd)
    cpu = cpu_of_children() - cpu0
    m = re.search(r"from (\d+) events \(head position (\d+)\) in ([\d.]+) s: fold ([\d.]+) s \((\d+) events/s\), "
                  r"write ([\d.]+) s", out)
    result = {"command": " ".join(cmd), "wall_seconds": round(wall, 2), "cpu_seconds": round(cpu, 2), "output": out}
    if m:
        head = int(m.group(2))
        result.update(events=head, fold_seconds=float(m.group(4)), write_seconds=float(m.group(6)),
                      events_per_second=int(head / wall) if wall > 0 else None)
    return result


def first_commands(endpoint, timeout_ms=60_000):
    import zmq  # pyzmq

    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    times = {}
    started = time.monotonic()
    # The command first: what DESIGN.md's target names. GetStats then (until migration 0006 it
    # counted the users and reservations tables, which read them all: seconds on a cold
    # 10-million-event store; now it reads counts kept in the read models).
    for type_, body, key in (("RegisterUser", {"name": "bench"}, "bench-" + uuid.uuid4().hex), ("GetStats", {}, None)):
        header = {"type": type_, "requestId": uuid.uuid4().hex}
        if key:
            header["idempotencyKey"] = key
        t0 = time.monotonic()
        sock.send_multipart([b"", b"SLAM/1", json.dumps(header).encode(), json.dumps(body).encode()])
        while True:
            if not sock.poll(timeout_ms, zmq.POLLIN):
                sys.exit(f"no reply to {type_} within {timeout_ms} ms")
            frames = sock.recv_multipart()
            reply = json.loads(frames[2])
            if reply.get("requestId") == header["requestId"]:
                break
        if not reply.get("ok"):
            sys.exit(f"{type_} failed: {frames[3][:300]!r}")
        times[type_] = time.monotonic() - t0
    sock.close()
    return times, time.monotonic() - started


def serve_startup(slam, db):
    cmd = [slam, "serve", "--db", db, "--commands", "tcp://127.0.0.1:*", "--events", "tcp://127.0.0.1:*"]
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        ready = time.monotonic() - started
        m = re.match(r"SLAM ready commands=(\S+) events=(\S+)", line or "")
        if not m:
            proc.wait(timeout=10)
            sys.exit(f"slam serve did not start: {line!r} {proc.stderr.read()}")
        times, _ = first_commands(m.group(1))
        answered = time.monotonic() - started
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    return {"command": " ".join(cmd), "ready_seconds": round(ready, 3),
            "first_command_seconds": round(ready + times["RegisterUser"], 3),
            "then_GetStats_seconds": round(answered, 3),
            "GetStats_ms": round(times["GetStats"] * 1000, 1), "RegisterUser_ms": round(times["RegisterUser"] * 1000, 1)}


def kill_under_load(slam, db, seconds):
    """Serves the store under the rush at 10,000 commands/s (`slam bench`) for `seconds`, then
    kills the server with SIGKILL, as a crash would: the next start has the WAL to recover."""
    cmd = [slam, "serve", "--db", db, "--commands", "tcp://127.0.0.1:*", "--events", "tcp://127.0.0.1:*"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    bench = None
    try:
        line = proc.stdout.readline()
        m = re.match(r"SLAM ready commands=(\S+) events=(\S+)", line or "")
        if not m:
            proc.wait(timeout=10)
            sys.exit(f"slam serve did not start: {line!r}")
        bench_cmd = [slam, "bench", "--server", m.group(1), "--events", m.group(2), "--rate", "10000", "--duration", "3600"]
        bench = subprocess.Popen(bench_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(seconds)  # the load's length, not a synchronization: the kill may come at any instant
        if proc.poll() is not None or bench.poll() is not None:
            sys.exit("slam serve or slam bench stopped before the kill")
        proc.kill()
        proc.wait()
        wal = os.path.getsize(db + "-wal") if os.path.exists(db + "-wal") else 0
    finally:
        for p in (proc, bench):
            if p and p.poll() is None:
                p.kill()
                p.wait()
    return {"command": " ".join(bench_cmd), "load_seconds": seconds, "wal_bytes_at_kill": wal}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=10_000_000, help="events to generate (default 10,000,000)")
    ap.add_argument("--db", help="store path (reused if it exists; default: a temporary file, removed after)")
    ap.add_argument("--slam", help="the slam binary (default: SLAM_BIN or the release build)")
    ap.add_argument("--seats", type=int, default=50_000, help="seats per schedule in the generated rush")
    ap.add_argument("--no-full", action="store_true", help="skip the --full (rewrite everything) rebuild")
    ap.add_argument("--verify", action="store_true", help="also run slam verify")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--after-kill", type=float, metavar="SECONDS",
                    help="then serve the rush at 10,000/s for SECONDS, kill -9 the server, and time its restart")
    ap.add_argument("--cold", action="store_true",
                    help="drop the kernel's page cache before each step (root only), as after a reboot")
    args = ap.parse_args()
    before_step = drop_caches if args.cold else (lambda: None)

    slam = slam_binary(args.slam)
    tmp = None
    if args.db:
        db = os.path.abspath(args.db)
    else:
        tmp = tempfile.mkdtemp(prefix="slam-rebuild-bench-", dir=os.environ.get("TMPDIR"))
        db = os.path.join(tmp, "slam.sqlite")
    results = {"binary": slam, "db": db, "machine": machine(db), "cold": args.cold}
    try:
        if os.path.exists(db):
            results["generate"] = {"reused": True}
        else:
            cmd = [slam, "debug-generate", "--db", db, "--events", str(args.events), "--seats", str(args.seats)]
            print(f"generating {args.events} events: {' '.join(cmd)}", file=sys.stderr)
            wall, out = run(cmd)
            results["generate"] = {"command": " ".join(cmd), "wall_seconds": round(wall, 1), "output": out}
        results["db_bytes"] = os.path.getsize(db)

        print("rebuilding (default: only differing rows written)", file=sys.stderr)
        before_step()
        results["rebuild"] = rebuild(slam, db, full=False)
        if not args.no_full:
            print("rebuilding with --full (every table rewritten)", file=sys.stderr)
            before_step()
            results["rebuild_full"] = rebuild(slam, db, full=True)
        print("starting slam serve", file=sys.stderr)
        before_step()
        results["serve"] = serve_startup(slam, db)
        if args.after_kill:
            print(f"serving the rush for {args.after_kill:g} s, then kill -9", file=sys.stderr)
            results["kill"] = kill_under_load(slam, db, args.after_kill)
            print("starting slam serve after the kill", file=sys.stderr)
            before_step()
            results["serve_after_kill"] = serve_startup(slam, db)
        if args.verify:
            print("verifying", file=sys.stderr)
            before_step()
            cmd = [slam, "verify", "--db", db]
            started = time.monotonic()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            results["verify"] = {"command": " ".join(cmd), "wall_seconds": round(time.monotonic() - started, 2),
                                 "exit": proc.returncode, "output": proc.stdout.strip()[-400:]}
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)

    verify_failed = "verify" in results and results["verify"]["exit"] != 0
    if args.json:
        print(json.dumps(results, indent=2))
        sys.exit(1 if verify_failed else 0)
    m = results["machine"]
    print(f"machine: {m.get('nproc')} cores ({m.get('cpu')}), {m.get('memory_gib')} GiB, disk {m.get('disk')}, "
          f"load {' '.join(m.get('loadavg_at_start', []))}")
    print(f"store:   {db} ({results['db_bytes'] / 1e9:.2f} GB); "
          + ("cold: the page cache dropped before each step" if args.cold else "warm: the page cache kept between steps"))
    for name in ("rebuild", "rebuild_full"):
        r = results.get(name)
        if r:
            print(f"{name:13} {r.get('events', '?')} events in {r['wall_seconds']} s wall ({r['cpu_seconds']} s cpu): "
                  f"{r.get('events_per_second', '?')} events/s; fold {r.get('fold_seconds')} s, write {r.get('write_seconds')} s"
                  f"   [{r['command']}]")
    s = results["serve"]
    print(f"serve:        ready line {s['ready_seconds']} s, first command (RegisterUser) answered {s['first_command_seconds']} s, "
          f"then GetStats {s['then_GetStats_seconds']} s ("
          + ("cold: the page cache dropped before it" if args.cold else "warm: the file in the page cache after the rebuilds")
          + f"; a cleanly closed store)   [{s['command']}]")
    if "serve_after_kill" in results:
        s, k = results["serve_after_kill"], results["kill"]
        print(f"after kill -9 ({k['load_seconds']:g} s of the rush at 10,000/s; the WAL {k['wal_bytes_at_kill'] / 2**20:.1f} MiB): "
              f"ready line {s['ready_seconds']} s, first command (RegisterUser) answered {s['first_command_seconds']} s, "
              f"then GetStats {s['then_GetStats_seconds']} s")
    if "verify" in results:
        v = results["verify"]
        print(f"verify:       exit {v['exit']} in {v['wall_seconds']} s")
    sys.exit(1 if verify_failed else 0)


if __name__ == "__main__":
    main()
