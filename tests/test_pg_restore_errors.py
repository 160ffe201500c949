"""The judgement of pg_restore's error output, on output captured from pg_restore 15."""

from __future__ import annotations

from odoo_dr.pg.restore import parse_errors

# pg_restore 15 restoring, as a role that is not a superuser, a dump whose database had
# the untrusted extension dblink.
DBLINK_OUTPUT = """\
pg_restore: error: could not execute query: ERROR:  permission denied to create \
extension "dblink"
HINT:  Must be superuser to create this extension.
Command was: CREATE EXTENSION IF NOT EXISTS dblink WITH SCHEMA public;


pg_restore: error: could not execute query: ERROR:  extension "dblink" does not exist
Command was: COMMENT ON EXTENSION dblink IS 'connect to other PostgreSQL databases';


pg_restore: warning: errors ignored on restore: 2
"""

# The same shape for the errors a dump of PostgreSQL 14 or older meets on a server
# where the restoring role owns neither plpgsql nor schema public.
HARMLESS_OUTPUT = """\
pg_restore: error: could not execute query: ERROR:  must be owner of extension plpgsql
Command was: COMMENT ON EXTENSION plpgsql IS 'PL/pgSQL procedural language';


pg_restore: error: could not execute query: ERROR:  must be owner of schema public
Command was: COMMENT ON SCHEMA public IS 'standard public schema';


pg_restore: warning: errors ignored on restore: 2
"""


def test_parse_reads_message_hint_command():
    errors = parse_errors(DBLINK_OUTPUT)
    assert len(errors) == 2
    first = errors[0]
    assert first.message == 'permission denied to create extension "dblink"'
    assert first.hint == "HINT:  Must be superuser to create this extension."
    assert first.command == "CREATE EXTENSION IF NOT EXISTS dblink WITH SCHEMA public;"


def test_extension_permission_not_harmless():
    errors = parse_errors(DBLINK_OUTPUT)
    assert errors[0].harmless_reason() is None
    assert errors[1].harmless_reason() is None


def test_comments_on_unowned_objects_harmless():
    errors = parse_errors(HARMLESS_OUTPUT)
    assert len(errors) == 2
    assert all(error.harmless_reason() for error in errors)


def test_same_message_other_statement_not_harmless():
    output = HARMLESS_OUTPUT.replace(
        "COMMENT ON EXTENSION plpgsql IS", "ALTER EXTENSION plpgsql UPDATE; --"
    )
    assert parse_errors(output)[0].harmless_reason() is None


def test_other_errors_reported():
    errors = parse_errors('pg_restore: error: could not open input file "x": missing\n')
    assert [error.message for error in errors] == [
        'could not open input file "x": missing'
    ]
    assert errors[0].harmless_reason() is None
