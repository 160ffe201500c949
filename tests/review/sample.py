"""A review result with every kind of finding, for the report and scorecard tests:
passed, failed, suppressed and not evaluated.

It is built on a real inventory and a real odoo-dr repository with snapshot and
drill records. Only the findings are written by hand, from rules that are not
registered, so the registry's rules can change without changing these tests.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from odoo_dr.repository.manifest import (
    BackupStats,
    CheckResult,
    DatabaseInfo,
    DrillRecord,
    FilestoreSummary,
    OdooInfo,
    PostgresInfo,
    SnapshotManifest,
    StoredBlob,
)
from odoo_dr.repository.store import Repository, new_id
from odoo_dr.review.engine import ReviewOptions, build_context
from odoo_dr.review.model import (
    Area,
    Evidence,
    Finding,
    Outcome,
    ReviewResult,
    Rule,
    Severity,
    Suppression,
)
from odoo_dr.review.scorecard import build_scorecard
from odoo_dr.review.suppressions import apply_suppressions
from odoo_dr.review.yamlio import Location

INVENTORY = """\
platform: acme <platform> | test
environments:
  - name: production
    runbooks: [docs/runbook.md]
    evidence:
      odoo_conf: [odoo.conf]
      repository: repo
    tenants:
      - name: acme
        tier: critical
      - name: beta
        tier: standard
  - name: staging
    kind: staging
    tenants:
      - name: acme-staging
        tier: low
"""

ODOO_CONF = """\
[options]
db_name = acme
list_db = True
admin_passwd = admin
"""


def _rule(rule_id: str, area: Area, severity: Severity, snippet: str | None = None):
    return Rule(
        id=rule_id,
        area=area,
        severity=severity,
        title=f"Sample rule {rule_id} holds",
        why=f"{rule_id} matters because recovery depends on it.",
        remediation=f"Fix what {rule_id} reports.",
        check=lambda context: iter(()),
        snippet=snippet,
    )


RULES = {
    "coverage": _rule("TST-001", Area.COVERAGE, Severity.CRITICAL),
    "security": _rule(
        "TST-002", Area.SECURITY, Severity.HIGH, snippet="[options]\nlist_db = False"
    ),
    "alarms": _rule("TST-003", Area.OBSERVABILITY, Severity.MEDIUM),
    "kubernetes": _rule("TST-004", Area.KUBERNETES, Severity.LOW),
    "info": _rule("TST-005", Area.COST, Severity.INFO),
}

# A message with Markdown, HTML and XML special characters, to test escaping.
AWKWARD = "replicas: <script>alert(1)</script> | *none* & `0` [x](y)"


def snapshot(tenant: str, moment: datetime) -> SnapshotManifest:
    return SnapshotManifest(
        id=new_id(moment),
        tenant=tenant,
        started_at=moment,
        snapshot_time=moment,
        finished_at=moment,
        lsn=None,
        database=DatabaseInfo(
            name=tenant, encoding="UTF8", collate="C", ctype="C", size_bytes=1
        ),
        postgres=PostgresInfo(
            server_version="16.4",
            server_major=16,
            pg_dump_version="16.4",
            pg_dump_major=16,
        ),
        odoo=OdooInfo(version="17.0", uuid=None, modules={}),
        row_counts={},
        dump=[],
        filestore=FilestoreSummary(index=StoredBlob(size=0, chunks=[])),
        stats=BackupStats(
            seconds=1,
            dump_bytes=1,
            files_read=0,
            files_reused=0,
            bytes_read=0,
            new_objects=0,
            new_bytes=0,
        ),
        tool_version="0.1.0",
    )


def drill(tenant: str, finished: datetime, passed: bool, rto: float) -> DrillRecord:
    return DrillRecord(
        id=new_id(finished),
        snapshot_id="unused",
        tenant=tenant,
        started_at=finished - timedelta(seconds=rto),
        finished_at=finished,
        scratch_database="scratch",
        scratch_filestore="/tmp/scratch",
        kept=False,
        passed=passed,
        rto_seconds=rto,
        rpo_seconds=60,
        steps={"restore": rto},
        checks=[CheckResult(name="row counts", passed=passed, summary="")],
        tool_version="0.1.0",
    )


def write_platform(folder: Path, now: datetime) -> Path:
    """Write the inventory, odoo.conf and a repository with snapshots and drills."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "inventory.yaml").write_text(INVENTORY)
    (folder / "odoo.conf").write_text(ODOO_CONF)
    repository = Repository.init(str(folder / "repo"))
    repository.save_snapshot(snapshot("acme", now - timedelta(minutes=10)))
    repository.save_snapshot(snapshot("beta", now - timedelta(days=2)))
    # acme: a passing drill 3 days ago, inside the critical tier's 30-day window.
    repository.save_drill(drill("acme", now - timedelta(days=3), True, 600))
    # beta: passed 10 days ago, then failed yesterday: recovery is not proven.
    repository.save_drill(drill("beta", now - timedelta(days=10), True, 7200))
    repository.save_drill(drill("beta", now - timedelta(days=1), False, 9000))
    return folder / "inventory.yaml"


def findings(conf: str) -> list[Finding]:
    """Return passing, failing and to-be-suppressed findings, with and without a
    file and line."""
    at_line = Location(conf, 3)
    no_line = Location(conf, None)
    built = [
        # No file: a tenant without backup, and one with.
        (RULES["coverage"], Outcome(False, "no backup", "production", "acme")),
        (RULES["coverage"], Outcome(True, "backed up", "production", "beta")),
        (
            RULES["coverage"],
            Outcome(False, "no backup", "staging", "acme-staging"),
        ),
        # File and line.
        (
            RULES["security"],
            Outcome(
                False,
                "list_db is on",
                "production",
                resource="odoo.conf",
                evidence=(Evidence("list_db = True", at_line),),
            ),
        ),
        (
            RULES["security"],
            Outcome(
                False,
                "list_db is on",
                "staging",
                resource="odoo.conf",
                evidence=(Evidence("list_db = True", at_line),),
            ),
        ),
        # File without line.
        (
            RULES["alarms"],
            Outcome(
                True,
                "backup alert found",
                "production",
                resource="alerts",
                evidence=(Evidence("alert rules", no_line),),
            ),
        ),
        (RULES["alarms"], Outcome(False, "no drill alert", "production", "acme")),
        (
            RULES["kubernetes"],
            Outcome(
                False,
                AWKWARD,
                "production",
                resource="deployment/odoo",
                evidence=(Evidence("replicas", at_line),),
            ),
        ),
        (RULES["info"], Outcome(True, "prices known")),
        # Not evaluated: the evidence it needs was not read.
        (
            RULES["kubernetes"],
            Outcome(None, "the cluster was not read", "production", "beta"),
        ),
    ]
    return [Finding(rule, outcome) for rule, outcome in built]


SUPPRESSIONS = [
    # Active: accepts the staging list_db finding.
    Suppression(
        "TST-002",
        "staging/*",
        "staging is reached only through the VPN",
        date(2999, 1, 1),
        Location("suppressions.yaml", 1),
    ),
    # Expired: its finding counts again.
    Suppression(
        "TST-003",
        "production/*",
        "alerting moves to the new stack",
        date(2000, 1, 1),
        Location("suppressions.yaml", 5),
    ),
    # Unused: matches nothing.
    Suppression("TST-004", "nowhere/*", "old entry", date(2999, 1, 1)),
]


def sample_result(folder: Path) -> ReviewResult:
    """Review the sample platform below `folder` with the hand-written findings."""
    now = datetime.now(UTC)
    inventory = write_platform(folder, now)
    context = build_context(inventory, ReviewOptions(live=True))
    context.now = now
    built = findings(str(folder / "odoo.conf"))
    statuses = apply_suppressions(built, SUPPRESSIONS, now.date())
    result = ReviewResult(
        platform=context.inventory.platform,
        findings=built,
        evidence_problems=["staging: Redis at redis://127.0.0.1:1: connection refused"],
        assumptions=["tenants' tiers come from the inventory"],
        suppressions=statuses,
        base_dir=context.base_dir.resolve(),
        source=inventory,
        reviewed_at=now,
    )
    result.scorecard = build_scorecard(context, built)
    return result
