"""The examples in the docstrings of the jobs modules run and stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["batchframe.catalog", "batchframe.lifecycle", "batchframe.orphans", "batchframe.retry"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
