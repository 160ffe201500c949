"""Hypothesis helpers of the fuzz tests: a tally per test and mutations of documents.

Each fuzz test runs one Hypothesis search inside a plain test function, so the
`fault_record` fixture is used once per test, and counts every example it tries in
a `Tally`. The search is seeded with the test's `fault_seed`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import example, given, seed, settings
from hypothesis import strategies as st

from faults.conftest import FaultRecord, full_scale


@dataclass
class Tally:
    """Examples tried, how many were invalid or hostile, and how many were lost."""

    inputs: int = 0
    faults: int = 0
    lost: int = 0
    accepted_changed: int = 0
    kinds: dict[str, int] = field(default_factory=dict)

    def count(self, kind: str, hostile: bool = True) -> None:
        self.inputs += 1
        self.faults += int(hostile)
        self.kinds[kind] = self.kinds.get(kind, 0) + 1

    def record(self, record: FaultRecord) -> None:
        record.trials += 1
        record.inputs += self.inputs
        record.faults += self.faults
        record.lost += self.lost
        kinds = ", ".join(
            f"{kind} {count}" for kind, count in sorted(self.kinds.items())
        )
        if kinds:
            record.notes.append(f"inputs by kind: {kinds}")
        if self.accepted_changed:
            record.notes.append(
                f"{self.accepted_changed} mutated inputs parsed as another valid "
                "document of the same types (a changed value, not a damage sign)"
            )


def explore(
    strategy: st.SearchStrategy,
    check: Callable[[Any], None],
    fault_seed: int,
    tally: Tally,
    record: FaultRecord,
    examples: tuple = (),
    short_examples: int | None = None,
) -> None:
    """Run `check` on the examples `strategy` generates, seeded with `fault_seed`,
    and add `tally` to `record` even when a check fails.

    `examples` are values checked first on every run: the inputs of faults found
    before. `short_examples` lowers the number of generated examples in the
    short form, for checks that start a program each.
    """

    def run(value: Any) -> None:
        check(value)

    runner = given(strategy)(run)
    for value in examples:
        runner = example(value)(runner)
    if short_examples is not None and not full_scale():
        limit = min(short_examples, settings.default.max_examples)
        runner = settings(max_examples=limit)(runner)
    try:
        seed(fault_seed)(runner)()
    finally:
        tally.record(record)


# -- mutations of JSON documents

MUTATIONS = (
    "flip",
    "insert",
    "delete",
    "truncate",
    "wrong type",
    "huge number",
    "deep nesting",
    "huge string",
    "random bytes",
)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Return the path of every value inside `value`, its own included."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(_paths(item, (*prefix, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_paths(item, (*prefix, index)))
    return found


def _replace(document: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    copy = json.loads(json.dumps(document))
    parent = copy
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = new
    return copy


def _get(document: Any, path: tuple) -> Any:
    for part in path:
        document = document[part]
    return document


def _other_type(draw: Callable, old: Any) -> Any:
    """Return a JSON value whose type differs from `old`'s (bool, int, float and
    text count apart, so `true` for a number and `"12"` for a number count)."""
    choices = {
        "null": None,
        "bool": draw(st.booleans()),
        "int": draw(st.integers(-(2**70), 2**70)),
        "float": draw(st.floats(allow_nan=False, allow_infinity=False)),
        "text": draw(st.sampled_from(["", "12", "true", "x", "2026-01-01T00:00:00Z"])),
        "list": [],
        "object": {},
    }
    kind = {
        type(None): "null",
        bool: "bool",
        int: "int",
        float: "float",
        str: "text",
        list: "list",
        dict: "object",
    }[type(old)]
    del choices[kind]
    return choices[draw(st.sampled_from(sorted(choices)))]


@st.composite
def mutated_json(draw: Callable, document: bytes) -> tuple[str, bytes, tuple | None]:
    """Return (kind, mutated bytes, path changed or None) of a JSON `document`."""
    kind = draw(st.sampled_from(MUTATIONS))
    size = len(document)
    if kind == "flip":
        position = draw(st.integers(0, size - 1))
        bit = 1 << draw(st.integers(0, 7))
        data = bytearray(document)
        data[position] ^= bit
        return kind, bytes(data), None
    if kind == "insert":
        position = draw(st.integers(0, size))
        extra = draw(st.binary(min_size=1, max_size=8))
        return kind, document[:position] + extra + document[position:], None
    if kind == "delete":
        position = draw(st.integers(0, size - 1))
        length = draw(st.integers(1, 16))
        return kind, document[:position] + document[position + length :], None
    if kind == "truncate":
        return kind, document[: draw(st.integers(0, size - 1))], None
    if kind == "random bytes":
        return kind, draw(st.binary(max_size=512)), None
    parsed = json.loads(document)
    paths = _paths(parsed)
    if kind == "wrong type":
        path = draw(st.sampled_from(paths))
        new = _other_type(draw, _get(parsed, path))
    elif kind == "huge number":
        path = draw(st.sampled_from(paths))
        exponent = draw(st.integers(19, 4200))
        new = draw(st.sampled_from([10**exponent, -(10**exponent), 2**63, -1]))
    elif kind == "deep nesting":
        path = draw(st.sampled_from(paths))
        depth = draw(st.integers(2, 20_000))
        text = json.dumps(_replace(parsed, path, "\x00NEST\x00"))
        nest = "[" * depth + "]" * depth
        return kind, text.replace('"\\u0000NEST\\u0000"', nest).encode(), path
    else:
        texts = [path for path in paths if isinstance(_get(parsed, path), str)]
        path = draw(st.sampled_from(texts or paths))
        new = "x" * draw(st.integers(10_000, 500_000))
    return kind, json.dumps(_replace(parsed, path, new)).encode(), path
