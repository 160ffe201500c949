"""Validation and quoting of database names.

Odoo databases in the field carry spaces, capitals, dots and non-ASCII letters. Such
names reach PostgreSQL only as quoted identifiers or libpq keywords, and the client
binaries only as list arguments, never through a shell.
"""

from __future__ import annotations

from odoo_dr.errors import RejectedError

# PostgreSQL truncates identifiers longer than NAMEDATALEN - 1 bytes (63 by default),
# so a longer name would silently become another database.
MAX_NAME_BYTES = 63


def validate_database_name(name: str, what: str = "database name") -> str:
    """Return `name` when PostgreSQL and the filestore can both hold it unchanged."""
    problem = None
    if not name:
        problem = "it is empty"
    elif len(name.encode("utf-8")) > MAX_NAME_BYTES:
        problem = (
            f"it is {len(name.encode('utf-8'))} bytes long and PostgreSQL keeps only "
            f"{MAX_NAME_BYTES}"
        )
    elif "\x00" in name or "/" in name or "\\" in name:
        problem = "it contains a slash, a backslash or a NUL character"
    elif name in {".", ".."} or name.startswith("."):
        problem = "it starts with a dot, so its filestore folder would be hidden"
    elif name != name.strip():
        problem = "it starts or ends with white space"
    elif any(ord(char) < 32 for char in name):
        problem = "it contains a control character"
    if problem:
        raise RejectedError(
            f"invalid {what} {name!r}: {problem}",
            hint="choose a name of at most 63 bytes without slashes or control "
            "characters",
        )
    return name
