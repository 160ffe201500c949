"""The HTML report: one self-contained file with inline CSS and SVG charts.

It has no script and loads nothing: no font, stylesheet or image from elsewhere,
so it can be mailed, archived as a CI artifact, or opened offline. Every value is
HTML-escaped by the template.
"""

from __future__ import annotations

import re

from markupsafe import Markup, escape

from odoo_dr import __version__
from odoo_dr.review.model import ReviewResult
from odoo_dr.review.reports import charts, common

_CODE_SPAN = re.compile(r"`([^`]+)`")


def rule_text(text: str) -> Markup:
    """Escape a rule's text and show its `code spans` as <code>, the one piece of
    Markdown that rule texts use."""
    return Markup(_CODE_SPAN.sub(r"<code>\1</code>", str(escape(text))))


def render(result: ReviewResult) -> str:
    objectives = [
        (line.environment, item) for line in result.scorecard for item in line.tenants
    ]
    by_severity = common.by_severity(result)
    environment = common.templates(autoescape=True)
    environment.filters["rule_text"] = rule_text
    template = environment.get_template("review.html.j2")
    return template.render(
        result=result,
        version=__version__,
        counts=common.summary(result),
        by_severity=by_severity,
        objectives=objectives,
        failed=common.failed(result),
        suppressed=common.suppressed(result),
        passed=common.passed(result),
        not_evaluated=common.not_evaluated(result),
        expired=common.expired(result),
        unused=common.unused(result),
        expiry_note=lambda finding: common.expiry_note(result, finding),
        location_text=lambda finding: common.location_text(finding, result.base_dir),
        scorecard_chart=charts.scorecard_chart(result.scorecard),
        severity_chart=charts.severity_chart(by_severity),
        objectives_chart=charts.objectives_chart(objectives),
    )
