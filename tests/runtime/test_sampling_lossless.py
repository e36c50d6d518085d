"""Speculative sampling through the whole engine reproduces target-only sampling.

A tiny-vocabulary target/draft pair (draft = heavily perturbed target, so rejections and
residual resampling are frequent). Many seeded requests generate 4 tokens; the first comes
from the target's prefill, tokens 2-4 from one speculation round with gamma = 2 (two drafts
+ correction/bonus). The empirical joint distribution of tokens 2-4 is compared by a
chi-square test with the exact target-only distribution computed by enumeration.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest

torch = pytest.importorskip("torch")

from rt_helpers import (  # noqa: E402
    chi2_critical,
    chi2_stat,
    collect,  # noqa: E402
)

pytestmark = pytest.mark.runtime

VOCAB = 6
PROMPT = [3, 5, 2]


@pytest.fixture(scope="module")
def small_pair():
    from dsd.runtime.backends.hf import HFBackend
    from dsd.runtime.tiny import build_pair

    target, draft = build_pair(vocab_size=VOCAB, hidden=32, layers=1, seed=4, noise=0.6,
                               logit_scale=12.0)
    return target, HFBackend(target, None, "t"), HFBackend(draft, None, "d")


def exact_joint(target, params):
    """P(t2, t3, t4) under target-only sampling with `params`."""
    from dsd.runtime.speculative import target_probs

    seqs = [PROMPT + list(s) for s in itertools.product(range(VOCAB), repeat=3)]
    with torch.no_grad():
        logits = target(torch.tensor(seqs)).logits  # [V^3, len, V]
    probs = target_probs(logits[:, len(PROMPT) - 1:], params)  # positions predicting t1..t4
    joint = torch.zeros(VOCAB, VOCAB, VOCAB)
    for row, s in enumerate(seqs):
        t1, t2, t3 = s[len(PROMPT):]
        p = probs[row]
        pre = p[0, t1] * p[1, t2] * p[2, t3]
        joint[t2, t3] += pre * p[3]
    return joint.flatten().tolist()


def sample_engine(draft, target_runner, params_fn, n):
    from dsd.runtime.fused import fused_engine, make_window

    async def main():
        eng = fused_engine(draft, target_runner, make_window("static", 2), max_support=VOCAB)
        await eng.start()
        counts = [0] * VOCAB**3
        rejected = 0
        sem = asyncio.Semaphore(32)

        async def one(i):
            nonlocal rejected
            async with sem:
                out = await collect(eng, PROMPT, params_fn(i), max_tokens=4)
            t2, t3, t4 = out[1:4]
            counts[(t2 * VOCAB + t3) * VOCAB + t4] += 1

        await asyncio.gather(*[one(i) for i in range(n)])
        stats = eng.metrics.spec
        drafted = stats.draft_tokens._value.get()
        accepted = stats.accepted_tokens._value.get()
        await eng.close()
        return counts, accepted / drafted

    return asyncio.run(main())


def _check(small_pair, params, n):
    from dsd.runtime.speculative import SamplingParams

    target, tr, dr = small_pair
    counts, acc_rate = sample_engine(
        dr, tr, lambda i: SamplingParams(params.temperature, params.top_p, params.top_k, seed=i),
        n)
    assert sum(counts) == n
    assert 0.2 < acc_rate < 0.95, acc_rate  # rejections (residual sampling) really happen
    expected = exact_joint(target, params)
    stat, dof = chi2_stat(counts, expected, n)
    assert stat < chi2_critical(dof), (stat, dof)
    return counts, expected


def test_engine_sampling_matches_target_distribution(small_pair):
    from dsd.runtime.speculative import SamplingParams

    counts, expected = _check(small_pair, SamplingParams(temperature=1.0), 1500)
    # power check: the draft-only distribution is rejected by the same test
    target, tr, dr = small_pair
    draft_joint = exact_joint(dr.model, SamplingParams(temperature=1.0))
    stat, dof = chi2_stat(counts, draft_joint, sum(counts))
    assert stat > chi2_critical(dof)


@pytest.mark.slow
def test_engine_sampling_top_k_top_p(small_pair):
    from dsd.runtime.speculative import SamplingParams

    _check(small_pair, SamplingParams(temperature=0.8, top_p=0.9, top_k=4), 3000)
