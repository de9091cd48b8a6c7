"""The pure token maths on small hand-made tensors, against the papers' equations."""

import math

import pytest
import torch

from vitprune_export.pruning.methods.base import AttentionView
from vitprune_export.pruning.methods.etps import squeeze_into_hosts
from vitprune_export.pruning.methods.evit import attention_like, fuse_tokens
from vitprune_export.pruning.methods.functional import (
    bipartite_soft_matching,
    bipartite_split,
    cosine_similarity_matrix,
    keep_top_tokens,
    merge_bipartite,
    merge_weighted_average,
    one_hot,
    vpa_spread_sizes,
)


def test_keep_top_tokens_keeps_prefix_and_best_patches():
    x = torch.arange(6.0).view(1, 6, 1)  # token i has value i
    scores = torch.tensor([[0.0, 0.5, 0.1, 0.9, 0.3, 0.2]])  # CLS score ignored
    kept, index = keep_top_tokens(x, scores, num_prefix=1, keep_patch=2)
    assert kept.flatten().tolist() == [0.0, 3.0, 1.0]
    assert index.tolist() == [[2, 0]]  # relative to the first patch token


def test_cls_attention_row_equals_full_softmax_row():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 4) for _ in range(3))
    bias = torch.randn(2, 1, 1, 5)
    view = AttentionView(q, k, v, scale=0.5, bias=bias)
    full = ((q @ k.transpose(-2, -1)) * 0.5 + bias).softmax(-1)
    torch.testing.assert_close(view.cls_attention_per_head, full[:, :, 0])
    torch.testing.assert_close(view.cls_attention, full[:, :, 0].mean(1))


def test_vpa_size_update_follows_eq4_eq5_and_conserves_size():
    similarity = torch.tensor([[[0.9, 0.1], [0.2, 0.6]]])  # 2 removed × 2 kept
    kept, removed = torch.tensor([[1.0, 2.0]]), torch.tensor([[1.0, 3.0]])
    tau = 0.5
    expected = kept.clone()
    for row in range(2):
        m = similarity[0, row]
        weights = torch.softmax(m / (m.sum() * tau), dim=0)
        expected[0] += removed[0, row] * weights
    result = vpa_spread_sizes(kept, removed, similarity, tau)
    torch.testing.assert_close(result, expected)
    assert math.isclose(result.sum().item(), kept.sum().item() + removed.sum().item(), rel_tol=1e-6)


def test_vpa_small_tau_sends_size_to_the_most_similar_token():
    similarity = torch.tensor([[[0.9, 0.1, 0.3]]])
    result = vpa_spread_sizes(torch.ones(1, 3), torch.tensor([[5.0]]), similarity, tau=0.001)
    torch.testing.assert_close(result, torch.tensor([[6.0, 1.0, 1.0]]))


def _direction(degrees: float) -> list[float]:
    return [math.cos(math.radians(degrees)), math.sin(math.radians(degrees))]


def _metric(*angles: float) -> torch.Tensor:
    """Token i's key is the unit vector at ``angles[i]`` degrees: cosine similarity = cos(angle difference)."""
    return torch.tensor([[_direction(angle) for angle in angles]])


def _pairs(metric: torch.Tensor, merges: int, num_prefix: int) -> tuple[dict[int, int], list[int]]:
    """{merged token position: destination position}, unmerged A positions — as absolute token positions."""
    unmerged, merged, destination = bipartite_soft_matching(metric, merges, num_prefix)
    protected_a, protected_b = bipartite_split(num_prefix)
    a_position, b_position = (lambda a: 2 * (protected_a + a)), (lambda b: 2 * (protected_b + b) + 1)
    pairs = {a_position(a): b_position(b) for a, b in zip(merged[0].tolist(), destination[0].tolist())}
    return pairs, [a_position(a) for a in unmerged[0].tolist()]


def test_bipartite_split_alternates_over_all_tokens_with_the_class_token_first_in_a():
    # Official ToMe: A = positions 0, 2, 4, 6 (class token 0 first), B = 1, 3, 5. The class token's key
    # equals token 1's (cosine 1, the best edge of all) but its row is protected: it never merges.
    # Splitting the patch tokens alone (A = 1, 3, 5; B = 2, 4, 6) would pair 2 with 1 the other way round.
    metric = _metric(10, 10, 11, 60, 100.5, 101, 63)  # class token + 6 patch tokens: an odd total
    pairs, unmerged = _pairs(metric, merges=2, num_prefix=1)
    assert pairs == {4: 5, 2: 1}  # 100.5° → 101°, then 11° → 10°
    assert unmerged == [6]  # 63° → 60° is the third best edge
    pairs, unmerged = _pairs(metric, merges=3, num_prefix=1)
    assert pairs == {4: 5, 2: 1, 6: 3} and unmerged == []


def test_bipartite_split_with_an_even_token_count_and_sorted_unmerged_tokens():
    # class token + 7 patch tokens: A = 0, 2, 4, 6; B = 1, 3, 5, 7
    metric = _metric(0, 40, 75, 120, 125, 200, 41, 300)  # edges: 2 → 1 (35°), 4 → 3 (5°), 6 → 1 (1°)
    pairs, unmerged = _pairs(metric, merges=1, num_prefix=1)
    assert pairs == {6: 1}
    assert unmerged == [2, 4]  # ascending position (the official sort keeps the class token first), not edge order
    pairs, unmerged = _pairs(metric, merges=2, num_prefix=1)
    assert pairs == {6: 1, 4: 3} and unmerged == [2]


def test_a_distillation_token_never_receives_a_merge():
    # Official ToMe with a distillation token: class token = A[0] (row protected), distillation token =
    # B[0] (column protected). Token 2's key equals the distillation token's, yet it merges into token 3.
    metric = _metric(0, 50, 50, 58, 170, 171, 300, 302)
    pairs, unmerged = _pairs(metric, merges=2, num_prefix=2)
    assert pairs == {6: 7, 4: 5}  # 300° → 302°, 170° → 171°; nothing goes to the distillation token (1)
    pairs, unmerged = _pairs(metric, merges=3, num_prefix=2)
    assert pairs == {6: 7, 4: 5, 2: 3} and unmerged == []


def test_register_tokens_continue_the_alternation_and_are_all_protected():
    # class token + 4 registers: prefix positions 0, 2, 4 are in A, 1, 3 in B; patches start at 5 (B) and 6 (A).
    # Unprotected, register 2 (90°) → token 9 (90.5°) and token 6 (1°) → register 1 (0°) would be the best edges.
    metric = _metric(0, 0, 90, 90, 180, 4, 1, 200, 201, 90.5)
    pairs, unmerged = _pairs(metric, merges=2, num_prefix=5)
    assert pairs == {8: 7, 6: 5}  # 201° → 200°, 1° → 4°
    assert unmerged == []


def test_without_prefix_tokens_unmerged_a_tokens_stay_in_edge_order():
    # No class token: the official code leaves the unmerged A tokens as its argsort left them, best edge first.
    metric = _metric(0, 30, 100, 101, 200, 210, 300, 304)  # A = 0, 2, 4, 6; B = 1, 3, 5, 7
    pairs, unmerged = _pairs(metric, merges=1, num_prefix=0)
    assert pairs == {2: 3}  # 1°
    assert unmerged == [6, 4, 0]  # edges of 4°, 10°, 30°
    # the departure --sort-unmerged: position order, as with a class token
    unmerged, merged, destination = bipartite_soft_matching(metric, 1, 0, sort_unmerged=True)
    assert [2 * a for a in unmerged[0].tolist()] == [0, 4, 6] and merged.tolist() == [[1]]


def test_merge_count_is_capped_at_half_the_patch_tokens():
    metric = _metric(0, 10, 20, 30, 40, 50)  # class token + 5 patch tokens: at most 2 merges
    _pairs(metric, merges=2, num_prefix=1)
    with pytest.raises(ValueError, match="exceed half"):
        bipartite_soft_matching(metric, 3, 1)


def test_merge_output_is_prefix_then_unmerged_a_then_b_with_weighted_averages():
    # class token + 6 patch tokens as before: 2 → 1 and 4 → 5 merge; token i holds the value i
    x = torch.arange(7.0).view(1, 7, 1)
    size = torch.tensor([[1.0, 1.0, 3.0, 1.0, 1.0, 1.0, 2.0]])
    tokens, sizes = merge_bipartite(x, _metric(10, 10, 11, 60, 100.5, 101, 63), size, num_prefix=1, merges=2)
    # [class token, unmerged A (6), B: 1 + 2 (sizes 1, 3), 3, 5 + 4 (sizes 1, 1)]
    torch.testing.assert_close(tokens.flatten(), torch.tensor([0.0, 6.0, (1 + 3 * 2) / 4, 3.0, 4.5]))
    torch.testing.assert_close(sizes.flatten(), torch.tensor([1.0, 2.0, 4.0, 1.0, 2.0]))
    # with a distillation token it stays second (official: cat([unm[:1], dst[:1], unm[1:], dst[1:]]))
    x = torch.arange(8.0).view(1, 8, 1)
    tokens, sizes = merge_bipartite(x, _metric(0, 50, 50, 58, 170, 171, 300, 302), torch.ones(1, 8), 2, 2)
    torch.testing.assert_close(tokens.flatten(), torch.tensor([0.0, 1.0, 2.0, 3.0, 4.5, 6.5]))
    torch.testing.assert_close(sizes.flatten(), torch.tensor([1.0, 1.0, 1.0, 1.0, 2.0, 2.0]))


def test_size_weighted_merge_is_a_weighted_average_and_sizes_add():
    x = torch.tensor([[[2.0], [10.0], [4.0], [20.0]]])  # no prefix: A = 2, 4; B = 10, 20
    size = torch.tensor([[1.0, 3.0, 2.0, 1.0]])
    unmerged, merged, destination = torch.tensor([[0]]), torch.tensor([[1]]), torch.tensor([[1]])
    tokens, sizes = merge_weighted_average(x, size, 0, unmerged, merged, destination)
    # A token 4 (size 2) merges into B token 20 (size 1): (2·4 + 1·20) / 3
    torch.testing.assert_close(tokens.flatten(), torch.tensor([2.0, 10.0, 28.0 / 3]))
    torch.testing.assert_close(sizes.flatten(), torch.tensor([1.0, 3.0, 3.0]))


def test_evit_fusion_is_the_attention_weighted_sum():
    tokens = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    fused = fuse_tokens(tokens, torch.tensor([[0.3, 0.1]]))  # attention probabilities of the removed tokens
    torch.testing.assert_close(fused, torch.tensor([[[0.3, 0.1]]]))
    torch.testing.assert_close(attention_like(torch.tensor([[2.0, 6.0]])), torch.tensor([[0.25, 0.75]]))


def test_tps_squeeze_weights_guests_by_exp_similarity():
    kept = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    removed = torch.tensor([[[2.0, 0.0]]])  # cosine 1 with kept token 0
    result = squeeze_into_hosts(kept, removed)
    e = math.e
    torch.testing.assert_close(result[0, 0], (e * kept[0, 0] + e * removed[0, 0]) / (2 * e))
    torch.testing.assert_close(result[0, 1], kept[0, 1])


def test_one_hot_and_cosine_helpers():
    assert one_hot(torch.tensor([[2, 0]]), 3, torch.float32).tolist() == [[[0, 0, 1], [1, 0, 0]]]
    a = torch.tensor([[[3.0, 4.0]]])
    torch.testing.assert_close(cosine_similarity_matrix(a, a), torch.ones(1, 1, 1))
