"""A short run of tools/fuzz_run.py against a real server (the build under test): valid and
hostile requests and corrupted frames, from fixed seeds. The server must stay up, answer with JSON
bodies, and pass `slam verify` at the end. Nothing about speed is asserted."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("seed", [7, 8])
def test_the_server_survives_a_short_fuzz_run(seed):
    run = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "fuzz_run.py"), "--seed", str(seed), "--seconds", "4"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "server up" in run.stdout, run.stdout
    assert "slam verify: OK" in run.stdout, run.stdout
