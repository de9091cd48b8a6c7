"""The pruning record: made once from a patched model (schedule, rate, MACs), written into the ONNX, read back
whole by every later stage, tolerant of files from older versions, and able to rebuild the PyTorch model."""

from __future__ import annotations

import json

import pytest

from tests.helpers import base_model
from vitprune_export import apply_method, count_macs
from vitprune_export.errors import VitPruneError
from vitprune_export.pruning.patch import keep_counts
from vitprune_export.record import PruningRecord

TINY = "vitprune_tiny_patch4_32"


def tiny_record(method: str = "topk-vpa", **options) -> tuple:
    options = options or {"rate": 0.1, "tau": 0.01}
    model = apply_method(base_model(TINY), method, **options)
    return model, PruningRecord.from_model(model, TINY)


def test_the_record_of_a_patched_model():
    model, record = tiny_record()
    assert record.keep_counts == keep_counts(model) == [59, 54, 49, 45, 41, 37]
    assert (record.model, record.method, record.rate) == (TINY, "topk-vpa", 0.1)
    assert record.method_options == {"tau": 0.01, "score": "cls-attn"}
    assert record.macs == count_macs(model).macs < record.baseline_macs == count_macs(model, unpruned=True).macs
    assert (record.input_size, record.num_classes) == ((3, 32, 32), 10)
    assert record.weights.startswith("random")
    assert record.tag == "vitprune_tiny_patch4_32_topk-vpa_r0.1"


def test_metadata_round_trip_and_files_from_older_versions():
    _, record = tiny_record()
    assert PruningRecord.from_metadata(json.loads(json.dumps(record.to_metadata()))) == record
    older = record.to_metadata()
    for key in ("rate", "macs", "baseline_macs", "keep_counts"):  # written before the record carried them
        del older[key]
    again = PruningRecord.from_metadata(older)
    assert again.rate == 0.1 and again.keep_counts == record.keep_counts  # from the schedule
    assert again.macs is None and again.baseline_macs is None  # never re-derived
    empty = PruningRecord.from_metadata({}, "somewhere/model.onnx")
    assert (empty.model, empty.method, empty.schedule, empty.keep_counts) == ("model", "unknown", None, [])


def test_tags_name_one_rate_a_schedule_and_the_baseline():
    assert tiny_record("topk", rates="0.1,0.1,0.1,0.1,0.1,0.1")[1].rate_tag == "r0.1"  # one rate, given per block
    _, per_layer = tiny_record("topk", rates="0.1,0.2,0.1,0.2,0.1,0.2")
    assert per_layer.rate is None and per_layer.rate_tag.startswith("sched-") and len(per_layer.rate_tag) == 12
    assert per_layer.rate_tag == tiny_record("topk", schedule=list(per_layer.schedule.removed))[1].rate_tag
    assert tiny_record("none", rate=None)[1].rate_tag == "r0"
    # a schedule that prunes once (every later block keeps the same count) is not the baseline's r0
    _, once = tiny_record("topk", schedule=[8, 0, 0, 0, 0, 0])
    assert len(set(once.keep_counts)) == 1 and once.keep_counts[0] < 65
    assert (
        once.rate_tag.startswith("sched-")
        and once.rate_tag != tiny_record("topk", schedule=[4, 0, 0, 0, 0, 0])[1].rate_tag
    )


def test_rebuild_gives_the_model_back():
    _, record = tiny_record()
    rebuilt = record.rebuild("random")
    assert PruningRecord.from_model(rebuilt, TINY).replace(weights=record.weights) == record
    with pytest.raises(VitPruneError, match="has no vitprune metadata"):
        PruningRecord.from_metadata({}).rebuild()
    with pytest.raises(VitPruneError, match="other keep counts than its metadata"):
        record.replace(keep_counts=[60, 55, 50, 45, 40, 35]).rebuild()


def test_export_writes_the_record_and_every_reader_gets_it_whole(export_cache):
    from vitprune_export.export.onnx import read_metadata

    _, result = export_cache(TINY, "topk", rate=0.1)
    record = PruningRecord.read(result.path)
    assert record == result.record and read_metadata(result.path) == record.to_metadata()
    assert (record.batch, record.opset, record.plugins, record.rewrite) == ("dynamic", 18, False, None)
    assert {"vitprune", "torch", "timm", "onnx", "onnxruntime"} <= set(record.versions)
    assert record.macs < record.baseline_macs
