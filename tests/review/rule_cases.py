"""Rule fixtures: finding them, building their repositories, checking a review.

A rule fixture is a folder under fixtures/<RULE-ID>/ with an inventory.yaml,
named for the result the rule must give: `pass` (every finding passes), `fail`
(one fails) or `unknown` (none is evaluated, as its evidence is not read),
followed by `-CASE` when a rule has several such fixtures. A repository.yaml
beside it describes odoo-dr repositories to create, with snapshot and drill ages
relative to now, and an expect.yaml may name a part of the expected message and
the expected `file:line` of the finding.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ruamel.yaml import YAML

from odoo_dr.repository.manifest import (
    BackupStats,
    CheckResult,
    DatabaseInfo,
    DrillRecord,
    DumpFile,
    FileProblem,
    FilestoreSummary,
    OdooInfo,
    PostgresInfo,
    SnapshotManifest,
    StoredBlob,
)
from odoo_dr.repository.store import Repository, new_id
from odoo_dr.review.engine import ReviewOptions, run_review
from odoo_dr.review.inventory import parse_duration
from odoo_dr.review.model import Finding, ReviewResult

FIXTURES = Path(__file__).parent / "fixtures"


def fixture_cases(*prefixes: str) -> list[tuple[str, str]]:
    """Return (rule id, case) for each fixture folder of rules with these prefixes."""
    cases = []
    for folder in sorted(FIXTURES.iterdir()):
        if not folder.name.startswith(prefixes):
            continue
        for case in sorted(path.name for path in folder.iterdir() if path.is_dir()):
            if case.partition("-")[0] in ("pass", "fail", "unknown"):
                cases.append((folder.name, case))
    return cases


def build_repositories(folder: Path, spec: dict) -> None:
    """Create the odoo-dr repositories a repository.yaml describes.

    Each snapshot takes `tenant`, `age` (a duration before now), `files`,
    `missing`, `dump_bytes`; each drill takes `tenant`, `age`, `rto`, `passed`,
    `neutralized`.
    """
    now = datetime.now(UTC)
    for name, content in (spec or {}).items():
        repository = Repository.init(str(folder / name))
        ids: dict[str, str] = {}
        for item in content.get("snapshots") or []:
            manifest = snapshot_manifest(now, item)
            repository.save_snapshot(manifest)
            ids[item["tenant"]] = manifest.id
        for item in content.get("drills") or []:
            repository.save_drill(drill_record(now, item, ids.get(item["tenant"], "x")))


def snapshot_manifest(now: datetime, item: dict) -> SnapshotManifest:
    taken = now - timedelta(seconds=parse_duration(str(item.get("age", "1h"))))
    dump_bytes = int(item.get("dump_bytes", 4096))
    files = int(item.get("files", 3))
    missing = int(item.get("missing", 0))
    dump = (
        [
            DumpFile(name="toc.dat", size=dump_bytes // 2, chunks=["a" * 64]),
            DumpFile(name="3001.dat", size=dump_bytes - dump_bytes // 2, chunks=[]),
        ]
        if dump_bytes
        else []
    )
    return SnapshotManifest(
        id=new_id(taken),
        tenant=item["tenant"],
        started_at=taken,
        snapshot_time=taken,
        finished_at=taken + timedelta(seconds=30),
        lsn="0/1000000",
        database=DatabaseInfo(
            name=item.get("database", item["tenant"]),
            encoding="UTF8",
            collate="C",
            ctype="C",
            size_bytes=10_000_000,
        ),
        postgres=PostgresInfo(
            server_version="15.4",
            server_major=15,
            pg_dump_version="15.4",
            pg_dump_major=15,
        ),
        odoo=OdooInfo(version="17.0", uuid="u", modules={"base": "17.0.1.3"}),
        row_counts={"res_partner": 10},
        dump=dump,
        filestore=FilestoreSummary(
            index=StoredBlob(size=100 * files, chunks=["b" * 64] if files else []),
            referenced_files=files,
            referenced_bytes=files * 1000,
            problems=[
                FileProblem(
                    store_fname=f"ab/ab{index:038d}",
                    reason="missing",
                    attachments=[f"ir.attachment,{index} res.partner,1"],
                )
                for index in range(missing)
            ],
        ),
        stats=BackupStats(
            seconds=30,
            dump_bytes=dump_bytes,
            files_read=files,
            files_reused=0,
            bytes_read=files * 1000,
            new_objects=files,
            new_bytes=files * 900,
        ),
        tool_version="test",
    )


def drill_record(now: datetime, item: dict, snapshot_id: str) -> DrillRecord:
    finished = now - timedelta(seconds=parse_duration(str(item.get("age", "1d"))))
    rto = parse_duration(str(item.get("rto", "10m")))
    checks = [CheckResult(name="row counts", passed=True, summary="ok")]
    if item.get("neutralized", True) is not None:
        checks.append(
            CheckResult(
                name="neutralized",
                passed=bool(item.get("neutralized", True)),
                summary="checked",
            )
        )
    return DrillRecord(
        id=new_id(finished),
        snapshot_id=snapshot_id,
        tenant=item["tenant"],
        started_at=finished - timedelta(seconds=rto),
        finished_at=finished,
        scratch_database="odoo-dr-drill-x",
        scratch_filestore="/tmp/x",
        kept=False,
        passed=bool(item.get("passed", True)),
        rto_seconds=rto,
        rpo_seconds=3600,
        steps={"restore": rto},
        checks=checks,
        tool_version="test",
    )


def rule_findings(result: ReviewResult, rule_id: str) -> list[Finding]:
    return [item for item in result.findings if item.rule.id == rule_id]


def review_fixture(materialize: Callable[..., Path], rule_id: str, case: str):
    """Run the review on a materialized fixture; return it and the rule's
    findings."""
    folder = materialize(rule_id, case)
    result = run_review(folder, ReviewOptions(live=True))
    return folder, result, rule_findings(result, rule_id)


def check_case(materialize: Callable[..., Path], rule_id: str, case: str) -> None:
    """Assert the rule's result that the fixture's name gives (see the module
    docstring). An expect.yaml in the fixture may name a message part and a
    file:line."""
    folder, result, findings = review_fixture(materialize, rule_id, case)
    summary = [(f.outcome.passed, f.target, f.outcome.message) for f in findings]
    assert findings, (
        f"{rule_id} produced no finding; problems: {result.evidence_problems}"
    )
    expect_file = folder / "expect.yaml"
    expect = {}
    if expect_file.is_file():
        expect = YAML(typ="safe").load(expect_file.read_text()) or {}
    kind = case.partition("-")[0]
    if kind == "unknown":
        assert all(not f.evaluated for f in findings), summary
        relevant = findings
    elif kind == "pass":
        assert all(f.passed for f in findings), summary
        relevant = findings
    else:
        assert any(f.failed for f in findings), summary
        relevant = [f for f in findings if f.failed]
    if "message" in expect:
        assert any(expect["message"] in f.outcome.message for f in relevant), summary
    if "location" in expect:
        file_name, line = str(expect["location"]).rsplit(":", 1)
        locations = [f.location for f in relevant if f.location is not None]
        assert any(
            Path(item.file).name == Path(file_name).name and item.line == int(line)
            for item in locations
        ), locations
