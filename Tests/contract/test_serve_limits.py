"""`slam serve` raises its soft limit on open files to the hard one: every client connection is a
file, and at a soft limit of 1,024 (a common default) a thousand clients made libzmq's I/O thread
spin on failed accepts and queries fail (robustness probe; README, Limits: what clients can make the server hold)."""
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_contract import _binary  # noqa: E402

LOW = 256


def open_files_limits(pid: int) -> tuple[str, str]:
    with open(f"/proc/{pid}/limits") as f:
        row = next(line for line in f if line.startswith("Max open files"))
    soft, hard = row.split()[3:5]
    return soft, hard


@pytest.mark.skipif(not os.path.exists("/proc/self/limits"), reason="needs /proc")
def test_slam_serve_raises_its_open_file_limit_to_the_hard_one():
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard <= LOW:
        pytest.skip(f"the hard limit ({hard}) leaves nothing to raise")

    def lower():  # in the child, before exec: what a shell's `ulimit -Sn 256` would do
        resource.setrlimit(resource.RLIMIT_NOFILE, (LOW, hard))

    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen([str(_binary()), "serve", "--db", os.path.join(tmp, "limits.sqlite"),
                                 "--commands", "ipc://" + os.path.join(tmp, "c"), "--events", "ipc://" + os.path.join(tmp, "e")],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=lower)
        try:
            line = proc.stdout.readline()
            assert re.match(r"SLAM ready ", line), f"server did not start: {line!r}"
            soft_now, hard_now = open_files_limits(proc.pid)
            assert soft_now == hard_now, f"soft limit {soft_now}, hard {hard_now}: not raised"
            assert soft_now != str(LOW)
        finally:
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=120) == 0
