"""Read the settings odoo-dr needs from an Odoo configuration file (`odoo.conf`)."""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass, field
from pathlib import Path

from odoo_dr.errors import RejectedError

# Odoo writes unset options as the literal `False` (and sometimes `None`).
_UNSET = {"", "false", "none"}


@dataclass(frozen=True)
class OdooConfig:
    """The connection and storage options of one `odoo.conf` file."""

    path: Path
    db_host: str | None = None
    db_port: int | None = None
    db_user: str | None = None
    db_password: str | None = field(default=None, repr=False)
    db_sslmode: str | None = None
    data_dir: Path | None = None


def default_data_dir() -> Path:
    """Return Odoo's default data_dir, `~/.local/share/Odoo` on Linux."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return Path(base) / "Odoo"


def _option(parser: configparser.ConfigParser, name: str) -> str | None:
    value = parser.get("options", name, fallback=None)
    if value is None or value.strip().lower() in _UNSET:
        return None
    return value.strip()


def read_odoo_config(path: Path) -> OdooConfig:
    """Parse `path` and return its connection and storage options."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except FileNotFoundError:
        raise RejectedError(
            f"Odoo configuration file not found: {path}",
            hint="pass the path of the odoo.conf that the Odoo server runs with",
        ) from None
    except OSError as exc:
        raise RejectedError(
            f"cannot read Odoo configuration file {path}: {exc.strerror or exc}",
            hint="pass the path of the odoo.conf file that the Odoo server runs "
            "with, readable by the user running odoo-dr",
        ) from None
    except (configparser.Error, UnicodeDecodeError) as exc:
        first_line = str(exc).splitlines()[0]
        raise RejectedError(
            f"invalid Odoo configuration file {path}: {first_line}",
            hint="Odoo configuration files are INI files with an [options] section",
        ) from None
    if not parser.has_section("options"):
        raise RejectedError(
            f"invalid Odoo configuration file {path}: no [options] section",
            hint="Odoo reads its settings from the [options] section",
        )

    port_text = _option(parser, "db_port")
    port: int | None = None
    if port_text is not None:
        try:
            port = int(port_text)
        except ValueError:
            port = None
        if port is None or not 0 < port < 65536:
            raise RejectedError(
                f"invalid db_port {port_text!r} in {path}",
                hint="db_port must be a port number from 1 to 65535, such as 5432",
            )

    data_dir = _option(parser, "data_dir")
    return OdooConfig(
        path=path,
        db_host=_option(parser, "db_host"),
        db_port=port,
        db_user=_option(parser, "db_user"),
        db_password=_option(parser, "db_password"),
        db_sslmode=_option(parser, "db_sslmode"),
        data_dir=Path(os.path.expanduser(data_dir)) if data_dir else None,
    )
