"""The fault suite's own settings: its two forms and its report lines."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

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


def _faults_script() -> ModuleType:
    """Load benchmarks/faults.py, the script that sums the report lines up."""
    benchmarks = Path(__file__).resolve().parents[2] / "benchmarks"
    if str(benchmarks) not in sys.path:
        sys.path.insert(0, str(benchmarks))
    spec = importlib.util.spec_from_file_location(
        "faults_script", benchmarks / "faults.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_summary_sums_each_area():
    script = _faults_script()
    lines = [
        {"area": "crash", "name": "a", "trials": 100, "faults": 98, "inputs": 0,
         "lost": 0, "outcome": "passed"},
        {"area": "crash", "name": "b", "trials": 3, "faults": 3, "inputs": 0,
         "lost": 1, "outcome": "failed"},
        {"area": "fuzz", "name": "c", "trials": 0, "faults": 40, "inputs": 150,
         "lost": 0, "outcome": "passed"},
    ]  # fmt: skip
    summary = script.summarise(lines)
    assert summary["areas"]["crash"] == {
        "trials": 103,
        "faults": 101,
        "inputs": 0,
        "lost": 1,
    }
    assert summary["total"]["inputs"] == 150
    assert summary["failed_tests"] == ["crash::b"]


def test_unknown_area_rejected():
    script = _faults_script()
    with pytest.raises(SystemExit, match="unknown area 'nosuch'"):
        script.selected_paths(["nosuch"])
