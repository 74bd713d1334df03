"""A saga runner refused for a bad option leaves nothing behind on disk."""

from __future__ import annotations

import pytest

from eda_lab.saga import runner


def test_a_bad_option_creates_no_files(tmp_path):
    with pytest.raises(ValueError, match="reply_timeout_ms must be a number of ms > 0"):
        runner.SagaRunner(directory=tmp_path / "shop", reply_timeout_ms=0)
    with pytest.raises(ValueError, match="outcomes: unknown command"):
        runner.SagaRunner(directory=tmp_path / "shop", outcomes={"Refund": "fail"})
    assert not (tmp_path / "shop").exists()
