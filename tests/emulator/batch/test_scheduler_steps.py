"""The Batch scheduler runs each registered step on its own: one that raises is logged and the later ones still
run (for every account)."""

from __future__ import annotations

import logging

from batchai_spec.emulator.batch import service


def test_a_raising_step_does_not_stop_the_next_one(monkeypatch, caplog):
    ran: list[str] = []

    def broken(ctx, moment):
        ran.append("broken")
        raise ValueError("a bad row")

    def healthy(ctx, moment):
        ran.append("healthy")
        return False

    monkeypatch.setattr(service, "_TICKS", [broken, healthy])
    scheduler = service.scheduler(None)  # the steps here never look at it
    with caplog.at_level(logging.ERROR, logger="batchai_spec.emulator"):
        scheduler.step()
    assert ran == ["broken", "healthy"]
    assert "broken" in caplog.text and "a bad row" in caplog.text
