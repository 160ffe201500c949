"""Connection settings from odoo.conf, --dsn and libpq, with the password kept apart."""

from __future__ import annotations

from pathlib import Path

import pytest

from odoo_dr.cli.options import filestore_root, restore_filestore_root
from odoo_dr.errors import RejectedError
from odoo_dr.odoo.config import read_odoo_config
from odoo_dr.pg.connection import PgSettings

ODOO_CONF = """\
[options]
addons_path = /opt/odoo/addons
admin_passwd = admin-secret
db_host = 127.0.0.1
db_port = 5432
db_user = postgres
db_password = s3cr3t-pass
data_dir = {data_dir}
list_db = False
"""


def write_conf(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "odoo.conf"
    path.write_text(text)
    return path


def test_read_options(tmp_path):
    config = read_odoo_config(
        write_conf(tmp_path, ODOO_CONF.format(data_dir="/var/lib/odoo"))
    )
    assert config.db_host == "127.0.0.1"
    assert config.db_port == 5432
    assert config.db_user == "postgres"
    assert config.db_password == "s3cr3t-pass"
    assert config.data_dir == Path("/var/lib/odoo")
    assert "s3cr3t-pass" not in repr(config)


def test_false_means_unset(tmp_path):
    text = "[options]\ndb_host = False\ndb_port = False\ndb_password = False\n"
    config = read_odoo_config(write_conf(tmp_path, text))
    assert config.db_host is None
    assert config.db_port is None
    assert config.db_password is None
    assert config.data_dir is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("db_host = x\n", "invalid Odoo configuration file"),
        ("[server]\ndb_host = x\n", "no [options] section"),
        ("[options]\ndb_port = five\n", "invalid db_port 'five'"),
    ],
)
def test_invalid_config_rejected(tmp_path, text, message):
    with pytest.raises(RejectedError, match=message.replace("[", r"\[")):
        read_odoo_config(write_conf(tmp_path, text))


def test_missing_config_rejected(tmp_path):
    with pytest.raises(RejectedError, match="not found"):
        read_odoo_config(tmp_path / "absent.conf")


def test_password_kept_out_of_conninfo():
    settings = PgSettings.from_options(
        dsn="postgresql://odoo:pw-in-uri@db.internal:6432/x"
    )
    assert settings.password == "pw-in-uri"
    assert "pw-in-uri" not in settings.conninfo("Acme-Prod 2024")
    assert "pw-in-uri" not in settings.describe()
    assert "pw-in-uri" not in repr(settings)
    assert settings.subprocess_env()["PGPASSWORD"] == "pw-in-uri"
    assert "dbname='Acme-Prod 2024'" in settings.conninfo("Acme-Prod 2024")


def test_invalid_dsn_message_hides_password():
    with pytest.raises(RejectedError) as raised:
        PgSettings.from_options(dsn="host=x password=hunter2 'unterminated")
    assert "hunter2" not in str(raised.value)


@pytest.mark.parametrize("data_dir", ["odoo-data", "$HOME/odoo-data", "../data"])
def test_relative_data_dir_rejected(tmp_path, data_dir):
    config = read_odoo_config(
        write_conf(tmp_path, f"[options]\ndata_dir = {data_dir}\n")
    )
    for resolve in (filestore_root, restore_filestore_root):
        with pytest.raises(RejectedError) as raised:
            resolve(None, config)
        assert f"data_dir {data_dir!r}" in raised.value.message
        assert "not an absolute path" in raised.value.message
        assert "--filestore-root" in raised.value.hint


def test_dsn_overrides_odoo_config(tmp_path):
    config = read_odoo_config(write_conf(tmp_path, ODOO_CONF.format(data_dir=tmp_path)))
    settings = PgSettings.from_options(dsn="port=6543", odoo_config=config)
    assert settings.params["port"] == "6543"
    assert settings.params["host"] == "127.0.0.1"
    assert settings.password == "s3cr3t-pass"


def test_backup_with_odoo_config(
    cli, repository, odoo_database, filestore_root, tmp_path
):
    summary = odoo_database()
    data_dir = filestore_root.parent
    conf = write_conf(tmp_path, ODOO_CONF.format(data_dir=data_dir))
    result = cli(
        "backup", summary.database, "--odoo-config", str(conf),
        "--repo", repository.location,
        env={"PGHOST": "/nonexistent", "PGUSER": "nobody"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    manifest = repository.find_snapshot(result.stdout.strip())
    assert manifest.filestore.referenced_files == summary.files
    assert "s3cr3t-pass" not in result.stderr + result.stdout


def test_wrong_password_error_hides_it(cli, repository, tmp_path):
    conf = write_conf(
        tmp_path,
        "[options]\ndb_host = 127.0.0.1\ndb_port = 1\ndb_password = do-not-print-me\n",
    )
    result = cli(
        "backup", "x", "--odoo-config", str(conf), "--repo", repository.location
    )
    assert result.returncode == 2
    assert "cannot connect to PostgreSQL at postgres@127.0.0.1:1" in result.stderr
    assert "do-not-print-me" not in result.stderr
