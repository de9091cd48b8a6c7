"""The pure token maths on small hand-made tensors, against the papers' equations."""

import math

import torch

from vitprune_export.methods.base import AttentionView
from vitprune_export.methods.etps import squeeze_into_hosts
from vitprune_export.methods.evit import attention_like, fuse_tokens
from vitprune_export.methods.functional import (
    bipartite_soft_matching,
    cosine_similarity_matrix,
    keep_top_tokens,
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


def test_bipartite_matching_merges_the_most_similar_pairs():
    # A = tokens 0, 2, 4; B = tokens 1, 3. Token 2 duplicates token 3, token 0 nearly token 1.
    metric = torch.tensor([[[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.0, 1.0], [-1.0, 0.2]]])
    unmerged, merged, destination = bipartite_soft_matching(metric, merges=1)
    assert merged.tolist() == [[1]]  # A index 1 = token 2
    assert destination.tolist() == [[1]]  # B index 1 = token 3
    assert sorted(unmerged.flatten().tolist()) == [0, 2]


def test_size_weighted_merge_is_a_weighted_average_and_sizes_add():
    x = torch.tensor([[[2.0], [10.0], [4.0], [20.0]]])  # A = 2, 4; B = 10, 20
    size = torch.tensor([[1.0, 3.0, 2.0, 1.0]])
    unmerged, merged, destination = torch.tensor([[0]]), torch.tensor([[1]]), torch.tensor([[1]])
    tokens, sizes = merge_weighted_average(x, size, unmerged, merged, destination)
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
