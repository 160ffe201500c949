"""Cost and retention rules: explicit retention, storage tiering, a cost estimate."""

from __future__ import annotations

from collections.abc import Iterator

from odoo_dr.review.context import EnvironmentView, ReviewContext
from odoo_dr.review.inventory import EnvironmentKind, Retention, format_duration
from odoo_dr.review.model import Area, Evidence, Outcome, Severity, rule

DAY = 86400
# How far back each retention count reaches, in seconds per kept backup.
SPAN_PER_COUNT = {
    "daily": DAY,
    "weekly": 7 * DAY,
    "monthly": 30 * DAY,
    "yearly": 365 * DAY,
}
# S3 storage classes by the price_table's class names.
STORAGE_CLASSES = {
    "STANDARD": "standard",
    "REDUCED_REDUNDANCY": "standard",
    "INTELLIGENT_TIERING": "standard",
    "EXPRESS_ONEZONE": "standard",
    "STANDARD_IA": "infrequent",
    "ONEZONE_IA": "infrequent",
    "GLACIER_IR": "archive",
    "GLACIER": "archive",
    "DEEP_ARCHIVE": "archive",
}
GB = 1024**3


def retention_span(retention: Retention) -> int:
    """Return how far back the retention keeps backups, in seconds."""
    spans = [
        (getattr(retention, name) or 0) * size for name, size in SPAN_PER_COUNT.items()
    ]
    return max(spans, default=0)


def _expiration_days(view: EnvironmentView) -> list[int]:
    bucket = view.live.bucket
    if bucket is None:
        return []
    days = []
    for item in bucket.lifecycle_rules or []:
        if item.get("Status") != "Enabled":
            continue
        expiration = (item.get("Expiration") or {}).get("Days")
        if isinstance(expiration, int):
            days.append(expiration)
    return days


@rule(
    "COST-001",
    Area.COST,
    Severity.MEDIUM,
    "Retention is explicit per environment and meets the legal minimum",
    "Without a stated retention, backups are either kept forever at growing cost or "
    "deleted before an audit or a late-found corruption needs them.",
    "Declare `retention:` for the environment (daily, weekly, monthly, yearly, and "
    "legal_min where the law sets one) and make the bucket's lifecycle match it.",
    snippet="retention:\n  daily: 14\n  weekly: 8\n  monthly: 12\n  legal_min: 365d",
)
def retention_explicit(context: ReviewContext) -> Iterator[Outcome]:
    for view in context.environments:
        if view.environment.kind == EnvironmentKind.DEVELOPMENT:
            continue
        if not view.environment.tenants:
            continue
        retention = view.environment.retention
        base = {"environment": view.name, "resource": "retention"}
        counts = ["keep_last", *SPAN_PER_COUNT]
        if retention is None or not any(getattr(retention, n) for n in counts):
            yield Outcome(False, "no retention declared for this environment", **base)
            continue
        span = retention_span(retention)
        problems = []
        evidence = []
        if retention.legal_min is not None:
            if span < retention.legal_min:
                problems.append(
                    f"retention reaches back {format_duration(span)}, less than the "
                    f"legal minimum of {format_duration(retention.legal_min)}"
                )
            for days in _expiration_days(view):
                if days * DAY < retention.legal_min:
                    problems.append(
                        f"the bucket's lifecycle deletes objects after {days} days, "
                        f"before the legal minimum of "
                        f"{format_duration(retention.legal_min)}"
                    )
                    evidence.append(Evidence(f"Expiration Days {days}"))
        text = ", ".join(
            f"{name} {getattr(retention, name)}"
            for name in counts
            if getattr(retention, name)
        )
        yield Outcome(
            not problems,
            "; ".join(problems)
            or f"retention {text}, reaching back {format_duration(span)}"
            + (
                f", legal minimum {format_duration(retention.legal_min)}"
                if retention.legal_min
                else ""
            ),
            evidence=tuple(evidence),
            **base,
        )


@rule(
    "COST-002",
    Area.COST,
    Severity.LOW,
    "The backup bucket moves old backups to cheaper storage",
    "Backups older than a few weeks are rarely read; keeping them in the standard "
    "class costs several times what an infrequent-access or archive class does.",
    "Add a lifecycle rule that transitions objects (and noncurrent versions) to an "
    "infrequent-access or archive class after 30 days.",
    snippet='{"Rules": [{"ID": "tier", "Status": "Enabled", "Filter": {"Prefix": ""},'
    ' "Transitions": [{"Days": 30, "StorageClass": "STANDARD_IA"}],'
    ' "NoncurrentVersionTransitions": [{"NoncurrentDays": 30,'
    ' "StorageClass": "GLACIER"}]}]}',
)
def bucket_tiered(context: ReviewContext) -> Iterator[Outcome]:
    for view in context.environments:
        bucket = view.live.bucket
        if bucket is None or "lifecycle" in bucket.unknown:
            continue
        enabled = [
            r for r in bucket.lifecycle_rules or [] if r.get("Status") == "Enabled"
        ]
        tiering = [
            r
            for r in enabled
            if r.get("Transitions") or r.get("NoncurrentVersionTransitions")
        ]
        classes = sorted(
            {
                str(item.get("StorageClass"))
                for r in tiering
                for item in (r.get("Transitions") or [])
                + (r.get("NoncurrentVersionTransitions") or [])
            }
        )
        yield Outcome(
            bool(tiering),
            f"lifecycle moves objects to {', '.join(classes)}"
            if tiering
            else f"no enabled lifecycle rule moves objects out of the standard class "
            f"({len(enabled)} enabled rules)",
            environment=view.name,
            resource=f"bucket/{bucket.bucket}",
        )


@rule(
    "COST-003",
    Area.COST,
    Severity.INFO,
    "Estimated monthly cost of the retained backups",
    "Knowing what retention costs lets retention and tiering be chosen on numbers "
    "rather than guesses.",
    "Give the repository or the backup bucket in the inventory's evidence, and set "
    "`price_table` to your provider's prices.",
)
def cost_estimate(context: ReviewContext) -> Iterator[Outcome]:
    prices = context.inventory.price_table
    for view in context.environments:
        sources = view.environment.evidence
        if not (sources.repository or sources.s3):
            continue
        lines = []
        total = 0.0
        repository = view.live.repository
        if repository is not None and repository.size_bytes is not None:
            cost = repository.size_bytes / GB * prices.per_gb_month.get("standard", 0.0)
            total += cost
            lines.append(
                f"repository {_size(repository.size_bytes)} as standard: "
                f"{cost:.2f} {prices.currency}"
            )
        bucket = view.live.bucket
        if bucket is not None and bucket.sizes_by_class is not None:
            for storage_class, size in sorted(bucket.sizes_by_class.items()):
                name = STORAGE_CLASSES.get(storage_class, "standard")
                cost = size / GB * prices.per_gb_month.get(name, 0.0)
                total += cost
                lines.append(
                    f"bucket {bucket.bucket} {_size(size)} in {storage_class} "
                    f"({name}): {cost:.2f} {prices.currency}"
                )
            if not bucket.size_complete:
                lines.append("bucket listing stopped early, so this is a lower bound")
        base = {"environment": view.name, "resource": "storage-cost"}
        if not lines:
            # The sources are named but were not read: the cost is unknown.
            yield Outcome(
                None,
                "no retained size known (repository or bucket not read), so no "
                "cost estimate",
                **base,
            )
            continue
        yield Outcome(
            True,
            f"estimated {total:.2f} {prices.currency} per month: " + "; ".join(lines),
            evidence=tuple(Evidence(line) for line in lines),
            **base,
        )


def _size(size: int) -> str:
    for unit, scale in (("GiB", GB), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"
