"""Lossless verification math, without models."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from rt_helpers import chi2_critical, chi2_stat  # noqa: E402

from dsd.runtime.speculative import (  # noqa: E402
    SamplingParams,
    SparseDist,
    make_generator,
    propose,
    target_probs,
    to_sparse,
    verify_greedy,
    verify_sampled,
)


def test_greedy_accepts_matching_prefix():
    logits = torch.full((4, 10), -5.0)
    for i, t in enumerate([3, 7, 2, 9]):
        logits[i, t] = 5.0
    assert verify_greedy([3, 7, 2], logits) == (3, 9)  # all accepted, bonus from last row
    assert verify_greedy([3, 1, 2], logits) == (1, 7)  # first mismatch at 1 -> correction
    assert verify_greedy([0, 7, 2], logits) == (0, 3)
    assert verify_greedy([], logits[:1]) == (0, 3)


def test_top_k_top_p_transform():
    logits = torch.log(torch.tensor([0.5, 0.2, 0.15, 0.1, 0.05]))
    p = target_probs(logits, SamplingParams(temperature=1.0, top_k=3))
    assert torch.allclose(p, torch.tensor([0.5, 0.2, 0.15, 0, 0]) / 0.85, atol=1e-6)
    p = target_probs(logits, SamplingParams(temperature=1.0, top_p=0.7))
    assert torch.allclose(p, torch.tensor([0.5, 0.2, 0, 0, 0]) / 0.7, atol=1e-6)
    p = target_probs(logits, SamplingParams(temperature=1.0, top_p=0.71))
    assert (p > 0).sum() == 3
    cold = target_probs(logits, SamplingParams(temperature=0.1))
    assert cold[0] > 0.99


def test_sparse_proposal_is_exact_and_sampled_from():
    probs = torch.softmax(torch.randn(50, generator=torch.Generator().manual_seed(0)), -1)
    q = to_sparse(probs, 8)
    assert len(q.ids) == 8 and abs(float(q.probs.sum()) - 1) < 1e-6
    top = torch.topk(probs, 8)
    assert torch.allclose(q.probs, top.values / top.values.sum())
    gen = make_generator(1)
    logits = torch.log(probs)
    for _ in range(50):
        tok, prop, conf = propose(logits, SamplingParams(temperature=1.0), gen, max_support=8)
        assert tok in prop.ids.tolist() and prop.prob_of(tok) > 0


def _random_dists(vocab, seed, sparse_q=None):
    g = torch.Generator().manual_seed(seed)
    p = torch.softmax(torch.randn(vocab, generator=g) * 1.5, -1)
    q = torch.softmax(torch.randn(vocab, generator=g) * 1.5, -1)
    if sparse_q:
        qs = to_sparse(q, sparse_q)
    else:
        qs = SparseDist(torch.arange(vocab), q)
    return p, qs


@pytest.mark.parametrize("sparse_q", [None, 3])
def test_rejection_sampling_matches_target_distribution(sparse_q):
    """Single position: the emitted token (accepted draft or residual resample) ~ p."""
    vocab, n = 6, 20000
    p, q = _random_dists(vocab, 3, sparse_q)
    gen = make_generator(7)
    counts = [0] * vocab
    p2 = torch.stack([p, p])
    draws = torch.multinomial(q.probs, n, replacement=True, generator=gen)
    for d in draws.tolist():
        x = int(q.ids[d])
        acc, tok = verify_sampled([x], [q], p2, gen)
        counts[x if acc == 1 else tok] += 1
    stat, dof = chi2_stat(counts, p.tolist(), n)
    assert stat < chi2_critical(dof), (counts, p.tolist())


def test_chi_square_detects_a_lossy_rule():
    """The test above has power: accepting every draft (a lossy rule) is caught."""
    vocab, n = 6, 20000
    p, q = _random_dists(vocab, 3)
    draws = torch.multinomial(q.probs, n, replacement=True, generator=make_generator(7))
    counts = [0] * vocab
    for d in draws.tolist():
        counts[d] += 1
    stat, dof = chi2_stat(counts, p.tolist(), n)
    assert stat > chi2_critical(dof)


def test_two_positions_joint_distribution():
    """gamma=2 with position-dependent p: the first two emitted tokens ~ p1 x p2(.|x1)."""
    vocab, n = 4, 12000
    g = torch.Generator().manual_seed(11)
    p1 = torch.softmax(torch.randn(vocab, generator=g) * 1.5, -1)
    p2 = torch.softmax(torch.randn(vocab, vocab, generator=g) * 1.5, -1)  # row = previous token
    q1 = torch.softmax(torch.randn(vocab, generator=g), -1)
    q2 = torch.softmax(torch.randn(vocab, vocab, generator=g), -1)
    p3 = torch.full((vocab,), 1 / vocab)
    gen = make_generator(5)
    counts = [0] * (vocab * vocab)
    for _ in range(n):
        x1 = int(torch.multinomial(q1, 1, generator=gen))
        x2 = int(torch.multinomial(q2[x1], 1, generator=gen))
        props = [SparseDist(torch.arange(vocab), q1), SparseDist(torch.arange(vocab), q2[x1])]
        p = torch.stack([p1, p2[x1], p3])
        acc, tok = verify_sampled([x1, x2], props, p, gen)
        if acc == 0:
            first = tok
            second = int(torch.multinomial(p2[first], 1, generator=gen))  # next round
        elif acc == 1:
            first, second = x1, tok
        else:
            first, second = x1, x2
        counts[first * vocab + second] += 1
    expected = (p1[:, None] * p2).flatten().tolist()
    stat, dof = chi2_stat(counts, expected, n)
    assert stat < chi2_critical(dof)
