"""Start and stop `slam serve` for the scripts in tools/ (stdlib only)."""
import os
import re
import shutil
import signal
import subprocess
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


class Server:
    """`slam serve` on a fresh database (or `db`) with ephemeral loopback ports."""

    def __init__(self, *extra, db=None, binary=None):
        self.dir = tempfile.mkdtemp(prefix="slam-tools-")
        self.db = db or os.path.join(self.dir, "slam.sqlite")
        self.binary = binary or slam_binary()
        self.args = [self.binary, "serve", "--db", self.db, "--commands", "tcp://127.0.0.1:*",
                     "--events", "tcp://127.0.0.1:*", *extra]
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
