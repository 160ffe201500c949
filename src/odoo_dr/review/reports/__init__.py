"""Review reports: terminal, Markdown, HTML, JSON, SARIF 2.1.0 and JUnit."""

from __future__ import annotations

from collections.abc import Callable

from odoo_dr.review.model import ReviewResult

FORMATS = ("terminal", "markdown", "html", "json", "sarif", "junit")
SUFFIXES = {
    "markdown": ".md",
    "html": ".html",
    "json": ".json",
    "sarif": ".sarif",
    "junit": ".xml",
    "terminal": ".txt",
}


def renderer(name: str) -> Callable[[ReviewResult], str]:
    """Return the function that renders a result in format `name`."""
    if name == "json":
        from odoo_dr.review.reports.json_report import render
    elif name == "terminal":
        from odoo_dr.review.reports.terminal import render
    elif name == "markdown":
        from odoo_dr.review.reports.markdown import render
    elif name == "html":
        from odoo_dr.review.reports.html import render
    elif name == "sarif":
        from odoo_dr.review.reports.sarif import render
    elif name == "junit":
        from odoo_dr.review.reports.junit import render
    else:
        raise ValueError(
            f"unknown report format {name!r}: use one of {', '.join(FORMATS)}"
        )
    return render
