"""YAML documents that remember the file and line of every value.

ruamel.yaml's round-trip loader keeps the position of each mapping key and sequence
item, so findings and inventory errors can point at `file:line`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError


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
    path = Path(file)
    if root is None:
        return file
    absolute = (path if path.is_absolute() else Path.cwd() / path).resolve()
    try:
        return absolute.relative_to(root.resolve()).as_posix()
    except ValueError:
        return absolute.as_posix()


class YamlError(ValueError):
    def __init__(self, location: Location, message: str) -> None:
        super().__init__(f"{location}: {message}")
        self.location = location
        self.message = message


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    return yaml


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise YamlError(Location(str(path)), f"cannot read: {exc}") from None


def _parse_all(text: str, path: Path) -> list[Any]:
    try:
        return [document for document in _yaml().load_all(text) if document is not None]
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise YamlError(Location(str(path), line), f"invalid YAML: {problem}") from None


def load_documents(path: Path) -> list[Any]:
    """Return every document of a (multi-document) YAML file, with positions.

    Raise YamlError when the file cannot be read or any document is invalid."""
    return _parse_all(_read(path), path)


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
    text = _read(path)
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
            return node.lc.line + 1
        if isinstance(node, CommentedMap):
            return node.lc.key(key)[0] + 1
        if isinstance(node, CommentedSeq):
            return node.lc.item(key)[0] + 1
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
