"""`odoo-dr k8s render`: a Kustomize base of CronJobs that run odoo-dr on a
Kubernetes cluster."""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from odoo_dr import __version__
from odoo_dr.cli.output import errors
from odoo_dr.cli.platform import InventoryOption, read_inventory
from odoo_dr.engine import k8s as engine
from odoo_dr.errors import RejectedError
from odoo_dr.tempfiles import replace_text

k8s_app = typer.Typer(
    help="Kubernetes manifests that run odoo-dr on a cluster.",
    no_args_is_help=True,
)


class Mode(StrEnum):
    RUN = "run"
    TASKS = "tasks"


def _postgres_target(
    cidrs: list[str], namespace: str | None, selectors: list[str], port: int
) -> engine.PostgresTarget | None:
    if not cidrs and namespace is None:
        if selectors:
            raise RejectedError(
                "--postgres-pod-selector needs --postgres-namespace",
                hint="give the namespace of the PostgreSQL pods",
            )
        return None
    for cidr in cidrs:
        _check_cidr(cidr, "--postgres-cidr")
    labels = {}
    for selector in selectors:
        key, sep, value = selector.partition("=")
        if not sep or not key:
            raise RejectedError(
                f"invalid --postgres-pod-selector {selector!r}",
                hint="write a label as KEY=VALUE, such as cnpg.io/cluster=odoo-pg",
            )
        labels[key] = value
    return engine.PostgresTarget(
        port=port, cidrs=tuple(cidrs), namespace=namespace, pod_labels=labels
    )


def _check_cidr(value: str, option: str) -> None:
    try:
        ipaddress.ip_network(value)
    except ValueError:
        raise RejectedError(
            f"invalid {option} {value!r}",
            hint="write an address range such as 10.20.0.0/16",
        ) from None


def _write_files(files: dict[str, str], out: Path) -> None:
    """Write each file under a temporary name renamed into place."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            replace_text(out / name, text)
    except OSError as exc:
        raise RejectedError(
            f"failed to write into {out}: {exc.strerror}",
            hint="give a writable folder to --out",
        ) from None


def render(
    inventory: InventoryOption = None,
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Folder to write the Kustomize base into."),
    ] = Path("odoo-dr-k8s"),
    namespace: Annotated[
        str, typer.Option("--namespace", help="Namespace of every object.")
    ] = "odoo-dr",
    image: Annotated[
        str | None,
        typer.Option(
            "--image",
            help=f"Container image of odoo-dr. Default: odoo-dr:{__version__}.",
            show_default=False,
        ),
    ] = None,
    mode: Annotated[
        Mode,
        typer.Option(
            "--mode",
            help="run: one CronJob per environment running `odoo-dr run`. tasks: "
            "CronJobs per environment, tier and task.",
        ),
    ] = Mode.RUN,
    shards: Annotated[
        int,
        typer.Option(
            "--shards",
            min=1,
            max=100,
            help="Pods that share the tenants of a tier's backup and drill Jobs "
            "(--mode tasks only).",
        ),
    ] = 1,
    jobs: Annotated[
        int,
        typer.Option("--jobs", "-j", min=1, max=64, help="Tenants per pod at once."),
    ] = 2,
    run_every: Annotated[
        int | None,
        typer.Option(
            "--run-every",
            min=1,
            max=60,
            help="Minutes between passes of `odoo-dr run` (rounded down to a "
            "divisor of 60). Default: a quarter of the environment's shortest "
            "backup interval, between 5 and 60.",
            show_default=False,
        ),
    ] = None,
    postgres_cidr: Annotated[
        list[str] | None,
        typer.Option(
            "--postgres-cidr",
            help="Address range of PostgreSQL the pods may reach (repeatable). "
            "Default: read from each environment's evidence.postgres_dsn.",
            show_default=False,
        ),
    ] = None,
    postgres_namespace: Annotated[
        str | None,
        typer.Option(
            "--postgres-namespace",
            help="Namespace of the PostgreSQL pods the pods may reach.",
            show_default=False,
        ),
    ] = None,
    postgres_pod_selector: Annotated[
        list[str] | None,
        typer.Option(
            "--postgres-pod-selector",
            help="Label KEY=VALUE of the PostgreSQL pods in --postgres-namespace "
            "(repeatable).",
            show_default=False,
        ),
    ] = None,
    postgres_port: Annotated[
        int,
        typer.Option("--postgres-port", min=1, max=65535, help="PostgreSQL's port."),
    ] = 5432,
    object_store_cidr: Annotated[
        list[str] | None,
        typer.Option(
            "--object-store-cidr",
            help="Address range of the object store (repeatable). Default: any "
            "address outside the private ranges 10/8, 172.16/12 and 192.168/16.",
            show_default=False,
        ),
    ] = None,
    object_store_port: Annotated[
        int,
        typer.Option(
            "--object-store-port", min=1, max=65535, help="Port of the object store."
        ),
    ] = 443,
    filestore_claim: Annotated[
        str | None,
        typer.Option(
            "--filestore-claim",
            help="PersistentVolumeClaim of the Odoo filestore. Default: "
            "ENVIRONMENT-filestore.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Write a Kustomize base of CronJobs that run odoo-dr on a Kubernetes cluster,
    with the inventory as a ConfigMap and a NetworkPolicy per environment."""
    for cidr in object_store_cidr or []:
        _check_cidr(cidr, "--object-store-cidr")
    target = _postgres_target(
        postgres_cidr or [],
        postgres_namespace,
        postgres_pod_selector or [],
        postgres_port,
    )
    if engine.dns_label(namespace) != namespace:
        raise RejectedError(
            f"invalid --namespace {namespace!r}",
            hint="a namespace is lower-case letters, digits and '-'",
        )
    loaded, _folder = read_inventory(inventory)
    options = engine.RenderOptions(
        namespace=namespace,
        image=image or f"odoo-dr:{__version__}",
        mode=mode.value,
        shards=shards,
        jobs=jobs,
        run_every=run_every,
        postgres=target,
        object_store_cidrs=tuple(object_store_cidr or ()),
        object_store_port=object_store_port,
        filestore_claim=filestore_claim,
    )
    rendered = engine.render(loaded, options)
    _write_files(rendered.files, out)
    for warning in rendered.warnings:
        errors.print(f"warning: {warning}")
    errors.print(f"wrote {len(rendered.files)} files into {out}")


k8s_app.command("render")(render)
