"""examples/protocol.py: the read-your-writes query parameters (pure, no I/O)."""

from __future__ import annotations

import pytest

from examples.protocol import DEFAULT_WAIT_SECONDS, MAX_WAIT_SECONDS, BadQuery, wait_arguments


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({}, (None, 0.0)),
        ({"timeout": "1"}, (None, 0.0)),
        ({"min_sequence": "0"}, (0, DEFAULT_WAIT_SECONDS)),
        ({"min_sequence": "42", "timeout": "0.25"}, (42, 0.25)),
        ({"min_sequence": "42", "timeout": str(MAX_WAIT_SECONDS)}, (42, MAX_WAIT_SECONDS)),
        ({"min_sequence": "7", "other": "ignored"}, (7, DEFAULT_WAIT_SECONDS)),
    ],
)
def test_accepted(args: dict[str, str], expected: tuple[int | None, float]) -> None:
    assert wait_arguments(args) == expected


@pytest.mark.parametrize(
    ("args", "named"),
    [
        ({"min_sequence": "abc"}, "min_sequence"),
        ({"min_sequence": "-1"}, "min_sequence"),
        ({"min_sequence": "1.5"}, "min_sequence"),
        ({"min_sequence": "١٢"}, "min_sequence"),  # digits, but not ASCII ones
        ({"min_sequence": ""}, "min_sequence"),
        ({"min_sequence": "1", "timeout": "0"}, "timeout"),
        ({"min_sequence": "1", "timeout": "nan"}, "timeout"),
        ({"min_sequence": "1", "timeout": "inf"}, "timeout"),
        ({"min_sequence": "1", "timeout": "31"}, "timeout"),
        ({"min_sequence": "1", "timeout": "soon"}, "timeout"),
    ],
)
def test_rejected_with_the_parameter_named(args: dict[str, str], named: str) -> None:
    with pytest.raises(BadQuery, match=named):
        wait_arguments(args)
