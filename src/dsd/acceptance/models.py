"""Per-token acceptance: how many of gamma drafted tokens the target accepts.

`alphas[i]` is the probability that draft token i+1 is accepted given tokens 1..i were
(the position-dependent model; the constant model repeats one alpha). A round accepts k
tokens with probability prod(alphas[:k]) * (1 - alphas[k]) for k < gamma, and all gamma
with prod(alphas[:gamma]). The simulator samples k by inverse CDF from one uniform.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from dataclasses import dataclass, field
from itertools import accumulate

from dsd.errors import ConfigError

GAMMA_MAX = 32

# Default per-token acceptance by dataset for a same-family draft/target pair. Chosen inside
# the ranges measured for Qwen2.5-Coder 0.5B/1.5B greedy (GSM8K 0.72-0.89, CNN/DM 0.63-0.83,
# HumanEval ~1.0) and lowered for larger gaps between draft and target sizes.
DATASET_ALPHA: dict[str, float] = {
    "gsm8k": 0.80,
    "cnndm": 0.70,
    "humaneval": 0.88,
    "mtbench": 0.65,
    "sharegpt": 0.65,
    "synthetic": 0.75,
}


@dataclass(frozen=True)
class TokenAcceptance:
    """Acceptance of one session: per-position conditional probabilities."""

    alphas: tuple[float, ...]
    # cdf[gamma] lists P(accepted <= k) for k = 0..gamma-1, for inverse-CDF sampling.
    _cdf: tuple[tuple[float, ...], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.alphas:
            raise ConfigError("acceptance: need at least one alpha")
        for a in self.alphas:
            if not 0.0 <= a <= 1.0:
                raise ConfigError(f"acceptance: alpha {a} is outside [0, 1]")
        tables: list[tuple[float, ...]] = [()]
        for gamma in range(1, GAMMA_MAX + 1):
            survive, probs = 1.0, []
            for i in range(gamma):
                a = self.alpha_at(i)
                probs.append(survive * (1.0 - a))
                survive *= a
            tables.append(tuple(accumulate(probs)))
        object.__setattr__(self, "_cdf", tuple(tables))

    def alpha_at(self, position: int) -> float:
        """Acceptance probability of draft position `position` (0-based); the tail repeats."""
        return self.alphas[position] if position < len(self.alphas) else self.alphas[-1]

    def accepted(self, gamma: int, u: float) -> int:
        """Number of accepted draft tokens for uniform `u` in [0, 1)."""
        return bisect_right(self._cdf[gamma], u)

    def expected_accepted(self, gamma: int) -> float:
        total, survive = 0.0, 1.0
        for i in range(gamma):
            survive *= self.alpha_at(i)
            total += survive
        return total

    def expected_tokens(self, gamma: int) -> float:
        """Tokens emitted per round, the correction or bonus token included."""
        return 1.0 + self.expected_accepted(gamma)


@dataclass(frozen=True)
class AcceptanceModel:
    """Acceptance for a (draft, target, dataset) population of sessions.

    `spread` > 0 makes sessions differ: each session scales its alphas by a factor drawn
    so that its mean acceptance follows a Beta distribution with that standard deviation
    around the population mean (easy and hard prompts), keeping the mean unchanged.
    """

    alphas: tuple[float, ...]
    spread: float = 0.0

    def __post_init__(self) -> None:
        base = TokenAcceptance(self.alphas)  # validates
        object.__setattr__(self, "_base", base)
        if self.spread < 0:
            raise ConfigError("acceptance.spread must be >= 0")
        mean = sum(self.alphas) / len(self.alphas)
        if self.spread > 0 and self.spread**2 >= mean * (1 - mean):
            raise ConfigError(
                f"acceptance.spread {self.spread} too large for mean alpha {mean:.2f}"
            )

    @property
    def mean_alpha(self) -> float:
        return sum(self.alphas) / len(self.alphas)

    def session(self, rng: random.Random) -> TokenAcceptance:
        if self.spread == 0.0:
            return self._base  # type: ignore[attr-defined]
        m, s2 = self.mean_alpha, self.spread**2
        k = m * (1 - m) / s2 - 1  # Beta(a, b) with mean m and variance s2
        draw = rng.betavariate(m * k, (1 - m) * k)
        scale = draw / m
        return TokenAcceptance(tuple(min(1.0, a * scale) for a in self.alphas))


def resolve_acceptance(
    spec: dict, draft_model: str, target_model: str, dataset: str
) -> AcceptanceModel:
    """Build the acceptance model for one draft/target pair from the config's `acceptance`.

    spec keys: `alpha` (constant) or `alphas` (per position), `spread`, and `table`: a list
    of entries `{draft, target, dataset, alpha|alphas, spread}` that override the default
    for matching pairs (missing keys match anything). Without alpha(s), the dataset default.
    """
    chosen: dict = {k: spec[k] for k in ("alpha", "alphas", "spread") if k in spec}
    for entry in spec.get("table", ()):
        if all(
            entry.get(key) in (None, value)
            for key, value in (("draft", draft_model), ("target", target_model),
                               ("dataset", dataset))
        ):
            chosen = {k: entry[k] for k in ("alpha", "alphas", "spread") if k in entry}
            break
    if "alphas" in chosen:
        alphas = tuple(float(a) for a in chosen["alphas"])
    elif "alpha" in chosen:
        alphas = (float(chosen["alpha"]),)
    else:
        alphas = (DATASET_ALPHA.get(dataset, DATASET_ALPHA["synthetic"]),)
    return AcceptanceModel(alphas, float(chosen.get("spread", spec.get("spread", 0.0))))
