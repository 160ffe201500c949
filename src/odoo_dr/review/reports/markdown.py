"""The Markdown report (GitHub-flavoured), and the Markdown list of rules.

Text that comes from the platform (messages, targets, file names, reasons) is
escaped, so it reads as written. Rule texts are authored in Markdown and kept as
they are.
"""

from __future__ import annotations

import re

from odoo_dr.review.model import RULES, Area, ReviewResult, Rule
from odoo_dr.review.reports import common

_SPECIAL = re.compile(r"([\\`*_\[\]<>|#~&])")


def escape(value: object) -> str:
    """Escape Markdown and inline HTML in `value`, on one line."""
    text = _SPECIAL.sub(r"\\\1", str(value))
    return " ".join(text.splitlines())


def code(value: object) -> str:
    """Return `value` as an inline code span, fenced with enough backticks."""
    text = " ".join(str(value).splitlines())
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    padding = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{padding}{text}{padding}{fence}"


def block(value: str, language: str = "") -> str:
    """Return `value` as a fenced code block, fenced longer than any fence inside."""
    longest = max((len(run) for run in re.findall(r"`{3,}", value)), default=2)
    fence = "`" * (longest + 1)
    return f"{fence}{language}\n{value.rstrip()}\n{fence}"


def _environment():
    environment = common.templates(autoescape=False)
    environment.filters.update(md=escape, code=code, block=block)
    return environment


def render(result: ReviewResult) -> str:
    template = _environment().get_template("review.md.j2")
    return template.render(
        result=result,
        counts=common.summary(result),
        by_severity=common.by_severity(result),
        failed=common.failed(result),
        suppressed=common.suppressed(result),
        passed=common.passed(result),
        not_evaluated=common.not_evaluated(result),
        expired=common.expired(result),
        unused=common.unused(result),
        expiry_note=lambda finding: common.expiry_note(result, finding),
        location_text=lambda finding: common.location_text(finding, result.base_dir),
    )


def rules_by_area(rules: list[Rule]) -> list[tuple[Area, list[Rule]]]:
    """Group rules by area, in the order of `Area`, each sorted by id."""
    groups = []
    for area in Area:
        members = sorted(
            (item for item in rules if item.area == area), key=lambda r: r.id
        )
        if members:
            groups.append((area, members))
    return groups


def render_rules(rules: list[Rule] | None = None) -> str:
    """Render the rule catalogue as Markdown; the default is every registered
    rule."""
    chosen = list(RULES.values()) if rules is None else rules
    template = _environment().get_template("rules.md.j2")
    return template.render(groups=rules_by_area(chosen), total=len(chosen))
