"""``vitprune bench``'s grid from the command line: every bad comma list is one line naming its option."""

from __future__ import annotations

import pytest

from vitprune_export.cli.bench_grid import parse_grid
from vitprune_export.errors import VitPruneError

TINY = "vitprune_tiny_patch4_32"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"methods": "topk,nope"}, "unknown method 'nope'"),
        ({"threads": "1,0"}, "--threads: 0 is out of range"),
        ({"threads": "two"}, "--threads: 'two' is not a whole number"),
        ({"rates": "0.06,1.5"}, "in \\[0, 1\\)"),
        ({"backends": "ort-gpu"}, "unknown backend 'ort-gpu'"),
        ({"batches": ","}, "--batch is empty"),
        ({"threads": "1,5000"}, "--threads: 5000 is out of range \\(1 to 1024\\)"),
        ({"batches": "100000"}, "--batch: 100000 is out of range \\(1 to 4096\\)"),
        ({"batches": "1" * 5000}, "--batch: .* is not a whole number"),
        ({"rates": None}, "give --rates"),
    ],
)
def test_grid_errors_are_one_line(options, message):
    arguments = {"models": TINY, "methods": "none,topk", "rates": "0.1", "schedules": None}
    arguments |= {"backends": "torch-cpu", "batches": "1", "threads": None, **options}
    with pytest.raises(VitPruneError, match=message):
        parse_grid(**arguments)


def test_precisions_are_checked():
    with pytest.raises(VitPruneError, match="--precisions: 'int4' is not one of fp32, int8"):
        parse_grid(TINY, "none", None, None, "ort-cpu", "1", None, "fp32,int4")
