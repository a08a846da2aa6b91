"""The gateway's deny list: parsed entries, reloaded only when the file changed, newly revoked
cars named (their sessions are to close), an unreadable file keeping the last list."""

from __future__ import annotations

import os

from gateway.fleet_state import CarSession, FleetState
from gateway.revocation import RevocationList


def test_entries_reload_and_newly_revoked(tmp_path):
    path = tmp_path / "revoked.txt"
    path.write_text("car-1  # stolen\n\nserial:0aF\nserial:zz\n")
    deny = RevocationList(str(path))
    assert deny.reload() == {"car-1"}
    assert deny.revoked("car-1") and deny.revoked("car-2", 0xAF) and not deny.revoked("car-2", 0xAE)
    assert deny.reload() == frozenset()  # unchanged: not read again
    path.write_text("car-1\ncar-2\n")
    os.utime(path, (1, 2))
    assert deny.reload() == {"car-2"} and not deny.revoked("car-3", 0xAF)
    path.unlink()
    assert deny.reload() == frozenset() and deny.revoked("car-2"), "an unreadable list un-revokes nobody"
    assert RevocationList("").reload() == frozenset()


def test_revoking_closes_only_the_revoked_cars_sessions():
    state = FleetState("gateway", 10, "")
    sessions = {v: CarSession(v, 8) for v in ("car-1", "car-2")}
    for s in sessions.values():
        state.attach(s)
    assert state.revoke({"car-1", "car-9"}) == 1
    assert sessions["car-1"].closed and sessions["car-1"].revoked and not sessions["car-2"].closed
