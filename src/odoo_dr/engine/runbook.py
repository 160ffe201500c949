"""The recovery runbook of an environment, from the inventory and the last drill.

Each step gives what to run, who may run it, how long it took in the last platform
drill, and what shows that it is done. Durations come from that drill's record;
without one the runbook states that they are unknown rather than guessing.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache

from jinja2 import Environment, PackageLoader, StrictUndefined

from odoo_dr.engine import platform as engine
from odoo_dr.errors import OdooDrError
from odoo_dr.platform import configuration as config_state
from odoo_dr.repository.store import Repository
from odoo_dr.review.inventory import Inventory
from odoo_dr.review.inventory import format_duration as duration

OPERATOR = "on-call platform engineer"
KEY_HOLDER = (
    "on-call platform engineer with the repository key (ODOO_DR_KEY_FILE) and the "
    "restore role that odoo-dr roles creates"
)


@dataclass(frozen=True)
class RunbookOptions:
    location: str
    output_format: str = "md"


@dataclass
class Step:
    title: str
    who: str
    commands: list[str]
    expected: str
    done_when: list[str]
    notes: list[str] = field(default_factory=list)


@dataclass
class TenantLine:
    name: str
    tier: str
    rto: str
    rpo: str
    last_drill: str
    integrations: str
    runbook: str


@dataclass
class Runbook:
    platform: str
    environment: str
    generated_at: str
    repository: str
    drill_summary: list[str]
    tenants: list[TenantLine]
    steps: list[Step]
    warnings: list[str]


def build_runbook(
    inventory: Inventory, environment_name: str, options: RunbookOptions
) -> Runbook:
    environment = engine.find_environment(inventory, environment_name)
    warnings: list[str] = []
    drill = backup = None
    state = None
    try:
        repository = Repository.open(options.location)
        drills = engine.list_records(repository, environment.name, "drill")
        backups = engine.list_records(repository, environment.name, "backup")
        drill = drills[-1] if drills else None
        backup = backups[-1] if backups else None
        if backup is not None and backup.configuration:
            state = config_state.load_configuration(repository, backup.configuration)
    except OdooDrError as exc:
        warnings.append(f"the repository could not be read: {exc.message}")
    if drill is None:
        warnings.append(
            "no platform drill recorded: durations are unknown; run odoo-dr platform "
            f"drill {shlex.quote(environment.name)} and generate this runbook again"
        )
    env = environment.name
    repo = shlex.quote(options.location)
    source = backup.id if backup is not None else "<platform backup id>"
    by_tenant = {item.tenant: item for item in drill.tenants} if drill else {}
    summary = []
    if drill is not None:
        summary.append(
            f"Last platform drill {drill.id} on {drill.started_at:%Y-%m-%d %H:%M} UTC: "
            f"{len(drill.tenants) - len(drill.failed)} of {len(drill.tenants)} tenants "
            f"passed in {duration(drill.seconds)} with {drill.jobs} at once."
        )
        for tier in drill.tiers:
            state_text = (
                f"back after {duration(tier.done_after_seconds)}"
                if tier.done_after_seconds is not None
                else "not fully recovered"
            )
            objective = (
                f", region-loss RTO {duration(tier.objective_rto_seconds)}"
                if tier.objective_rto_seconds is not None
                else ""
            )
            summary.append(f"Tier {tier.tier}: {state_text}{objective}.")
    if backup is not None:
        summary.append(
            f"Newest platform backup {backup.id} from "
            f"{backup.started_at:%Y-%m-%d %H:%M} UTC, configuration commit "
            f"{backup.configuration_commit or 'unknown'}."
        )

    tenants = []
    for tenant in environment.tenants:
        objective = inventory.objective(tenant, engine.DISRUPTION)
        outcome = by_tenant.get(tenant.name)
        tenants.append(
            TenantLine(
                name=tenant.name,
                tier=tenant.tier,
                rto=duration(objective.rto) if objective else "none",
                rpo=duration(objective.rpo) if objective else "none",
                last_drill=(
                    f"{'passed' if outcome.status == 'ok' else 'FAILED'} in "
                    f"{duration(outcome.seconds)}"
                    if outcome
                    else "not drilled"
                ),
                integrations=", ".join(
                    f"{item.kind}: {item.name}" for item in tenant.integrations
                )
                or "none",
                runbook=tenant.runbook or "",
            )
        )

    steps = [
        Step(
            "Declare the incident and stop writes to the old platform",
            OPERATOR,
            [
                "# scale every Odoo deployment of the lost environment to 0, "
                "if it is reachable"
            ],
            "a few minutes",
            [
                "no Odoo worker of the old environment accepts requests",
                "integrations (EDI, carriers) are paused at their far end if needed",
            ],
        ),
        Step(
            "Choose the platform backup to restore",
            OPERATOR,
            [f"odoo-dr platform list {shlex.quote(env)} --repo {repo}"],
            "under a minute",
            [
                f"the backup to restore is known: {source}",
                "every tenant of it shows 0 failed, or the failed ones are noted",
            ],
        ),
        Step(
            "Check the target",
            OPERATOR,
            [
                'pg_isready -d "$TARGET_DSN"',
                'test -d "$TARGET_FILESTORE_ROOT" && test -w "$TARGET_FILESTORE_ROOT"',
                'redis-cli -u "$TARGET_REDIS_URL" ping',
            ],
            "a few minutes",
            [
                "PostgreSQL answers, the filestore root is writable, Redis answers "
                "PONG",
            ],
        ),
    ]
    previous = 0.0
    first = True
    for tier, members in engine.tier_order(inventory, environment):
        names = [tenant.name for tenant in members]
        tier_result = (
            next((item for item in drill.tiers if item.tier == tier), None)
            if drill
            else None
        )
        if tier_result is not None and tier_result.done_after_seconds is not None:
            expected = (
                f"{duration(tier_result.done_after_seconds - previous)} "
                f"(last drill, {drill.jobs if drill else 1} tenants at once)"
            )
            previous = tier_result.done_after_seconds
        else:
            expected = "unknown: not measured by a passing drill"
        command = [
            f"odoo-dr platform restore {shlex.quote(env)} --from {source} "
            f"--repo {repo}",
            '    --to "$TARGET_DSN" --target-filestore-root "$TARGET_FILESTORE_ROOT"',
        ]
        if first:
            command.append(
                '    --redis-url "$TARGET_REDIS_URL" --config-out ./recovered-config'
            )
        command.append(
            "    " + " ".join(f"--tenant {shlex.quote(name)}" for name in names)
        )
        objective = _objective_rto(inventory, members)
        notes = [
            f"region-loss RTO of this tier: {duration(objective)}"
            if objective is not None
            else "this tier has no region-loss RTO"
        ]
        if first:
            notes.append(
                "this step also restores the Redis sessions or queues and writes the "
                "configuration that ran at backup time into ./recovered-config"
            )
        steps.append(
            Step(
                f"Restore tier {tier}: {', '.join(names)}",
                KEY_HOLDER,
                [" \\\n".join(command)],
                expected,
                [
                    "the command exits 0 and lists every tenant of the tier as ok",
                    "exit 4 names the tenants that are not back and why: fix and "
                    "rerun with --tenant for those only (add --force to replace a "
                    "partly restored one)",
                ],
                notes,
            )
        )
        first = False
    files = [*state.manifests, *state.odoo_confs] if state else []
    apply_notes = (
        [f"files: {', '.join(item.path for item in files[:12])}"] if files else []
    )
    steps.append(
        Step(
            "Apply the configuration that ran at backup time",
            OPERATOR,
            [
                "cat recovered-config/COMMIT",
                "kubectl diff -f recovered-config/  # review what changes",
                "kubectl apply -f recovered-config/",
            ],
            "10 to 30 minutes",
            [
                "the commit in recovered-config/COMMIT is the expected one",
                "secrets are re-created from the vault: every <secret:...> reference "
                "in recovered-config has its value",
                "Odoo pods are Ready",
            ],
            apply_notes,
        )
    )
    routes = state.routes if state else []
    steps.append(
        Step(
            "Send traffic to the recovered platform",
            OPERATOR,
            ["# point DNS or the load balancer of each host below at the new ingress"],
            "DNS TTL plus a few minutes",
            [
                "each host answers /web/login with HTTP 200",
                "integrations are resumed and their first messages succeed",
            ],
            [f"route: {item.line()}" for item in routes[:20]],
        )
    )
    return Runbook(
        platform=inventory.platform,
        environment=env,
        generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        repository=options.location,
        drill_summary=summary,
        tenants=tenants,
        steps=steps,
        warnings=warnings,
    )


def _objective_rto(inventory: Inventory, members: list) -> float | None:
    rtos = [
        objective.rto
        for tenant in members
        if (objective := inventory.objective(tenant, engine.DISRUPTION)) is not None
    ]
    return min(rtos) if rtos else None


def escape_markdown(text: object) -> str:
    """Escape text for Markdown prose and table cells, outside code blocks.

    Markdown renderers pass HTML through, so a tenant named `<script>` would
    become a tag, and a `|` would split a table cell.
    """
    return (
        str(text)
        .replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("|", "\\|")
    )


@cache
def _templates(autoescape: bool) -> Environment:
    templates = Environment(
        loader=PackageLoader("odoo_dr.engine", "templates"),
        autoescape=autoescape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    templates.filters["md"] = escape_markdown
    return templates


def render_runbook(
    inventory: Inventory, environment_name: str, options: RunbookOptions
) -> str:
    runbook = build_runbook(inventory, environment_name, options)
    html = options.output_format == "html"
    template = _templates(html).get_template(
        "runbook.html.j2" if html else "runbook.md.j2"
    )
    return template.render(runbook=runbook)
