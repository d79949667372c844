"""The examples' docstring examples hold (pytest's doctest collection skips examples/, see pyproject.toml)."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

import examples.pricing
import examples.protocol


@pytest.mark.parametrize("module", [examples.pricing, examples.protocol], ids=lambda m: m.__name__)
def test_docstring_examples(module: ModuleType) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
