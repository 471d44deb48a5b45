"""The scheduler runs each registered step on its own: one that raises is logged and the later ones still run (for
every account). The steps are the test's own: patching Batch's registered list would reach the session emulator's
scheduler too, which runs in this process."""

from __future__ import annotations

import logging

from batchai_spec.emulator.scheduling import ClockScheduler


def test_a_raising_step_does_not_stop_the_next_one(caplog):
    ran: list[str] = []

    def broken(ctx, moment):
        ran.append("broken")
        raise ValueError("a bad row")

    def healthy(ctx, moment):
        ran.append("healthy")
        return False

    scheduler = ClockScheduler(None, "batch", lambda: [broken, healthy], lambda ctx: None)  # no context needed
    with caplog.at_level(logging.ERROR, logger="batchai_spec.emulator"):
        scheduler.step()
    assert ran == ["broken", "healthy"]
    assert "broken" in caplog.text and "a bad row" in caplog.text
