"""The terminal report: summary, scorecard, objectives, then findings, most severe
first. It fits 100 columns, and has colour only when written to a terminal."""

from __future__ import annotations

import io
from itertools import groupby

from rich import box
from rich.console import Console, Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from odoo_dr.review.model import Finding, ReviewResult, Rule
from odoo_dr.review.reports import common

WIDTH = 100
SEVERITY_STYLE = {
    "critical": "bold white on red",
    "high": "bold red",
    "medium": "yellow",
    "low": "cyan",
    "info": "dim",
}
STATE_STYLE = {"met": "green", "missed": "bold red", "unknown": "dim"}
GRADE_STYLE = {
    "A": "bold green",
    "B": "green",
    "C": "yellow",
    "D": "red",
    "F": "bold red",
}


def _header(result: ReviewResult) -> RenderableType:
    counts = common.summary(result)
    lines = Text()
    lines.append(f"Resilience review of {result.platform}", style="bold")
    lines.append(f"  {result.reviewed_at:%Y-%m-%d %H:%M} UTC\n", style="dim")
    lines.append(f"{counts['checks']} checks of {counts['rules']} rules: ")
    lines.append(f"{counts['passed']} passed", style="green")
    lines.append(", ")
    lines.append(f"{counts['failed']} failed", style="red" if counts["failed"] else "")
    lines.append(f", {counts['suppressed']} suppressed (excluded from the score)")
    if counts["not_evaluated"]:
        lines.append(
            f", {counts['not_evaluated']} not evaluated (evidence not read)",
            style="yellow",
        )
    severities = [
        f"{number} {level}"
        for level, number in counts["failed_by_severity"].items()
        if number
    ]
    if severities:
        lines.append(f"\nfailed by severity: {', '.join(severities)}")
    if result.base_dir is not None:
        lines.append(f"\nfiles are named relative to {result.base_dir}", style="dim")
    return lines


def _notes(result: ReviewResult) -> list[RenderableType]:
    blocks: list[RenderableType] = []
    sections = (
        ("Assumptions", result.assumptions, ""),
        ("Evidence not read", result.evidence_problems, "yellow"),
        (
            "Expired suppressions: their findings count again",
            [item.describe() for item in common.expired(result)],
            "yellow",
        ),
        (
            "Unused suppressions",
            [item.describe() for item in common.unused(result)],
            "",
        ),
    )
    for title, items, style in sections:
        if not items:
            continue
        text = Text()
        text.append(title, style="bold")
        for item in items:
            text.append("\n- ")
            text.append(item, style=style)
        blocks.append(text)
    return blocks


def _table(title: str) -> Table:
    # One space between columns and none at the edges, so ten columns fit 100.
    return Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )


def _scorecard(result: ReviewResult) -> RenderableType:
    weights = ", ".join(f"{part.label} {part.weight}" for part in common.PARTS)
    title = f"Scorecard (points out of {weights})"
    table = _table(title)
    # Wide enough that the title stays on one line.
    table.min_width = len(title)
    table.add_column("environment", overflow="fold")
    table.add_column("tier", overflow="fold")
    table.add_column("score", justify="right", no_wrap=True)
    for part in common.PARTS:
        table.add_column(part.label.replace(" ", "\n"), justify="right")
    table.add_column("findings", justify="right", no_wrap=True)
    for line in result.scorecard:
        cells = []
        for part in common.PARTS:
            if part.key in line.unmeasured:
                cells.append(Text("n/m", style="dim"))
            else:
                cells.append(Text(f"{line.points(part.key):.0f}"))
        score = Text(f"{line.score:.0f} ")
        score.append(line.grade, style=GRADE_STYLE[line.grade])
        findings = Text(str(line.outstanding), style="red" if line.outstanding else "")
        findings.append(f" / {line.excluded} / ")
        findings.append(
            str(line.not_evaluated), style="yellow" if line.not_evaluated else ""
        )
        table.add_row(line.environment, line.tier, score, *cells, findings)
    table.caption = (
        "n/m: not measured, no evidence for this part (0 points)\n"
        "findings: failed and not suppressed / suppressed / not evaluated"
    )
    table.caption_justify = "left"
    return table


def _objectives(result: ReviewResult) -> RenderableType | None:
    rows = [
        (line.environment, objective)
        for line in result.scorecard
        for objective in line.tenants
    ]
    if not rows:
        return None
    table = _table("Objectives after logical corruption: declared and measured")
    for column in ("environment", "tenant", "tier"):
        table.add_column(column, overflow="fold")
    for column in ("RTO", "measured", "RPO", "measured"):
        table.add_column(column, justify="right")
    table.add_column("latest drill", overflow="fold")
    for environment, objective in rows:
        table.add_row(
            environment,
            objective.tenant,
            objective.tier,
            common.duration(objective.declared_rto),
            Text(
                common.duration(objective.measured_rto),
                style=STATE_STYLE[common.objective_state(objective, "rto")],
            ),
            common.duration(objective.declared_rpo),
            Text(
                common.duration(objective.measured_rpo),
                style=STATE_STYLE[common.objective_state(objective, "rpo")],
            ),
            common.drill_text(objective),
        )
    return table


def _target(result: ReviewResult, finding: Finding) -> Text:
    text = Text(f"{finding.target}: {finding.outcome.message}", overflow="fold")
    location = common.location_text(finding, result.base_dir)
    if location:
        text.append(f"\n  at {location}", style="dim")
    note = common.expiry_note(result, finding)
    if note:
        text.append(f"\n  {note}", style="yellow")
    if finding.suppressed_by is not None:
        text.append(f"\n  {common.suppression_note(finding)}", style="dim")
    return text


def _rule_group(
    result: ReviewResult, findings: list[Finding], fix: bool
) -> RenderableType:
    """Show the findings of one rule and severity under one heading, with the fix
    once."""
    first = findings[0]
    label = first.severity.label
    head = Text(overflow="fold")
    head.append(f"{label.upper():<8}", style=SEVERITY_STYLE[label])
    head.append(f" {first.rule.id} ", style="bold")
    head.append(first.rule.title)
    lines: list[RenderableType] = [_target(result, item) for item in findings]
    if fix:
        lines.append(Text(f"fix: {first.rule.remediation}", overflow="fold"))
    return Group(head, Padding(Group(*lines), (0, 0, 0, 9), expand=False))


def _findings(
    result: ReviewResult, title: str, findings: list[Finding], fix: bool
) -> RenderableType | None:
    if not findings:
        return None
    groups = groupby(findings, key=lambda item: (item.severity, item.rule.id))
    return Group(
        Text(f"{title} ({len(findings)})", style="bold"),
        *(_rule_group(result, list(members), fix) for _key, members in groups),
    )


def _passed(result: ReviewResult) -> RenderableType | None:
    findings = common.passed(result)
    if not findings:
        return None
    counts: dict[str, int] = {}
    for item in findings:
        counts[item.rule.id] = counts.get(item.rule.id, 0) + 1
    text = Text()
    text.append(f"Passed ({len(findings)})", style="bold")
    text.append("\n")
    text.append(
        ", ".join(f"{rule} x{number}" for rule, number in sorted(counts.items())),
        style="green",
    )
    return text


def renderables(result: ReviewResult) -> list[RenderableType]:
    """Return the report's blocks in order, for printing on any Rich console."""
    blocks: list[RenderableType | None] = [
        _header(result),
        *_notes(result),
        _scorecard(result),
        _objectives(result),
        _findings(result, "Failed, most severe first", common.failed(result), True),
        _findings(
            result,
            "Not evaluated: the evidence these checks need was not read",
            common.not_evaluated(result),
            False,
        ),
        _findings(
            result,
            "Suppressed: counted, excluded from the score and --fail-on",
            common.suppressed(result),
            False,
        ),
        _passed(result),
    ]
    return [block for block in blocks if block is not None]


def _console(buffer: io.StringIO, width: int, color: bool) -> Console:
    return Console(
        file=buffer,
        width=width,
        force_terminal=color,
        color_system="standard" if color else None,
        highlight=False,
        markup=False,
        emoji=False,
        legacy_windows=False,
    )


def _text_of(buffer: io.StringIO, color: bool) -> str:
    text = buffer.getvalue()
    if not color:
        # Rich pads table and title lines to the full width.
        text = "\n".join(line.rstrip() for line in text.splitlines())
    return text.rstrip("\n") + "\n"


def render(result: ReviewResult, width: int = WIDTH, color: bool = False) -> str:
    """Render the report as text `width` columns wide, with ANSI colours if `color`."""
    buffer = io.StringIO()
    console = _console(buffer, width, color)
    for block in renderables(result):
        console.print(block)
        console.print()
    return _text_of(buffer, color)


def render_rules(rules: list[Rule], width: int = WIDTH, color: bool = False) -> str:
    """Render the rule catalogue: one block per rule, ordered by id."""
    buffer = io.StringIO()
    console = _console(buffer, width, color)
    for rule in rules:
        label = rule.severity.label
        head = Text()
        head.append(f"{rule.id} ", style="bold")
        head.append(f"{label:<8}", style=SEVERITY_STYLE[label])
        head.append(f" {rule.area.value}: {rule.title}")
        body = Text(f"why: {rule.why}\nfix: {rule.remediation}", overflow="fold")
        console.print(Group(head, Padding(body, (0, 0, 1, 4), expand=False)))
    return _text_of(buffer, color)
