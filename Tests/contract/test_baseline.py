"""tools/baseline.py, the group-commit comparison of issue #5: a short run of each kind against
the real server (what it prints and writes, and that it checks the setting each server ran
with), and its refusal of a run whose server stopped answering (README: Performance)."""
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BASELINE = os.path.join(ROOT, "tools", "baseline.py")
SLAM = os.environ.get("SLAM_BIN", os.path.join(ROOT, ".build", "debug", "slam"))
SMALL = ["--seats", "300", "--users", "120", "--connections", "2", "--in-flight", "4"]


def baseline(args, **env):
    return subprocess.run([sys.executable, BASELINE, *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "SLAM_BIN": SLAM, **env})


def test_both_runs_are_made_and_compared():
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "baseline.json")
        done = baseline([*SMALL, "--duration", "1", "--json", out])
        assert done.returncode == 0, done.stdout + done.stderr
        with open(out) as f:
            result = json.load(f)
        base, shipped = result["baseline"], result["groupCommit"]
        # Each run is the one asked for, as its server said (GetStats), with its invariants intact.
        assert base["groupCommit"] is False and shipped["groupCommit"] is True, result
        assert base["synchronous"] == shipped["synchronous"] == "FULL", result
        for run in (base, shipped):
            assert run["invariants"]["ok"] is True and run["invariants"]["checkedThroughServer"] is True, run
            assert run["repliesInRun"] > 0 and run["commandsPerSecond"] > 0, run
        assert result["ratio"] == shipped["commandsPerSecond"] / max(base["commandsPerSecond"], 1), result
        assert f"ratio            {result['ratio']:.1f}x" in done.stdout, done.stdout
        assert "no group commit" in done.stdout and "invariants OK" in done.stdout, done.stdout


# A `slam` for baseline.py to run: `serve` is the real one (its pid kept in $PIDFILE); `bench`
# runs the real bench and stops the server (SIGSTOP) at its first progress line, so the server
# stops answering mid-run, then lets it go on (SIGCONT) once the bench is done, so that it stops
# cleanly when asked.
WRAPPER = """#!{python}
import os, signal, subprocess, sys
real, pidfile = os.environ["REAL_SLAM"], os.environ["PIDFILE"]
if sys.argv[1] == "serve":
    with open(pidfile, "w") as f:
        f.write(str(os.getpid()))
    os.execv(real, [real, *sys.argv[1:]])
bench = subprocess.Popen([real, *sys.argv[1:]], stderr=subprocess.PIPE, text=True)
pid = int(open(pidfile).read())
stopped = False
for line in bench.stderr:
    sys.stderr.write(line)
    if "replies" in line and not stopped:
        os.kill(pid, signal.SIGSTOP)
        stopped = True
code = bench.wait()
os.kill(pid, signal.SIGCONT)
sys.exit(code)
"""


def test_a_run_whose_server_stopped_answering_is_refused_not_compared():
    """The bench reports what it measured when the server stops answering mid-run (exit 2,
    `serverStoppedAnswering`): such a run is not one to compare, and baseline.py says why and
    exits, keeping the server's directory, rather than printing a ratio."""
    with tempfile.TemporaryDirectory() as tmp:
        wrapper = os.path.join(tmp, "slam")
        with open(wrapper, "w") as f:
            f.write(WRAPPER.format(python=sys.executable))
        os.chmod(wrapper, 0o755)
        done = baseline([*SMALL, "--duration", "3"], SLAM_BIN=wrapper, REAL_SLAM=SLAM, PIDFILE=os.path.join(tmp, "pid"))
        assert done.returncode == 1, done.stdout + done.stderr
        assert "baseline (no group commit): slam bench exit 2: the server did not answer GetStats after the run" \
            in done.stderr, done.stderr
        # Neither compared nor followed by the run as shipped.
        assert "\nratio " not in done.stdout and "== as shipped" not in done.stdout, done.stdout
        kept = done.stderr.rsplit("(kept for a look: ", 1)[1].rstrip().rstrip(")")
        try:
            assert os.path.exists(os.path.join(kept, "bench.json")), kept
        finally:
            subprocess.run(["rm", "-rf", kept])
