"""The examples in the saga modules' docstrings run and print what they say."""

from __future__ import annotations

import doctest

import pytest

from eda_lab.saga import definition, log, runner


@pytest.mark.parametrize("module", [definition, log, runner], ids=lambda m: m.__name__)
def test_docstring_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_a_bad_option_creates_no_files(tmp_path):
    with pytest.raises(ValueError, match="reply_timeout_ms must be a number of ms > 0"):
        runner.SagaRunner(directory=tmp_path / "shop", reply_timeout_ms=0)
    with pytest.raises(ValueError, match="outcomes: unknown command"):
        runner.SagaRunner(directory=tmp_path / "shop", outcomes={"Refund": "fail"})
    assert not (tmp_path / "shop").exists()
