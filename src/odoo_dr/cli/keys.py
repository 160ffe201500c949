"""`odoo-dr key change` and `odoo-dr key add`: the secrets of an encrypted repository.

The current secret comes from $ODOO_DR_KEY_FILE or $ODOO_DR_PASSPHRASE, the new one
from $ODOO_DR_NEW_KEY_FILE or $ODOO_DR_NEW_PASSPHRASE; on a terminal, odoo-dr
prompts for whichever is not set.
"""

from __future__ import annotations

import typer

from odoo_dr.cli import options as opt
from odoo_dr.cli.output import console
from odoo_dr.errors import RejectedError
from odoo_dr.repository import crypto
from odoo_dr.repository.store import Repository, resolve_location

key_app = typer.Typer(
    help="Change or add the secrets that unlock an encrypted repository.",
    no_args_is_help=True,
)


def _open(repo: str | None) -> tuple[Repository, bytes]:
    location = resolve_location(repo)
    secret = crypto.secret_from_environment(prompt="Current passphrase: ")
    if secret is None:
        # A repository that is not encrypted opens without a key, and that is the
        # error to report then.
        repository = Repository.open(location)
        if not repository.encrypted:
            raise _not_encrypted(repository)
        raise RejectedError(
            f"no key given for repository {location}",
            hint=f"set ${crypto.KEY_FILE_VARIABLE} to the current key file or "
            f"${crypto.PASSPHRASE_VARIABLE} to the current passphrase, or run the "
            "command in a terminal to be prompted",
        )
    repository = Repository.open(location, secret=secret)
    if not repository.encrypted:
        raise _not_encrypted(repository)
    return repository, secret


def _not_encrypted(repository: Repository) -> RejectedError:
    return RejectedError(
        f"repository {repository.location} is not encrypted, so it has no keys",
        hint="create an encrypted repository with 'odoo-dr init --encrypt'",
    )


def _new_secret(repository: Repository, current: bytes) -> bytes:
    new = crypto.secret_from_environment(
        new=True, confirm=True, prompt="New passphrase: "
    )
    if new is None:
        raise crypto.missing_secret(repository.location, new=True)
    if new == current:
        raise RejectedError(
            "the new key is the same as the current one",
            hint="give a different key in $ODOO_DR_NEW_KEY_FILE or "
            "$ODOO_DR_NEW_PASSPHRASE",
        )
    return new


@key_app.command("change")
def change(
    repo: opt.RepoOption = None,
    verbose: opt.VerboseOption = False,
    quiet: opt.QuietOption = False,
) -> None:
    """Replace the current key by a new one; the current key stops working.

    The data is not encrypted again: the new key wraps the same master key.
    """
    opt.apply_verbosity(verbose, quiet)
    repository, current = _open(repo)
    new = _new_secret(repository, current)
    slot = repository.change_key(current, new)
    console.out(
        f"changed the key of repository {repository.location} (key slot {slot.id})"
    )


@key_app.command("add")
def add(
    repo: opt.RepoOption = None,
    verbose: opt.VerboseOption = False,
    quiet: opt.QuietOption = False,
) -> None:
    """Add a second key; both the current and the new key unlock the repository."""
    opt.apply_verbosity(verbose, quiet)
    repository, current = _open(repo)
    new = _new_secret(repository, current)
    slot = repository.add_key(new)
    console.out(
        f"added key slot {slot.id} to repository {repository.location} "
        f"({len(repository.config.key_slots)} key slots)"
    )
