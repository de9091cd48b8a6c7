"""Schedules: rates → static removed counts (VPA paper Alg. 1 line 8) and their validation."""

import json

import pytest

from vitprune_export.errors import VitPruneError
from vitprune_export.pruning.methods import get_method
from vitprune_export.pruning.schedule import build_schedule, load_removed_counts, parse_rates, save_schedule

VIT_S_TOKENS_AFTER_RATE_006 = [186, 175, 165, 156, 147, 139, 131, 124, 117, 110, 104, 98]


def test_rate_006_on_vit_small_gives_the_issue_counts():
    schedule = build_schedule(197, 1, 12, rate=0.06, method=get_method("topk"))
    assert list(schedule.tokens_out) == VIT_S_TOKENS_AFTER_RATE_006
    assert schedule.removed[0] == 11  # floor(0.06 · 197)
    assert schedule.tokens_in[0] == 197 and schedule.tokens_in[1] == 186


def test_per_layer_rates_and_explicit_counts_agree():
    by_rates = build_schedule(197, 1, 3, rates=[0.1, 0.0, 0.5])
    assert by_rates.removed == (19, 0, 89)
    by_counts = build_schedule(197, 1, 3, removed=[19, 0, 89])
    assert by_counts.tokens_out == by_rates.tokens_out


def test_tome_caps_rate_counts_at_half_the_patch_tokens():
    tome = get_method("tome")
    schedule = build_schedule(197, 1, 2, rate=0.9, method=tome)
    assert schedule.removed == (98, 49)  # 196 // 2, then 98 // 2
    with pytest.raises(VitPruneError, match="can remove at most 98"):
        build_schedule(197, 1, 2, removed=[120, 0], method=tome)


@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5, float("nan")])
def test_rate_outside_unit_interval_is_an_error(rate):
    with pytest.raises(VitPruneError, match=r"must be in \[0, 1\)"):
        build_schedule(197, 1, 12, rate=rate)


def test_rate_that_leaves_no_patch_token_is_an_error():
    with pytest.raises(VitPruneError, match="leaves no patch token after block 1"):
        build_schedule(197, 1, 12, rate=0.99)


def test_prefix_tokens_count_towards_the_limit():
    # 5 prefix tokens (CLS + 4 registers): 6 tokens may not lose 1
    with pytest.raises(VitPruneError, match="leaves no patch token"):
        build_schedule(6, 5, 1, removed=[1])
    assert build_schedule(7, 5, 1, removed=[1]).tokens_out == (6,)


def test_wrong_number_of_rates_is_an_error():
    with pytest.raises(VitPruneError, match="3 entries but the model has 12 blocks"):
        build_schedule(197, 1, 12, rates=[0.1, 0.1, 0.1])


def test_only_one_kind_of_schedule():
    with pytest.raises(VitPruneError, match="only one of"):
        build_schedule(197, 1, 12, rate=0.1, removed=[0] * 12)


def test_parse_rates():
    assert parse_rates("0.1, 0.2,0") == [0.1, 0.2, 0.0]
    with pytest.raises(VitPruneError, match="comma-separated numbers"):
        parse_rates("0.1,abc")


def test_schedule_json_round_trip(tmp_path):
    schedule = build_schedule(197, 1, 12, rate=0.06)
    path = tmp_path / "schedule.json"
    save_schedule(path, schedule, note="test")
    assert load_removed_counts(path) == list(schedule.removed)
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps([1, 2, 3]))
    assert load_removed_counts(plain) == [1, 2, 3]


@pytest.mark.parametrize("content", ["{not json", '{"removed": [1.5]}', '"text"', '{"rates": [0.1]}'])
def test_bad_schedule_file_is_a_clear_error(tmp_path, content):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(VitPruneError, match="schedule file"):
        load_removed_counts(path)


def test_missing_schedule_file():
    with pytest.raises(VitPruneError, match="does not exist"):
        load_removed_counts("/nonexistent/schedule.json")
