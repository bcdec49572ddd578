"""SIGINT and SIGTERM stop `slam serve` whenever they come. The server used dispatch signal sources,
which need the signals ignored and register themselves asynchronously: a SIGINT sent right after
`SLAM ready` on a loaded machine could come in between and be dropped, and the server never stopped
(a CI run's test waited 120 s for its exit). Now both signals are blocked before any thread starts
and taken by a thread of their own, so one that comes during start-up waits for it."""
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_contract import _binary  # noqa: E402


def serve(tmp: str) -> subprocess.Popen:
    return subprocess.Popen([str(_binary()), "serve", "--db", os.path.join(tmp, "signals.sqlite"),
                             "--commands", f"ipc://{tmp}/c", "--events", f"ipc://{tmp}/e"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def exit_status(proc: subprocess.Popen) -> int:
    try:
        return proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"slam serve did not stop within 60 s of the signal: {proc.communicate()[1][-2000:]}")


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_start_up_stops_the_server_once_started(sig):
    with tempfile.TemporaryDirectory() as tmp:
        first = serve(tmp)  # creates the store
        assert first.stdout.readline().startswith("SLAM ready"), first.stderr.read()
        first.send_signal(signal.SIGINT)
        assert exit_status(first) == 0
        # Another connection holds SQLite's write lock: the next server's start-up waits for it
        # (its busy timeout is 5 s), its signals already blocked once it has the database open.
        db = os.path.join(tmp, "signals.sqlite")
        lock = sqlite3.connect(db, isolation_level=None, timeout=0)
        lock.execute("BEGIN IMMEDIATE")
        try:
            proc = serve(tmp)
            deadline = time.monotonic() + 30
            while proc.poll() is None and time.monotonic() < deadline:
                try:
                    if any(os.readlink(f"/proc/{proc.pid}/fd/{fd}") == db for fd in os.listdir(f"/proc/{proc.pid}/fd")):
                        break
                except (FileNotFoundError, ProcessLookupError):
                    pass
                time.sleep(0.001)  # polling /proc for the open file, not waiting for an outcome
            assert proc.poll() is None, f"the server exited before opening the store: {proc.communicate()}"
            proc.send_signal(sig)
        finally:
            lock.rollback()
            lock.close()
        status = exit_status(proc)
        out, err = proc.communicate()
        # Killed by the signal (-2 or -15) before the fix: its default action still applied there.
        assert status == 0, f"exit {status}; stdout {out!r}; stderr {err[-2000:]!r}"
        assert re.match(r"SLAM ready ", out), f"it started before it stopped: {out!r}"


def test_sigint_right_after_ready_stops_the_server_every_time():
    with tempfile.TemporaryDirectory() as tmp:
        for attempt in range(10):
            proc = serve(tmp)
            line = proc.stdout.readline()
            proc.send_signal(signal.SIGINT)  # at once, as a supervisor or a test would
            assert line.startswith("SLAM ready"), f"attempt {attempt}: {line!r} {proc.stderr.read()}"
            assert exit_status(proc) == 0, f"attempt {attempt}"
