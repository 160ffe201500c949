"""The text check of a business check's SQL: one SELECT that reads only.

It is the first of three guards (see `engine.business_checks`) and errs on the side
of rejecting: it cannot see what a function called by the query does, which the
READ ONLY transaction the query runs in takes care of.
"""

from __future__ import annotations

import re

# String constants, quoted identifiers and comments, in the order PostgreSQL's
# lexer tries them. Dollar quotes end at the same tag; E'' strings escape with `\`.
_LEXEMES = re.compile(
    r"""
    (?P<comment>--[^\n]*)
  | (?P<block>/\*)
  | (?P<dollar>\$(?P<tag>[A-Za-z_][A-Za-z0-9_]*)?\$)
  | (?P<escaped>[Ee]'(?:[^'\\]|\\.|'')*')
  | (?P<string>'(?:[^']|'')*')
  | (?P<identifier>"(?:[^"]|"")*")
    """,
    re.VERBOSE | re.DOTALL,
)

# Words that write, lock or leave the statement, wherever they stand. A column or
# alias with one of these names has to be renamed for the check to load.
_WRITING_WORDS = (
    "insert",
    "update",
    "delete",
    "merge",
    "truncate",
    "into",
    "copy",
    "create",
    "alter",
    "drop",
    "grant",
    "revoke",
    "lock",
    "call",
    "execute",
    "notify",
    "listen",
    "vacuum",
    "refresh",
    "reindex",
    "cluster",
    "commit",
    "rollback",
    "savepoint",
)
# Functions that act outside the transaction or on the server, which a READ ONLY
# transaction does not stop (dblink opens a connection of its own, for instance).
_SIDE_EFFECT_FUNCTIONS = re.compile(
    r"\b(nextval|setval|set_config|dblink\w*|lo_\w+|pg_notify|pg_sleep\w*"
    r"|pg_terminate_backend|pg_cancel_backend|pg_reload_conf|pg_rotate_logfile"
    r"|pg_switch_wal|pg_create_restore_point|pg_promote|pg_\w*advisory\w*"
    r"|pg_file_\w+|pg_stat_reset\w*|pg_\w*replication_slot\w*|pg_logical_emit_message"
    r"|pg_replication_origin\w*|pg_import_system_collations"
    r"|pg_backup_start|pg_backup_stop|pg_start_backup|pg_stop_backup"
    r"|pg_read_file|pg_read_binary_file|pg_ls_\w+|pg_stat_file"
    r"|pg_log_backend_memory_contexts|pg_wal_replay_\w+)\s*\(",
    re.IGNORECASE,
)
# Functions that run SQL given to them as a string, which the text check sees only
# as a blanked literal: query_to_xml('SELECT pg_terminate_backend(...)', ...).
_SQL_TEXT_FUNCTIONS = re.compile(
    r"\b(query_to_xml\w*|cursor_to_xml\w*|ts_stat)\s*\(", re.IGNORECASE
)
_WRITING = re.compile(rf"\b({'|'.join(_WRITING_WORDS)})\b", re.IGNORECASE)
_ROW_LOCK = re.compile(r"\bfor\s+(no\s+key\s+|key\s+)?share\b", re.IGNORECASE)


def _mask_literals(text: str) -> str:
    """Return `text` with strings and comments blanked and identifiers unquoted."""
    out = []
    position = 0
    while True:
        match = _LEXEMES.search(text, position)
        if match is None:
            out.append(text[position:])
            return "".join(out)
        out.append(text[position : match.start()])
        kind = match.lastgroup if match.lastgroup != "tag" else "dollar"
        if kind == "identifier":
            out.append(" " + match.group()[1:-1].replace('""', '"') + " ")
            position = match.end()
        elif kind == "block":
            position = _end_of_block_comment(text, match.end())
            out.append(" ")
        elif kind == "dollar":
            end = text.find(match.group(), match.end())
            if end < 0:
                raise ValueError("a dollar-quoted string is not closed")
            position = end + len(match.group())
            out.append(" '' ")
        else:
            out.append(" '' " if kind != "comment" else " ")
            position = match.end()


def _end_of_block_comment(text: str, position: int) -> int:
    # PostgreSQL's block comments nest.
    depth = 1
    while depth:
        opening = text.find("/*", position)
        closing = text.find("*/", position)
        if closing < 0:
            raise ValueError("a /* comment is not closed")
        if 0 <= opening < closing:
            depth += 1
            position = opening + 2
        else:
            depth -= 1
            position = closing + 2
    return position


def validate_select(text: str) -> str:
    """Return `text` without a final `;` if it is one SELECT or WITH statement that
    reads only; raise ValueError saying why not.

    The check is conservative: it rejects some harmless queries (a column named
    `update`, say) so that no writing one passes.
    """
    stripped = text.strip()
    masked = _mask_literals(stripped).strip()
    if masked.endswith(";"):
        masked = masked[:-1].rstrip()
        stripped = stripped[: stripped.rstrip().rfind(";")].rstrip()
    if not masked:
        raise ValueError("the query is empty")
    if ";" in masked:
        raise ValueError("write a single statement: the query contains a ';'")
    first = masked.split(None, 1)[0].lower()
    if first not in ("select", "with"):
        raise ValueError(
            f"the query starts with {first.upper()!r}: a check is one SELECT, or "
            "WITH ... SELECT"
        )
    word = _WRITING.search(masked) or _ROW_LOCK.search(masked)
    if word is not None:
        raise ValueError(
            f"the query contains {word.group().upper()!r}: a check only reads, "
            "without writing or locking rows (rename a column or alias of that name)"
        )
    runner = _SQL_TEXT_FUNCTIONS.search(masked)
    if runner is not None:
        raise ValueError(
            f"the query calls {runner.group(1)}(), which runs SQL given as a "
            "string that this check cannot read"
        )
    function = _SIDE_EFFECT_FUNCTIONS.search(masked)
    if function is not None:
        raise ValueError(
            f"the query calls {function.group(1)}(), which acts outside the "
            "transaction or on the server"
        )
    return stripped
