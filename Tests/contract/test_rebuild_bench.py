"""tools/rebuild_bench.py on a small store (README: Rebuild and restart on a large store): it
generates the store, rebuilds it, times a restart, serves it under the rush, kills the server
with SIGKILL, times the restart that recovers the WAL, and verifies the store after the kill."""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REBUILD_BENCH = os.path.join(ROOT, "tools", "rebuild_bench.py")
SLAM = os.environ.get("SLAM_BIN", os.path.join(ROOT, ".build", "debug", "slam"))


def test_a_small_store_is_rebuilt_restarted_killed_under_load_and_verified():
    done = subprocess.run([sys.executable, REBUILD_BENCH, "--events", "3000", "--seats", "300", "--no-full",
                           "--after-kill", "2", "--verify", "--json"],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "SLAM_BIN": SLAM})
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["cold"] is False and "rebuild_full" not in result, result
    assert result["generate"]["output"].startswith("generated 30"), result["generate"]  # 3,000 or a few more
    assert result["rebuild"]["events"] >= 3000, result["rebuild"]
    for restart in (result["serve"], result["serve_after_kill"]):
        # Each restart answered a command, then a GetStats, in that order.
        assert 0 < restart["ready_seconds"] <= restart["first_command_seconds"] <= restart["then_GetStats_seconds"], restart
    assert result["kill"]["load_seconds"] == 2 and "--rate 10000" in result["kill"]["command"], result["kill"]
    # The store the kill left (the rush's commands at any instant of theirs) keeps every invariant.
    assert result["verify"]["exit"] == 0, result["verify"]
