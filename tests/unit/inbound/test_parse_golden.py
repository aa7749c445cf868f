"""Today's parse of every corpus email equals the golden snapshot (issue 13, item 4).

`golden/parse-golden.json` was written by the parser as it was before the fast path
(tests/unit/inbound/golden.py says how): every `ParsedEmail` field and the app message
of each fixture email, XSS vector email, structural edge case and CPython test email.
A difference here is a change of output, whatever made it; when one is intended, the
snapshot is rewritten with `python tests/unit/inbound/golden.py --write` and the diff
reviewed line by line (one input a line).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.unit.inbound import golden

SNAPSHOT: dict[str, Any] = json.loads(golden.GOLDEN.read_text(encoding="utf-8"))
INPUTS = golden.all_inputs(golden.CPYTHON_DATA)


def test_every_recorded_input_is_still_there() -> None:
    """The snapshot covers the corpus (CPython's files only where this Python has them)."""
    missing = sorted(set(SNAPSHOT) - set(INPUTS))
    assert all(name.startswith("cpython/") for name in missing), missing
    assert not sorted(set(INPUTS) - set(SNAPSHOT)), "new inputs: rewrite the snapshot"
    assert len(SNAPSHOT) >= 300


@pytest.mark.parametrize("name", sorted(SNAPSHOT))
def test_output_equals_the_snapshot(name: str) -> None:
    if name not in INPUTS:
        pytest.skip(f"{golden.CPYTHON_DATA} is not on this machine")
    raw = INPUTS[name]
    expected = SNAPSHOT[name]
    if golden.sha(raw) != expected["input_sha256"]:
        assert name.startswith("cpython/"), f"{name} changed: rewrite the snapshot"
        pytest.skip("another CPython's copy of this test email")
    got = json.loads(json.dumps(golden.snapshot(raw)))
    assert got == expected
