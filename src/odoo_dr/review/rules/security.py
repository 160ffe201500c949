"""Security and governance rules: the database manager, the master password."""

from __future__ import annotations

from collections.abc import Iterator

from odoo_dr.review.context import ReviewContext
from odoo_dr.review.model import Area, Evidence, Outcome, Severity, rule


@rule(
    "SEC-001",
    Area.SECURITY,
    Severity.HIGH,
    "Odoo's database manager is closed (list_db = False)",
    "With list_db on, anyone who reaches Odoo can list, dump, drop or restore "
    "databases "
    "through /web/database if the master password leaks or is weak.",
    "Set list_db = False in odoo.conf and block /web/database at the proxy.",
    snippet="[options]\nlist_db = False",
)
def database_manager_closed(context: ReviewContext) -> Iterator[Outcome]:
    for view in context.environments:
        for conf in view.odoo_confs:
            enabled = conf.flag("list_db")
            # Odoo's default is list_db = True.
            if enabled is None or enabled:
                yield Outcome(
                    False,
                    "list_db is "
                    + ("not set (Odoo's default is True)" if enabled is None else "on"),
                    environment=view.name,
                    resource=conf.location.file,
                    evidence=(Evidence("list_db", conf.at("list_db")),),
                )
            else:
                yield Outcome(
                    True,
                    "list_db = False",
                    environment=view.name,
                    resource=conf.location.file,
                    evidence=(Evidence("list_db = False", conf.at("list_db")),),
                )


@rule(
    "SEC-002",
    Area.SECURITY,
    Severity.HIGH,
    "The master password (admin_passwd) is set and not a default",
    "Without a master password, or with `admin`, anyone reaching the database manager "
    "can drop or restore any database.",
    "Set admin_passwd to a long random value, stored hashed: Odoo writes a "
    "$pbkdf2-sha512$ hash when the password is changed from the database manager.",
)
def master_password_set(context: ReviewContext) -> Iterator[Outcome]:
    for view in context.environments:
        for conf in view.odoo_confs:
            value = conf.options.get("admin_passwd")
            location = conf.at("admin_passwd")
            if value in (None, "", "False"):
                passed, message = False, "admin_passwd is not set"
            elif value.strip() in {"admin", "odoo", "password", "changeme"}:
                passed, message = False, "admin_passwd is a well-known default"
            else:
                passed, message = True, "admin_passwd is set"
            yield Outcome(
                passed,
                message,
                environment=view.name,
                resource=conf.location.file,
                evidence=(Evidence("admin_passwd", location),),
            )


@rule(
    "SEC-003",
    Area.SECURITY,
    Severity.MEDIUM,
    "The master password is stored hashed, not in clear",
    "A master password in clear text in odoo.conf ends up in Git, images and backups, "
    "where anyone who can read them can use it.",
    "Store the $pbkdf2-sha512$ hash Odoo writes (change the password once from the "
    "database manager), and keep odoo.conf out of Git or in a Secret.",
)
def master_password_hashed(context: ReviewContext) -> Iterator[Outcome]:
    for view in context.environments:
        for conf in view.odoo_confs:
            value = conf.options.get("admin_passwd")
            if value in (None, "", "False"):
                continue
            hashed = value.startswith("$pbkdf2")
            yield Outcome(
                hashed,
                "admin_passwd is a pbkdf2 hash"
                if hashed
                else "admin_passwd is in clear",
                environment=view.name,
                resource=conf.location.file,
                evidence=(Evidence("admin_passwd", conf.at("admin_passwd")),),
            )
