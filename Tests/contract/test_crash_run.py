"""tools/crash_run.py's check of DESIGN.md invariant 8 across kills and restarts (the harness
itself kills servers for minutes and is run by hand, README: Crash safety)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "tools"))
import crash_run  # noqa: E402


def test_an_expiry_is_late_past_a_second_after_its_time_or_its_servers_start():
    runs = [[100, 4_000], [5_300, None]]  # each server's ready and killed times, ms
    holds = {  # reservation id: (expiresAt, (how it ended, when) or None)
        "in-run-late": (1_000, ("HoldExpired", 2_500)),        # recorded 1.5 s after it was due
        "in-run-ok": (1_000, ("HoldExpired", 1_300)),
        "masked-by-a-kill": (1_000, ("HoldExpired", 5_400)),   # due 3 s before the kill, recorded after the restart
        "due-at-the-kill": (3_500, ("HoldExpired", 5_400)),    # its second not over at the kill: the next server's
        "at-restart-ok": (4_500, ("HoldExpired", 5_400)),
        "at-restart-late": (4_500, ("HoldExpired", 6_400)),    # 1.1 s after the restart
        "paid": (1_000, ("ReservationConfirmed", 900)),
        "never-recorded": (6_000, None),                       # due 3 s before the last event read
        "not-yet-due": (9_500, None),
    }
    late = crash_run.late_expiries(holds, runs, 10_000)
    assert sorted(rid for rid, *_ in late) == ["at-restart-late", "in-run-late", "masked-by-a-kill", "never-recorded"]


def test_timestamps_are_read_as_the_server_writes_them():
    assert crash_run.millis("1970-01-01T00:00:01.234Z") == 1_234
    assert crash_run.millis("2026-12-06T13:21:55.007Z") % 1000 == 7
