"""``finetune``/``adjust --help`` at 80 columns: every option's help text is shown whole, bracketed defaults
included (rich markup must not swallow them and leave a stray " ." at the end of a line)."""

from __future__ import annotations

import re

import pytest


@pytest.mark.parametrize("command", ["finetune", "adjust"])
def test_help_at_80_columns_keeps_the_bracketed_defaults(cli, command):
    result = cli(command, "--help")
    assert result.exit_code == 0, result.output
    lines = [line.rstrip(" │") for line in result.output.splitlines()]
    stray = [line for line in lines if re.search(r"\s\.$", line)]
    assert not stray, stray
    text = re.sub(r"[\s│]+", " ", result.output)
    assert "[default: the paper's 5e-4·batch/512]" in text
    assert "[default: min(5, epochs/10)]" in text
    assert "[default: 0 for in-memory digits" in text
