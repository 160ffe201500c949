"""PostgreSQL rules on their pass and fail fixtures."""

from __future__ import annotations

import pytest
from tests.review.rule_cases import check_case, fixture_cases

CASES = fixture_cases("PG-")


@pytest.mark.parametrize(("rule_id", "case"), CASES, ids=[f"{r}-{c}" for r, c in CASES])
def test_rule_fixture(materialize, rule_id, case):
    check_case(materialize, rule_id, case)
