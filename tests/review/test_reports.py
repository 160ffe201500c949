"""Every report format on one result with passed, failed and suppressed findings,
with and without file and line.

The SARIF schema in data/ is the official one: sarif-schema-2.1.0.json from the
OASIS sarif-spec repository (sarif-2.1/schema/, the errata01 version).
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest
from tests.review.sample import AWKWARD, sample_result

from odoo_dr.review.engine import ReviewOptions, run_review
from odoo_dr.review.reports import FORMATS, renderer
from odoo_dr.review.reports import terminal as terminal_report

SARIF_SCHEMA = Path(__file__).parent / "data" / "sarif-schema-2.1.0.json"
ANSI = re.compile(r"\x1b\[")


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    return sample_result(tmp_path_factory.mktemp("platform"))


@pytest.fixture(scope="module")
def rendered(result):
    return {name: renderer(name)(result) for name in FORMATS}


def by_target(result, rule_id, target):
    matches = [
        item
        for item in result.findings
        if item.rule.id == rule_id and item.target == target
    ]
    assert len(matches) == 1, (rule_id, target)
    return matches[0]


# -- the sample itself


def test_sample_has_every_status(result):
    states = {
        "pass": [item for item in result.findings if item.passed],
        "fail": result.failed(),
        "suppressed": [item for item in result.findings if item.suppressed_by],
        "not evaluated": result.not_evaluated(),
    }
    assert all(states.values()), {key: len(value) for key, value in states.items()}
    assert any(item.location and item.location.line for item in result.findings)
    assert any(item.location and not item.location.line for item in result.findings)
    assert any(item.location is None for item in result.findings)


# -- every format


@pytest.mark.parametrize("name", FORMATS)
def test_format_shows_not_evaluated(rendered, name):
    text = " ".join(rendered[name].split())
    assert "the cluster was not read" in text
    assert "not evaluated" in text.lower() or "not-evaluated" in text


def test_not_evaluated_is_neither_passed_nor_failed(result):
    [finding] = result.not_evaluated()
    assert not finding.passed
    assert not finding.failed
    assert finding not in result.failed()
    assert finding.suppressed_by is None


@pytest.mark.parametrize("name", FORMATS)
def test_format_shows_suppressed_finding(rendered, name):
    # The terminal report wraps long lines.
    text = " ".join(rendered[name].split())
    assert "staging is reached only through the VPN" in text


@pytest.mark.parametrize("name", ["terminal", "markdown", "html", "json", "sarif"])
def test_format_reports_expired_suppression(rendered, name):
    text = " ".join(rendered[name].split())
    assert "expired on 2000-01-01" in text


def test_junit_marks_expired_suppression(rendered):
    root = ET.fromstring(rendered["junit"])
    case = root.find(".//testcase[@classname='TST-003'][@name='production/acme']")
    assert case is not None
    failure = case.find("failure")
    assert failure is not None
    assert "its suppression expired on 2000-01-01" in failure.text


@pytest.mark.parametrize("name", ["terminal", "markdown", "html", "json"])
def test_format_reports_unused_suppression(rendered, name):
    assert "nowhere/*" in rendered[name].replace("nowhere/\\*", "nowhere/*")


# -- terminal


def test_terminal_fits_100_columns(rendered):
    lines = rendered["terminal"].splitlines()
    too_long = [line for line in lines if len(line) > 100]
    assert too_long == []


def test_terminal_plain_without_colour(rendered):
    assert not ANSI.search(rendered["terminal"])


def test_terminal_colour_on_request(result):
    text = terminal_report.render(result, color=True)
    assert ANSI.search(text)


def test_terminal_sections(rendered):
    text = rendered["terminal"]
    assert "Failed, most severe first (5)" in text
    assert "Suppressed: counted, excluded from the score and --fail-on (1)" in text
    assert "Passed (3)" in text
    assert "Evidence not read" in text
    assert "odoo.conf:3" in text
    # Failed findings come most severe first.
    assert text.index("CRITICAL TST-001") < text.index("HIGH     TST-002")
    assert text.index("HIGH     TST-002") < text.index("LOW      TST-004")


def test_terminal_scorecard_row(rendered):
    rows = [
        line.split()
        for line in rendered["terminal"].splitlines()
        if line.split()[:2] == ["production", "critical"]
    ]
    # environment, tier, score and grade, four parts, then findings: outstanding /
    # excluded / not evaluated
    assert rows == [
        [
            *["production", "critical", "52", "D", "0", "30", "8", "15"],
            *["4", "/", "0", "/", "0"],
        ]
    ]


# -- Markdown


def table_rows(text: str) -> list[list[str]]:
    tables, current = [], []
    for line in text.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    if current:
        tables.append(current)
    return tables


def test_markdown_tables_keep_columns(rendered):
    tables = table_rows(rendered["markdown"])
    assert len(tables) >= 5
    for table in tables:
        widths = {len(re.split(r"(?<!\\)\|", row)) for row in table}
        assert len(widths) == 1, table


def test_markdown_escapes_platform_text(rendered):
    text = rendered["markdown"]
    assert "<script>" not in text
    assert "\\<script\\>alert(1)\\</script\\> \\| \\*none\\*" in text
    assert "# Resilience review: acme \\<platform\\> \\| test" in text


def test_markdown_findings(rendered):
    text = rendered["markdown"]
    assert "### CRITICAL TST-001: Sample rule TST-001 holds" in text
    assert "- **Location:** `" in text
    assert "odoo.conf:3`" in text
    assert "```\n[options]\nlist_db = False\n```" in text
    suppressed = next(
        line for line in text.splitlines() if "staging is reached" in line
    )
    assert "| high | TST-002 | staging/odoo.conf | list\\_db is on |" in suppressed
    assert "| 2999-01-01 |" in suppressed
    assert "<details>" in text
    assert "| info | TST-005 | platform | prices known | - |" in text


# -- HTML


class Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.open: list[str] = []
        self.unclosed: list[str] = []

    VOID = {"meta", "br", "rect", "line", "link", "img", "input", "hr"}

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if not self.open or self.open[-1] != tag:
            self.unclosed.append(tag)
            return
        self.open.pop()


@pytest.fixture(scope="module")
def html_elements(rendered):
    parser = Elements()
    parser.feed(rendered["html"])
    parser.close()
    return parser


def test_html_is_well_nested(html_elements):
    assert html_elements.unclosed == []
    assert html_elements.open == []


def test_html_has_no_script_or_external_asset(rendered, html_elements):
    tags = {tag for tag, _attrs in html_elements.tags}
    assert not tags & {"script", "link", "img", "iframe", "object", "embed", "image"}
    for tag, attrs in html_elements.tags:
        assert not [name for name in attrs if name.startswith("on")], tag
        assert "src" not in attrs, tag
        if "href" in attrs:
            assert attrs["href"].startswith("#"), attrs["href"]
    assert "url(" not in rendered["html"]
    assert "@import" not in rendered["html"]


def test_html_escapes_platform_text(rendered):
    text = rendered["html"]
    assert "<script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_html_has_three_charts(html_elements, rendered):
    svgs = [attrs for tag, attrs in html_elements.tags if tag == "svg"]
    assert len(svgs) == 3
    assert all(attrs.get("role") == "img" for attrs in svgs)
    text = rendered["html"]
    assert "<title>Resilience score per environment and tier</title>" in text
    assert "<title>Findings by severity and status</title>" in text
    assert "Declared and measured RTO and RPO per tenant" in text


def test_html_chart_values(rendered):
    text = rendered["html"]
    # Scorecard: the critical tier's tested recovery is worth all 30 points.
    assert "<title>tested recovery: 30.0 of 30 points</title>" in text
    assert "<title>alarms: 0.0 of 15 points (not measured)</title>" in text
    # Severity: one high finding failed, one was suppressed.
    assert "<title>high: 1 failed</title>" in text
    assert "<title>high: 1 suppressed</title>" in text
    # Objectives: beta's data at risk (2 days) misses its 1-day RPO.
    assert "<title>production/beta RPO measured: 2d (missed)</title>" in text
    assert "<title>production/acme RTO measured: 10min (met)</title>" in text
    assert "<title>production/acme RTO declared: 4h</title>" in text


def test_html_lists_each_status(rendered):
    text = rendered["html"]
    assert "Failed findings (5)" in text
    assert "Suppressed findings (1)" in text
    assert "Passed checks (3)" in text


# -- JSON


def test_json_statuses(rendered):
    report = json.loads(rendered["json"])
    assert report["format"] == "odoo-dr-review"
    statuses = sorted(item["status"] for item in report["findings"])
    assert statuses.count("pass") == 3
    assert statuses.count("fail") == 5
    assert statuses.count("suppressed") == 1
    assert statuses.count("not-evaluated") == 1
    assert report["summary"]["suppressed"] == 1
    assert report["summary"]["failed"] == 5
    assert report["summary"]["not_evaluated"] == 1
    assert report["summary"]["expired_suppressions"] == 1


def test_json_locations_and_suppression(rendered):
    findings = json.loads(rendered["json"])["findings"]
    tenant = next(
        item
        for item in findings
        if item["target"] == "production/acme" and item["rule"] == "TST-001"
    )
    assert tenant["file"] is None
    assert tenant["line"] is None
    listed = next(item for item in findings if item["status"] == "suppressed")
    assert listed["line"] == 3
    assert listed["file"].endswith("odoo.conf")
    assert listed["suppression"]["reason"] == "staging is reached only through the VPN"
    assert listed["suppression"]["expires"] == "2999-01-01"
    assert listed["suppression"]["line"] == 1
    expired = next(
        item
        for item in findings
        if item["rule"] == "TST-003" and item["status"] == "fail"
    )
    assert expired["expired_suppression"] == "its suppression expired on 2000-01-01"


def test_json_scorecard_and_suppressions(rendered):
    report = json.loads(rendered["json"])
    first = report["scorecard"][0]
    assert (first["environment"], first["tier"]) == ("production", "critical")
    assert first["parts"]["tested_recovery"] == {
        "weight": 30,
        "percent": 100.0,
        "points": 30.0,
        "measured": True,
    }
    assert first["tenants"][0]["rto_met"] is True
    states = [item["state"] for item in report["suppressions"]]
    assert states == ["active", "expired", "unused"]


# -- SARIF


@pytest.fixture(scope="module")
def sarif_validator():
    schema = json.loads(SARIF_SCHEMA.read_text())
    return jsonschema.Draft4Validator(
        schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER
    )


def schema_errors(validator, document) -> list[str]:
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def test_sarif_matches_schema(rendered, sarif_validator):
    assert schema_errors(sarif_validator, json.loads(rendered["sarif"])) == []


def test_sarif_schema_check_catches_errors(rendered, sarif_validator):
    document = json.loads(rendered["sarif"])
    document["runs"][0]["results"][0]["level"] = "fatal"
    assert schema_errors(sarif_validator, document) != []


def test_sarif_one_run_with_rules(rendered):
    document = json.loads(rendered["sarif"])
    assert document["version"] == "2.1.0"
    assert len(document["runs"]) == 1
    rules = document["runs"][0]["tool"]["driver"]["rules"]
    ids = [rule["id"] for rule in rules]
    assert len(ids) == len(set(ids))
    sample = next(rule for rule in rules if rule["id"] == "TST-002")
    assert sample["shortDescription"]["text"] == "Sample rule TST-002 holds"
    assert sample["fullDescription"]["text"].startswith("TST-002 matters")
    assert sample["help"]["text"].startswith("Fix what TST-002 reports.")
    assert "list_db = False" in sample["help"]["markdown"]
    assert all("helpUri" not in rule for rule in rules)


def sarif_result(document, rule_id, target):
    matches = [
        item
        for item in document["runs"][0]["results"]
        if item["ruleId"] == rule_id and item["properties"]["target"] == target
    ]
    assert len(matches) == 1, (rule_id, target)
    return matches[0]


def test_sarif_levels_from_severity(rendered):
    document = json.loads(rendered["sarif"])
    cases = {
        ("TST-001", "production/acme"): ("fail", "error"),
        ("TST-002", "production/odoo.conf"): ("fail", "error"),
        ("TST-003", "production/acme"): ("fail", "warning"),
        ("TST-004", "production/deployment/odoo"): ("fail", "note"),
        ("TST-001", "production/beta"): ("pass", "none"),
        ("TST-005", "platform"): ("pass", "none"),
        # Not evaluated: undecided.
        ("TST-004", "production/beta"): ("open", "none"),
    }
    for (rule_id, target), (kind, level) in cases.items():
        item = sarif_result(document, rule_id, target)
        assert (item["kind"], item["level"]) == (kind, level), (rule_id, target)


def test_sarif_locations(rendered, result):
    document = json.loads(rendered["sarif"])
    run = document["runs"][0]
    base = run["originalUriBaseIds"]["REVIEWROOT"]["uri"]
    assert base == result.base_dir.as_uri() + "/"
    with_line = sarif_result(document, "TST-002", "production/odoo.conf")
    physical = with_line["locations"][0]["physicalLocation"]
    assert physical["artifactLocation"] == {
        "uri": "odoo.conf",
        "uriBaseId": "REVIEWROOT",
    }
    assert physical["region"] == {"startLine": 3}
    no_line = sarif_result(document, "TST-003", "production/alerts")
    physical = no_line["locations"][0]["physicalLocation"]
    assert physical["artifactLocation"]["uri"] == "odoo.conf"
    assert "region" not in physical
    # Without a file, a finding points at the inventory, and names its target.
    no_file = sarif_result(document, "TST-001", "production/acme")
    location = no_file["locations"][0]
    assert location["physicalLocation"]["artifactLocation"]["uri"] == "inventory.yaml"
    assert location["logicalLocations"] == [
        {"fullyQualifiedName": "production/acme", "kind": "resource"}
    ]


def test_sarif_uris_are_valid_references(rendered):
    document = json.loads(rendered["sarif"])
    for item in document["runs"][0]["results"]:
        for location in item["locations"]:
            physical = location.get("physicalLocation")
            if physical is None:
                continue
            uri = physical["artifactLocation"]["uri"]
            assert not re.search(r"[\s<>\"{}|\\^`]", uri), uri
            parts = urlsplit(uri)
            assert parts.scheme in ("", "file"), uri


def test_sarif_suppression_entry(rendered):
    document = json.loads(rendered["sarif"])
    accepted = sarif_result(document, "TST-002", "staging/odoo.conf")
    assert accepted["suppressions"] == [
        {
            "kind": "external",
            "status": "accepted",
            "justification": "staging is reached only through the VPN",
            "properties": {"expires": "2999-01-01", "file": "suppressions.yaml:1"},
        }
    ]
    unsuppressed = [
        item
        for item in document["runs"][0]["results"]
        if item["properties"]["status"] != "suppressed"
    ]
    assert all("suppressions" not in item for item in unsuppressed)


def test_sarif_without_inventory(result, sarif_validator):
    """A folder reviewed without an inventory: findings without a file keep only
    their logical location, and the log still matches the schema."""
    from odoo_dr.review.reports import sarif

    bare = type(result)(
        platform=result.platform,
        findings=result.findings,
        suppressions=result.suppressions,
        base_dir=result.base_dir,
        source=None,
        reviewed_at=result.reviewed_at,
    )
    document = json.loads(sarif.render(bare))
    assert schema_errors(sarif_validator, document) == []
    no_file = sarif_result(document, "TST-001", "production/acme")
    assert "physicalLocation" not in no_file["locations"][0]


# -- JUnit


def test_junit_structure(rendered):
    root = ET.fromstring(rendered["junit"])
    assert root.tag == "testsuites"
    # Skipped: one suppressed finding and one not evaluated.
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == (
        "10",
        "5",
        "2",
    )
    suites = {suite.get("name"): suite for suite in root.findall("testsuite")}
    assert set(suites) == {
        "coverage",
        "security",
        "observability",
        "kubernetes",
        "cost",
    }
    coverage = suites["coverage"]
    assert (coverage.get("tests"), coverage.get("failures")) == ("3", "2")
    names = [case.get("name") for case in coverage.findall("testcase")]
    assert names == ["production/acme", "production/beta", "staging/acme-staging"]


def test_junit_failure_and_skip(rendered):
    root = ET.fromstring(rendered["junit"])
    failed = root.find(
        ".//testcase[@classname='TST-002'][@name='production/odoo.conf']"
    )
    failure = failed.find("failure")
    assert failure.get("message") == "list_db is on"
    assert failure.get("type") == "high"
    assert "odoo.conf:3" in failure.text
    assert failed.get("line") == "3"
    assert failed.get("file").endswith("odoo.conf")
    skipped = root.find(".//testcase[@classname='TST-002'][@name='staging/odoo.conf']")
    assert skipped.find("failure") is None
    assert "staging is reached only through the VPN" in skipped.find("skipped").get(
        "message"
    )
    passed = root.find(".//testcase[@classname='TST-001'][@name='production/beta']")
    assert list(passed) == []
    assert passed.get("file") is None


def test_junit_keeps_awkward_text(rendered):
    root = ET.fromstring(rendered["junit"])
    case = root.find(
        ".//testcase[@classname='TST-004'][@name='production/deployment/odoo']"
    )
    assert case.find("failure").get("message") == AWKWARD


def test_junit_not_evaluated_is_skipped(rendered):
    root = ET.fromstring(rendered["junit"])
    case = root.find(".//testcase[@classname='TST-004'][@name='production/beta']")
    assert case.find("failure") is None
    skipped = case.find("skipped").get("message")
    assert skipped == "not evaluated: the cluster was not read"


def test_junit_drops_invalid_xml_characters(result):
    from odoo_dr.review.reports import junit

    finding = by_target(result, "TST-001", "production/acme")
    original = finding.outcome
    finding.outcome = type(original)(
        False, "bad\x00byte\x1b", original.environment, original.tenant
    )
    try:
        root = ET.fromstring(junit.render(result))
    finally:
        finding.outcome = original
    case = root.find(".//testcase[@classname='TST-001'][@name='production/acme']")
    assert case.find("failure").get("message") == "bad\ufffdbyte\ufffd"


# -- a real review


def test_formats_render_real_review(tmp_path):
    (tmp_path / "odoo.conf").write_text(
        "[options]\ndb_name = acme\nlist_db = True\nadmin_passwd = admin\n"
    )
    result = run_review(tmp_path, ReviewOptions(live=False))
    for name in FORMATS:
        text = renderer(name)(result)
        assert text.endswith("\n"), name
    document = json.loads(renderer("sarif")(result))
    schema = json.loads(SARIF_SCHEMA.read_text())
    assert list(jsonschema.Draft4Validator(schema).iter_errors(document)) == []
    ET.fromstring(renderer("junit")(result))
