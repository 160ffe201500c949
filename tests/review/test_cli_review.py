"""`odoo-dr review` and `odoo-dr review rules` as a user runs them."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from odoo_dr.review.engine import load_rules
from odoo_dr.review.model import RULES
from odoo_dr.review.reports.markdown import render_rules

DOCS_RULES = Path(__file__).parents[2] / "docs" / "review-rules.md"
REGENERATE = "odoo-dr review rules --format markdown > docs/review-rules.md"


@pytest.fixture
def platform(tmp_path) -> Path:
    folder = tmp_path / "platform"
    folder.mkdir()
    (folder / "odoo.conf").write_text(
        "[options]\ndb_name = acme\nlist_db = True\nadmin_passwd = admin\n"
    )
    return folder


def review_json(cli, platform, *extra) -> dict:
    result = cli("review", str(platform), "--no-live", "-f", "json", *extra)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def failed_rules(report: dict, at_least: str) -> set[str]:
    order = ["info", "low", "medium", "high", "critical"]
    floor = order.index(at_least)
    return {
        item["rule"]
        for item in report["findings"]
        if item["status"] == "fail" and order.index(item["severity"]) >= floor
    }


def accept(path: Path, rules: set[str], expires: str = "2999-01-01") -> Path:
    path.write_text(
        "".join(
            f"- rule: {rule}\n  reason: accepted in the test\n  expires: {expires}\n"
            for rule in sorted(rules)
        )
    )
    return path


def test_review_usage_names_no_hidden_command(cli, platform):
    helped = cli("review", str(platform), "--help")
    assert helped.returncode == 0, helped.stderr
    assert " review [OPTIONS] [path]" in helped.stdout
    wrong = cli("review", str(platform), "--no-such-option")
    assert wrong.returncode == 2
    assert " review --help' for help" in wrong.stderr
    assert "review run" not in helped.stdout + wrong.stderr


def test_rules_doc_up_to_date():
    load_rules()
    expected = render_rules(sorted(RULES.values(), key=lambda item: item.id))
    current = DOCS_RULES.read_text() if DOCS_RULES.exists() else ""
    assert current == expected, (
        f"docs/review-rules.md is out of date with the rules; regenerate it with: "
        f"{REGENERATE}"
    )


def test_rules_markdown_is_the_doc(cli):
    result = cli("review", "rules", "--format", "markdown")
    assert result.returncode == 0, result.stderr
    load_rules()
    assert result.stdout == render_rules(list(RULES.values()))


def test_rules_json_lists_every_rule(cli):
    result = cli("review", "rules", "--format", "json")
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    load_rules()
    assert [item["id"] for item in listed] == sorted(RULES)
    keys = {"id", "area", "severity", "title", "why", "remediation", "snippet"}
    assert all(set(item) == keys for item in listed)
    assert all(item["why"] and item["remediation"] for item in listed)


def test_rules_terminal(cli):
    result = cli("review", "rules")
    assert result.returncode == 0, result.stderr
    load_rules()
    for rule_id in RULES:
        assert f"\n{rule_id} " in "\n" + result.stdout
    assert "\x1b[" not in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 100


def test_rules_unknown_format(cli):
    result = cli("review", "rules", "--format", "pdf")
    assert result.returncode == 2
    assert "unknown rules format 'pdf'" in result.stderr


def test_terminal_report_piped(cli, platform):
    result = cli("review", str(platform), "--no-live")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Resilience review of platform")
    assert "\x1b[" not in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 100


def test_fail_on_threshold(cli, platform):
    report = review_json(cli, platform)
    assert failed_rules(report, "high")
    gated = cli("review", str(platform), "--no-live", "--fail-on", "high")
    assert gated.returncode == 5
    assert "at or above high are not suppressed (--fail-on)" in gated.stderr


def test_fail_on_ignores_suppressed(cli, platform, tmp_path):
    report = review_json(cli, platform)
    blocking = failed_rules(report, "high")
    accepted = accept(tmp_path / "accepted.yaml", blocking)
    args = ("review", str(platform), "--no-live", "--fail-on", "high")
    result = cli(*args, "--suppressions", str(accepted))
    assert result.returncode == 0, result.stderr
    # Lower severities still fail, but do not reach the threshold.
    assert "--fail-on" not in result.stderr


def test_expired_suppression_counts_again(cli, platform, tmp_path):
    report = review_json(cli, platform)
    blocking = failed_rules(report, "high")
    expired = accept(tmp_path / "accepted.yaml", blocking, expires="2000-01-01")
    args = ("review", str(platform), "--no-live", "--fail-on", "high")
    result = cli(*args, "--suppressions", str(expired), "-f", "json")
    assert result.returncode == 5
    assert "expired on 2000-01-01" in result.stderr
    states = {item["state"] for item in json.loads(result.stdout)["suppressions"]}
    assert states == {"expired"}


def test_suppressed_findings_listed(cli, platform, tmp_path):
    accepted = accept(tmp_path / "accepted.yaml", {"SEC-002"})
    report = review_json(cli, platform, "--suppressions", str(accepted))
    listed = [item for item in report["findings"] if item["rule"] == "SEC-002"]
    assert listed
    assert {item["status"] for item in listed} == {"suppressed"}
    assert report["summary"]["suppressed"] == len(listed)


def test_invalid_suppression_file(cli, platform, tmp_path):
    bad = tmp_path / "accepted.yaml"
    bad.write_text("- rule: SEC-002\n  reason: ok\n  expires: soon\n")
    result = cli("review", str(platform), "--no-live", "--suppressions", str(bad))
    assert result.returncode == 2
    assert f"invalid suppression file: {bad}:1: invalid expires 'soon'" in (
        result.stderr
    )


def test_unknown_rule_in_suppressions(cli, platform, tmp_path):
    bad = accept(tmp_path / "accepted.yaml", {"NOPE-001"})
    result = cli("review", str(platform), "--no-live", "--suppressions", str(bad))
    assert result.returncode == 2
    assert "unknown rule 'NOPE-001'" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--fail-on", "severe"), "invalid severity 'severe'"),
        (("-f", "pdf"), "unknown report format 'pdf'"),
        (("-f", "json", "-f", "sarif"), "2 report formats need a folder"),
    ],
)
def test_invalid_options(cli, platform, args, message):
    result = cli("review", str(platform), "--no-live", *args)
    assert result.returncode == 2
    assert message in result.stderr


def test_several_formats_to_folder(cli, platform, tmp_path):
    folder = tmp_path / "reports"
    formats = ["terminal", "markdown", "html", "json", "sarif", "junit"]
    args = [item for name in formats for item in ("-f", name)]
    result = cli("review", str(platform), "--no-live", *args, "-o", str(folder))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    names = sorted(path.name for path in folder.iterdir())
    assert names == [
        "review.html",
        "review.json",
        "review.md",
        "review.sarif",
        "review.txt",
        "review.xml",
    ]
    report = json.loads((folder / "review.json").read_text())
    assert report["format"] == "odoo-dr-review"
    assert json.loads((folder / "review.sarif").read_text())["version"] == "2.1.0"
    assert ET.parse(folder / "review.xml").getroot().tag == "testsuites"
    assert (folder / "review.html").read_text().startswith("<!DOCTYPE html>")
    assert result.stderr.startswith("wrote ")
    assert str(folder / "review.json") in result.stderr


def test_sarif_uris_relative_to_inventory(cli, platform, tmp_path):
    (platform / "inventory.yaml").write_text(
        "platform: acme\n"
        "environments:\n"
        "  - name: production\n"
        "    evidence: {odoo_conf: [odoo.conf]}\n"
        "    tenants: [{name: acme, tier: critical}]\n"
    )
    target = tmp_path / "out" / "review.sarif"
    result = cli("review", str(platform), "--no-live", "-f", "sarif", "-o", str(target))
    assert result.returncode == 0, result.stderr
    run = json.loads(target.read_text())["runs"][0]
    assert run["originalUriBaseIds"]["REVIEWROOT"]["uri"] == (
        platform.resolve().as_uri() + "/"
    )
    sec = [item for item in run["results"] if item["ruleId"] == "SEC-002"]
    assert sec
    physical = sec[0]["locations"][0]["physicalLocation"]
    assert physical["artifactLocation"] == {
        "uri": "odoo.conf",
        "uriBaseId": "REVIEWROOT",
    }
    assert physical["region"] == {"startLine": 4}


def test_output_ending_in_slash_is_a_folder(cli, platform, tmp_path):
    folder = tmp_path / "new" / "reports"
    result = cli("review", str(platform), "--no-live", "-f", "json", "-o", f"{folder}/")
    assert result.returncode == 0, result.stderr
    assert folder.is_dir()
    assert [path.name for path in folder.iterdir()] == ["review.json"]


def test_several_formats_to_a_file_rejected(cli, platform, tmp_path):
    existing = tmp_path / "review.json"
    existing.write_text("{}")
    result = cli(
        "review", str(platform), "--no-live", "-f", "json", "-f", "sarif",
        "-o", str(existing),
    )  # fmt: skip
    assert result.returncode == 2
    assert f"2 report formats need a folder, and {existing} is a file" in (
        result.stderr
    )
    assert existing.read_text() == "{}"


def test_fail_on_counts_in_words(cli, platform, tmp_path):
    report = review_json(cli, platform)
    # Accept every failing critical rule but COV-001, which fails once: acme has
    # no backup.
    others = failed_rules(report, "critical") - {"COV-001"}
    accepted = accept(tmp_path / "accepted.yaml", others)
    result = cli(
        "review", str(platform), "--no-live", "--fail-on", "critical",
        "--suppressions", str(accepted),
    )  # fmt: skip
    assert result.returncode == 5
    assert (
        "1 failed finding at or above critical is not suppressed (--fail-on)"
        in result.stderr
    )
