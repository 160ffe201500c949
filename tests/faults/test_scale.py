"""The fault suite's own settings: its two forms and its report lines."""

from __future__ import annotations

import json

from faults.conftest import REPORT_VARIABLE, SCALE_VARIABLE, FaultRecord, trials


def test_trials_follow_the_form(monkeypatch):
    monkeypatch.delenv(SCALE_VARIABLE, raising=False)
    assert trials(3, 100) == 3
    monkeypatch.setenv(SCALE_VARIABLE, "full")
    assert trials(3, 100) == 100


def test_report_line_carries_the_figures(monkeypatch):
    monkeypatch.setenv(SCALE_VARIABLE, "full")
    record = FaultRecord(area="crash", name="test_x", seed=7, trials=4, faults=4)
    record.lost = 1
    line = json.loads(record.as_line(2.04, "passed"))
    assert line["form"] == "full"
    assert (line["trials"], line["faults"], line["lost"]) == (4, 4, 1)
    assert line["seconds"] == 2.0
    assert REPORT_VARIABLE == "ODOO_DR_FAULT_REPORT"
