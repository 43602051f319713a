"""The examples in the server's docstrings run and stay true."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import batchframe.server

MODULES = sorted(
    name for _, name, _ in pkgutil.walk_packages(batchframe.server.__path__, "batchframe.server.")
    if not name.startswith("batchframe.server.engines.llama")  # owned and tested by the model tests
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
