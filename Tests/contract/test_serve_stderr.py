"""`slam serve` goes on when a log line cannot be written. Its stderr on a full disk (here
`/dev/full`) made the first logged error, a failed batch's, kill the server (`FileHandle.write`
traps on a failed write): that batch's clients got no reply (audit). A stderr pipe whose reader
has gone raised SIGPIPE, which kills too. Now the line is lost and the server answers on. The
CLI's other commands wrote their messages the same way, and trapped instead of exiting with their
documented status."""
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_contract import _binary, call, ok  # noqa: E402


@pytest.mark.parametrize("stderr_kind", ["/dev/full", "a pipe nobody reads"])
def test_a_log_line_that_cannot_be_written_does_not_stop_the_server(stderr_kind):
    if stderr_kind == "/dev/full" and not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "stderr.sqlite")
        if stderr_kind == "/dev/full":
            err = os.open("/dev/full", os.O_WRONLY)
        else:
            read_end, err = os.pipe()
            os.close(read_end)  # no reader: a write raises SIGPIPE (EPIPE once ignored)
        try:
            proc = subprocess.Popen([str(_binary()), "serve", "--db", db, "--commands", f"ipc://{tmp}/c",
                                     "--events", f"ipc://{tmp}/e"], stdout=subprocess.PIPE, stderr=err, text=True)
        finally:
            os.close(err)
        ctx = zmq.Context()
        sock = ctx.socket(zmq.DEALER)
        sock.linger = 0
        outside = None
        try:
            line = proc.stdout.readline()
            m = re.match(r"SLAM ready commands=(\S+) ", line)
            assert m, f"server did not start: {line!r}"
            sock.connect(m.group(1))
            user = ok(sock, "RegisterUser", {"name": "logged"})["userId"]
            # Another connection holds SQLite's write lock past the writer's busy timeout (5 s):
            # the batch fails, and the server logs it.
            outside = sqlite3.connect(db, isolation_level=None, timeout=0)
            outside.execute("BEGIN IMMEDIATE")
            key = str(uuid.uuid4())
            h, b = call(sock, "ChargePoints", {"userId": user, "amount": 100}, key)
            assert h["ok"] is False and b["code"] == "INTERNAL", f"expected INTERNAL while the store is locked: {h} {b}"
            outside.rollback()
            assert proc.poll() is None, f"the server died logging the failed batch (exit {proc.returncode})"
            # Not recorded, so the retry executes; and the server serves on.
            h, b = call(sock, "ChargePoints", {"userId": user, "amount": 100}, key)
            assert h["ok"] is True and h["replayed"] is False and b["balance"] == 100, f"{h} {b}"
        finally:
            if outside is not None:
                outside.close()
            sock.close(linger=0)
            ctx.term()
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=120) == 0


@pytest.mark.parametrize("args, status", [
    (["projections", "rebuild", "--db", "{tmp}/none.sqlite"], 1),
    (["verify", "--db", "{tmp}/none.sqlite"], 2),
    (["call", "GetStats", "--server", "ipc://{tmp}/nobody", "--timeout", "100"], 2),
])
def test_a_cli_message_that_cannot_be_written_keeps_the_exit_status(args, status):
    """The other commands wrote their messages with `FileHandle.write` too, and trapped (SIGILL,
    exit 132) when stderr was full, instead of exiting with the status their help documents."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    with tempfile.TemporaryDirectory() as tmp:
        argv = [str(_binary())] + [a.format(tmp=tmp) for a in args]
        written = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=60)
        assert written.returncode == status and written.stderr.strip(), f"{written.returncode} {written.stderr!r}"
        with open("/dev/full", "w") as full:
            lost = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=full, timeout=60)
        assert lost.returncode == status, f"exit {lost.returncode} with stderr on /dev/full, {status} otherwise"
