"""The docstring examples of the monitor, renderers and widget run (those not marked +SKIP)."""

import doctest
import importlib

import pytest


@pytest.mark.parametrize("name", ["batchframe.monitor", "batchframe.render", "batchframe.widget"])
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
