"""YAML documents that remember the file and line of every value.

Documents are parsed by libyaml (through PyYAML's C parser, several times faster than
a pure-Python one on large manifest folders) into dicts and lists that keep the line
of each mapping key and sequence item, so findings and inventory errors can point at
`file:line`.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
import yaml.constructor

# The maximum number of values one document may contain once its aliases are
# expanded, because aliases let a few lines stand for billions of values (the
# "billion laughs"). Real manifests and inventories are far smaller.
MAX_VALUES = 1_000_000
# The maximum length of an integer in a document, in characters.
MAX_INT_DIGITS = 4000


@dataclass(frozen=True)
class Location:
    """A place in a file, for evidence and error messages; lines count from 1."""

    file: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


def display_path(file: str, root: Path | None) -> str:
    """Return `file` (absolute, or relative to the working folder) relative to the
    review root when it lies below it, else as an absolute path."""
    if root is None:
        return file
    return _display_path(file, root, os.getcwd())


# Reports name the same files thousands of times, and resolving a path reads the
# file system each time.
@functools.lru_cache(maxsize=4096)
def _display_path(file: str, root: Path, cwd: str) -> str:
    path = Path(file)
    absolute = (path if path.is_absolute() else Path(cwd) / path).resolve()
    try:
        return absolute.relative_to(root.resolve()).as_posix()
    except ValueError:
        return absolute.as_posix()


class YamlError(ValueError):
    def __init__(self, location: Location, message: str) -> None:
        super().__init__(f"{location}: {message}")
        self.location = location
        self.message = message


class LiteralText(str):
    """Text written as a literal block (`key: |`), whose lines are the file's lines
    from the one below the key."""


class LineMap(dict):
    """A mapping that remembers its own line and the line of each key (0-based)."""

    line: int = 0
    key_lines: dict[Any, int]


class LineList(list):
    """A sequence that remembers its own line and the line of each item (0-based)."""

    line: int = 0
    item_lines: list[int]


class _Loader(yaml.CSafeLoader):
    """libyaml's parser with the YAML 1.2 core schema, as Kubernetes tools read it
    (`on`, `yes` and `no` stay text), and values that remember their lines."""


_Loader.yaml_implicit_resolvers = {}
for _tag, _pattern, _first in [
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", "~nN"),
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    (
        "tag:yaml.org,2002:int",
        r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$",
        "-+0123456789",
    ),
    (
        "tag:yaml.org,2002:float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+0123456789.",
    ),
    (
        "tag:yaml.org,2002:timestamp",
        r"^(?:[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}"
        r"(?:(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?"
        r"(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?)?)$",
        "0123456789",
    ),
    ("tag:yaml.org,2002:merge", r"^(?:<<)$", "<"),
]:
    _Loader.add_implicit_resolver(_tag, re.compile(_pattern), list(_first))
# The empty scalar resolves to null too.
_Loader.add_implicit_resolver("tag:yaml.org,2002:null", re.compile(r"^$"), [""])


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> Iterator[LineMap]:
    data = LineMap()
    data.line = node.start_mark.line
    data.key_lines = {}
    yield data
    own = [pair for pair in node.value if pair[0].tag != "tag:yaml.org,2002:merge"]
    loader.flatten_mapping(node)
    merged = node.value[: len(node.value) - len(own)]
    for key_node, value_node in merged:
        key = loader.construct_object(key_node, deep=False)
        data[key] = loader.construct_object(value_node, deep=False)
        data.key_lines.setdefault(key, key_node.start_mark.line)
    seen: set[Any] = set()
    for key_node, value_node in own:
        key = loader.construct_object(key_node, deep=False)
        try:
            duplicate = key in seen
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key is not text or a number", key_node.start_mark
            ) from None
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (line {data.key_lines[key] + 1} has it too)",
                key_node.start_mark,
            )
        seen.add(key)
        data[key] = loader.construct_object(value_node, deep=False)
        data.key_lines[key] = key_node.start_mark.line


def _construct_list(loader: _Loader, node: yaml.SequenceNode) -> Iterator[LineList]:
    data = LineList()
    data.line = node.start_mark.line
    data.item_lines = [item.start_mark.line for item in node.value]
    yield data
    data.extend(loader.construct_object(item, deep=False) for item in node.value)


def _construct_text(loader: _Loader, node: yaml.ScalarNode) -> str:
    value = loader.construct_scalar(node)
    return LiteralText(value) if node.style == "|" else value


def _construct_int(loader: _Loader, node: yaml.ScalarNode) -> int | str:
    value = loader.construct_scalar(node)
    # Python prints at most 4300 decimal digits (sys.get_int_max_str_digits), and
    # messages print the values they reject.
    if len(value) > MAX_INT_DIGITS:
        raise yaml.constructor.ConstructorError(
            None, None, f"an integer of {len(value):,} digits", node.start_mark
        )
    try:
        return int(value, 0) if value[:2] in ("0o", "0x") else int(value, 10)
    except ValueError:
        # YAML 1.1's other integers (`0b101`, sexagesimal `1:30`) stay text, for
        # the field to reject.
        return value


def _construct_timestamp(loader: _Loader, node: yaml.ScalarNode) -> Any:
    # A plain scalar that looks like a date but is none (`2026-13-01`) stays text,
    # so that the field that expects a date can say what is wrong with it.
    try:
        return yaml.constructor.SafeConstructor.construct_yaml_timestamp(loader, node)
    except ValueError:
        return loader.construct_scalar(node)


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_list)
_Loader.add_constructor("tag:yaml.org,2002:str", _construct_text)
_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)


def read_text(path: Path) -> str:
    """Return the UTF-8 text of `path`; raise YamlError saying why it cannot be
    read, with the line of a byte that is not UTF-8."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise YamlError(
            Location(str(path)), f"cannot read: {exc.strerror or exc}"
        ) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise YamlError(
            Location(str(path), line),
            f"cannot read: byte 0x{data[exc.start]:02x} is not UTF-8 text; "
            "save the file as UTF-8",
        ) from None


def _values(node: Any) -> Any:
    return node.values() if isinstance(node, dict) else node


def _check_size(document: Any) -> str | None:
    """Return why `document` cannot be used: an alias inside the value it names,
    or more than MAX_VALUES values once aliases are expanded; else None."""
    if not isinstance(document, dict | list):
        return None
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[Any, bool]] = [(document, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            size = 1 + sum(sizes.get(id(value), 1) for value in _values(node))
            if size > MAX_VALUES:
                return (
                    f"its aliases expand it to more than {MAX_VALUES:,} values; "
                    "write the values out, or use fewer nested aliases"
                )
            sizes[key] = size
            open_nodes.discard(key)
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            return "an alias names a value that contains it; remove the alias"
        open_nodes.add(key)
        stack.append((node, True))
        stack += [
            (value, False)
            for value in _values(node)
            if isinstance(value, (dict, list)) and id(value) not in sizes
        ]
    return None


def _parse_all(text: str, path: Path) -> list[Any]:
    try:
        documents = [
            document
            for document in yaml.load_all(text, Loader=_Loader)
            if document is not None
        ]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise YamlError(Location(str(path), line), f"invalid YAML: {problem}") from None
    except RecursionError:
        raise YamlError(
            Location(str(path)),
            "invalid YAML: values are nested too deeply to read",
        ) from None
    for document in documents:
        problem = _check_size(document)
        if problem is not None:
            raise YamlError(
                Location(str(path), line_of(document)), f"invalid YAML: {problem}"
            )
    return documents


def load_documents(path: Path) -> list[Any]:
    """Return every document of a (multi-document) YAML file, with positions.

    Raise YamlError when the file cannot be read or any document is invalid."""
    return _parse_all(read_text(path), path)


# A line that starts a document (`---`, maybe followed by content), and one that
# ends it (`...`).
_DOCUMENT_START = re.compile(r"^---(\s|$)")
_DOCUMENT_END = re.compile(r"^\.\.\.(\s|$)")


def load_valid_documents(path: Path) -> tuple[list[Any], list[YamlError]]:
    """Return the valid documents of a YAML file, and an error for each invalid one.

    A file that fails to parse as a whole is split at its `---` and `...` lines,
    and each part is parsed on its own, padded with empty lines so that positions
    stay those of the file. Raise YamlError only when the file cannot be read.
    """
    text = read_text(path)
    try:
        return _parse_all(text, path), []
    except YamlError:
        pass
    lines = text.splitlines(keepends=True)
    starts = {0}
    for number, line in enumerate(lines):
        if _DOCUMENT_START.match(line):
            starts.add(number)
        elif _DOCUMENT_END.match(line):
            starts.add(number + 1)
    starts = sorted(number for number in starts if number < len(lines))
    documents: list[Any] = []
    errors: list[YamlError] = []
    for start, end in zip(starts, [*starts[1:], len(lines)], strict=True):
        if not "".join(lines[start:end]).strip():
            continue
        part = "\n" * start + "".join(lines[start:end])
        try:
            documents += _parse_all(part, path)
        except YamlError as exc:
            skipped = f"the document on lines {start + 1}-{end} is skipped"
            errors.append(YamlError(exc.location, f"{exc.message}; {skipped}"))
    return documents, errors


def line_of(node: Any, key: str | int | None = None) -> int | None:
    """Return the 1-based line of `node`, or of its `key` (a mapping key or index)."""
    try:
        if key is None:
            return node.line + 1
        if isinstance(node, LineMap):
            return node.key_lines[key] + 1
        if isinstance(node, LineList):
            return node.item_lines[key] + 1
    except (AttributeError, KeyError, IndexError, TypeError):
        return None
    return None


def line_at(root: Any, path: tuple[str | int, ...]) -> int | None:
    """Return the line of the value at `path` below `root`, or of its nearest parent."""
    node = root
    best = line_of(root)
    for part in path:
        try:
            line = line_of(node, part)
            node = node[part]
        except (KeyError, IndexError, TypeError):
            break
        if line is not None:
            best = line
    return best


def walk_files(root: Path, suffixes: tuple[str, ...]) -> Iterator[Path]:
    """Yield files below `root` (or `root` itself) with one of `suffixes`, sorted."""
    if root.is_file():
        yield root
        return
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix.lower() in suffixes:
            yield path
