"""tools/crash_run.py's check of DESIGN.md invariant 8 across restarts (the harness itself kills
servers for minutes and is run by hand, README: Crash safety)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "tools"))
import crash_run  # noqa: E402


def test_an_expiry_is_late_past_a_second_after_its_time_or_after_its_servers_start():
    readies = [(0, 100), (5_000, 5_300)]  # each server's start and ready, ms
    expiries = {
        "in-run-late": (1_000, 2_500),      # expired while the first server ran, recorded 1.5 s later
        "in-run-ok": (1_000, 1_300),
        "at-restart-ok": (4_000, 5_400),    # due while no server ran: recorded 100 ms after the restart
        "at-restart-late": (4_000, 6_400),  # 1.1 s after the restart
        "second-run-ok": (6_000, 6_900),
        "before-ready-ok": (4_500, 5_200),  # recorded by the start-up sweep before ready was seen
    }
    late = crash_run.late_expiries(expiries, readies)
    assert sorted(rid for rid, *_ in late) == ["at-restart-late", "in-run-late"]


def test_timestamps_are_read_as_the_server_writes_them():
    assert crash_run.millis("1970-01-01T00:00:01.234Z") == 1_234
    assert crash_run.millis("2026-12-06T13:21:55.007Z") % 1000 == 7
