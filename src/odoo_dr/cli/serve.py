"""`odoo-dr serve`: the status of backups, drills and objectives over HTTP."""

from __future__ import annotations

import ipaddress
import logging
import os
from pathlib import Path
from typing import Annotated

import typer

from odoo_dr.cli.options import QuietOption, VerboseOption, apply_verbosity
from odoo_dr.cli.output import errors
from odoo_dr.errors import RejectedError
from odoo_dr.repository.store import resolve_location
from odoo_dr.review.inventory import InventoryError, load_inventory
from odoo_dr.status.collect import (
    DEFAULT_REFRESH_EVERY,
    DEFAULT_REVIEW_EVERY,
    StatusCollector,
)

log = logging.getLogger(__name__)

TOKEN_VARIABLE = "ODOO_DR_SERVE_TOKEN"
DEFAULT_BIND = "127.0.0.1:8080"
# Upper bounds of --refresh and --review-every: one day and one week. An
# unbounded value such as `inf` overflowed the collector thread's wait and
# stopped its refreshes while the server went on serving the first status.
MAX_REFRESH_EVERY = 86400.0
MAX_REVIEW_EVERY = 604800.0
# A shorter token can be guessed over the network; `openssl rand -hex 32` gives 64.
MIN_TOKEN_LENGTH = 16


def parse_bind(value: str) -> tuple[str, int]:
    """Split `HOST:PORT` (IPv6 as `[ADDRESS]:PORT`) into host and port."""
    host, separator, port_text = value.rpartition(":")
    if not separator or not host:
        raise RejectedError(
            f"invalid --bind {value!r}: expected HOST:PORT",
            hint="give an address and port such as 127.0.0.1:8080 or [::1]:8080",
        )
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not 0 < port < 65536:
        raise RejectedError(
            f"invalid --bind {value!r}: port {port_text!r} is not a number from 1 "
            "to 65535",
            hint="give an address and port such as 127.0.0.1:8080",
        )
    return host, port


def is_loopback(host: str) -> bool:
    """Return whether `host` is a loopback address (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _warn_if_others_read(token_file: Path) -> None:
    """Log a warning when users other than the owner may read the token file.

    A warning, not an error: a Kubernetes Secret volume is 0644 unless its
    defaultMode sets another, and only the pod reads it.
    """
    mode = token_file.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning(
            "--token-file %s may be read by other users (mode %s): run chmod 600 on it",
            token_file,
            oct(mode),
        )


def read_token(token_file: Path | None) -> str | None:
    """Return the token from --token-file, else $ODOO_DR_SERVE_TOKEN, or None."""
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise RejectedError(
                f"cannot read --token-file {token_file}: {reason}",
                hint="give a readable file that contains the token on one line",
            ) from None
        source = f"--token-file {token_file}"
        _warn_if_others_read(token_file)
    else:
        token = os.environ.get(TOKEN_VARIABLE, "").strip()
        source = f"${TOKEN_VARIABLE}"
        if not token:
            return None
    if len(token) < MIN_TOKEN_LENGTH or any(char.isspace() for char in token):
        raise RejectedError(
            f"invalid token in {source}: it must be at least {MIN_TOKEN_LENGTH} "
            "characters without spaces",
            hint="make one with: openssl rand -hex 32",
        )
    return token


def serve(
    bind: Annotated[
        str,
        typer.Option(
            "--bind",
            help="Address and port to listen on, HOST:PORT ([ADDRESS]:PORT for "
            "IPv6). Any address but loopback requires a token.",
        ),
    ] = DEFAULT_BIND,
    inventory: Annotated[
        Path | None,
        typer.Option(
            "--inventory",
            exists=True,
            dir_okay=False,
            help="Inventory file: environments, tenants, tiers, objectives and "
            "repositories.",
            show_default=False,
        ),
    ] = None,
    repositories: Annotated[
        list[str] | None,
        typer.Option(
            "--repository",
            metavar="LOCATION",
            help="Repository folder or s3://bucket/prefix; repeat for several. "
            "Environments without their own evidence.repository use the first. "
            "Default without --inventory: $ODOO_DR_REPO, else ./odoo-dr-repo.",
            show_default=False,
        ),
    ] = None,
    refresh: Annotated[
        float,
        typer.Option(
            "--refresh",
            min=1,
            max=MAX_REFRESH_EVERY,
            help="Seconds between reads of the repositories, at most 86400.",
        ),
    ] = DEFAULT_REFRESH_EVERY,
    review_every: Annotated[
        float,
        typer.Option(
            "--review-every",
            min=1,
            max=MAX_REVIEW_EVERY,
            help="Minimum seconds between two reviews of the inventory for the "
            "scorecard, at most 604800.",
        ),
    ] = DEFAULT_REVIEW_EVERY,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            help=f"File containing the bearer token that requests must carry. "
            f"Default: ${TOKEN_VARIABLE}.",
            show_default=False,
        ),
    ] = None,
    verbose: VerboseOption = False,
    quiet: QuietOption = False,
) -> None:
    """Serve Prometheus metrics and a read-only JSON API of the fleet's status."""
    apply_verbosity(verbose, quiet)
    host, port = parse_bind(bind)
    token = read_token(token_file)
    if token is None and not is_loopback(host):
        raise RejectedError(
            f"--bind {bind} requires a token: an address other than loopback is "
            "reachable from other hosts",
            hint=f"set ${TOKEN_VARIABLE} or give --token-file, or bind to 127.0.0.1",
        )
    locations = list(repositories or [])
    if inventory is None and not locations:
        locations = [resolve_location(None)]
    if inventory is not None:
        try:
            load_inventory(inventory)
        except InventoryError as exc:
            for problem in exc.problems:
                errors.print(f"odoo-dr: {problem}")
            raise RejectedError(
                f"invalid inventory {inventory}",
                hint="fix the problems listed above; check with: odoo-dr review "
                f"{inventory}",
            ) from None

    import uvicorn

    from odoo_dr.serve.app import create_app

    collector = StatusCollector(
        inventory_path=inventory,
        repositories=locations,
        refresh_every=refresh,
        review_every=review_every,
    )
    collector.start()
    app = create_app(collector, token=token)
    odoo_dr_logger = logging.getLogger("odoo_dr")
    server_logger = logging.getLogger("uvicorn")
    server_logger.handlers[:] = odoo_dr_logger.handlers
    server_logger.setLevel(odoo_dr_logger.level)
    server_logger.propagate = False
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        server_header=False,
    )
    log.info("serving on %s (%s)", bind, "token required" if token else "no token")
    try:
        uvicorn.Server(config).run()
    except KeyboardInterrupt:
        # uvicorn stops on SIGINT or SIGTERM and then raises the signal again,
        # which odoo-dr's handler turns into KeyboardInterrupt.
        pass
    finally:
        collector.stop()
    log.info("stopped serving on %s", bind)
