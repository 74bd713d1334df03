"""The examples in the docstrings of the outbox modules run and say what they show."""

from __future__ import annotations

import doctest

import pytest

import eda_lab.order_service
import eda_lab.widgets.diagram
import eda_lab.widgets.outbox_visualizer


@pytest.mark.parametrize("module", [eda_lab.order_service, eda_lab.widgets.diagram,
                                    eda_lab.widgets.outbox_visualizer])
def test_docstring_examples_pass(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
