"""Prompt/output token-length distributions per dataset.

A lognormal fitted to two quantiles is the default shape: token lengths of real prompts and
answers are right-skewed, and p50/p90 are what we can measure reliably. With median = p50 and
p90 = p50 * exp(1.2816 * sigma) (1.2816 is the standard normal's 0.9 quantile):

    mu = ln(p50),   sigma = ln(p90 / p50) / 1.2816

Samples are rounded to integers and clamped to [lo, hi]. The simulator calls `sample` in its
hot loop, so sampling takes a caller-owned `random.Random` and does scalar math only.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from dsd.errors import ConfigError

Z90 = 1.2816  # standard normal quantile at 0.9

LOGNORMAL = "lognormal"
FIXED = "fixed"
EMPIRICAL = "empirical"

DEFAULT_MAX_TOKENS = 32768  # clamp ceiling when an override gives none


def _phi(x: float) -> float:
    """Standard normal CDF."""
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _only(keys: set[str], allowed: set[str], where: str) -> None:
    extra = sorted(keys - allowed)
    if extra:
        allowed_s = ", ".join(sorted(allowed))
        raise ConfigError(f"{where}.{extra[0]}: unexpected key (allowed: {allowed_s})")


def _check_bounds(lo: Any, hi: Any) -> tuple[int, int]:
    if not _is_int(lo) or lo < 1:
        raise ConfigError(f"length min must be a positive integer, got {lo!r}")
    if not _is_int(hi) or hi < lo:
        raise ConfigError(f"length max must be an integer >= min ({lo}), got {hi!r}")
    return int(lo), int(hi)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def quantile(ordered: Sequence[int], q: float) -> float:
    """Linear-interpolated quantile of an ascending sequence (numpy's default)."""
    pos = q * (len(ordered) - 1)
    i = int(pos)
    j = min(i + 1, len(ordered) - 1)
    return ordered[i] + (ordered[j] - ordered[i]) * (pos - i)


@dataclass(frozen=True, slots=True)
class LengthDist:
    """A distribution of token counts (always integers >= 1). Build with the classmethods."""

    kind: str
    p50: float = 0.0
    p90: float = 0.0
    lo: int = 1
    hi: int = DEFAULT_MAX_TOKENS
    values: tuple[int, ...] = ()
    mu: float = 0.0
    sigma: float = 0.0

    @classmethod
    def lognormal(
        cls, p50: float, p90: float, lo: int = 1, hi: int = DEFAULT_MAX_TOKENS
    ) -> LengthDist:
        """Lognormal with median p50 and 90th percentile p90, clamped to [lo, hi]."""
        if not _is_number(p50) or p50 <= 0:
            raise ConfigError(f"length p50 must be a positive number, got {p50!r}")
        if not _is_number(p90) or p90 < p50:
            raise ConfigError(f"length p90 must be a number >= p50 ({p50}), got {p90!r}")
        lo, hi = _check_bounds(lo, hi)
        sigma = math.log(p90 / p50) / Z90
        return cls(LOGNORMAL, float(p50), float(p90), lo, hi, (), math.log(p50), sigma)

    @classmethod
    def fixed(cls, n: int) -> LengthDist:
        """Always n tokens."""
        if not _is_int(n) or n < 1:
            raise ConfigError(f"fixed length must be a positive integer, got {n!r}")
        return cls(FIXED, n, n, n, n, (n,))

    @classmethod
    def empirical(cls, values: Sequence[int]) -> LengthDist:
        """Uniform draw from observed lengths (e.g. measured from a dataset)."""
        vals = tuple(values)
        if not vals:
            raise ConfigError("empirical length values must not be empty")
        bad = next((v for v in vals if not _is_int(v) or v < 1), None)
        if bad is not None:
            raise ConfigError(f"empirical length values must be positive integers, got {bad!r}")
        ordered = sorted(vals)
        p50, p90 = quantile(ordered, 0.5), quantile(ordered, 0.9)
        return cls(EMPIRICAL, p50, p90, ordered[0], ordered[-1], vals)

    def sample(self, rng: random.Random) -> int:
        if self.kind == LOGNORMAL:
            n = int(rng.lognormvariate(self.mu, self.sigma) + 0.5)
            return self.lo if n < self.lo else self.hi if n > self.hi else n
        if self.kind == FIXED:
            return self.values[0]
        return self.values[int(rng.random() * len(self.values))]

    def mean(self) -> float:
        """Expected value; for the lognormal it accounts for clamping but not rounding."""
        if self.kind == FIXED:
            return float(self.values[0])
        if self.kind == EMPIRICAL:
            return sum(self.values) / len(self.values)
        mu, s, lo, hi = self.mu, self.sigma, self.lo, self.hi
        if s == 0.0:
            return float(min(max(math.exp(mu), lo), hi))
        # E[clamp(X, lo, hi)] = lo P(X<lo) + hi P(X>hi) + E[X; lo<X<hi] (closed form).
        a, b = (math.log(lo) - mu) / s, (math.log(hi) - mu) / s
        middle = math.exp(mu + s * s / 2) * (_phi(b - s) - _phi(a - s))
        return lo * _phi(a) + hi * (1.0 - _phi(b)) + middle

    def describe(self) -> str:
        if self.kind == FIXED:
            return f"fixed {self.values[0]}"
        if self.kind == EMPIRICAL:
            return f"empirical n={len(self.values)} p50={self.p50:g} p90={self.p90:g}"
        return f"lognormal p50={self.p50:g} p90={self.p90:g} [{self.lo}, {self.hi}]"


@dataclass(frozen=True, slots=True)
class LengthProfile:
    """Prompt and output length distributions of one workload."""

    name: str
    prompt: LengthDist
    output: LengthDist

    def sample(self, rng: random.Random) -> tuple[int, int]:
        """(prompt_tokens, output_tokens), each >= 1."""
        return self.prompt.sample(rng), self.output.sample(rng)


_ln = LengthDist.lognormal

# Qwen2.5-tokenizer p50/p90 measured on the real data (REFERENCE.md section 4) unless a comment
# says the number is a guess. Clamp bounds keep the lognormal tail inside what datasets contain.
PROFILES: dict[str, LengthProfile] = {
    # GSM8K question / chain-of-thought answer.
    "gsm8k": LengthProfile("gsm8k", _ln(57, 92, 8, 1024), _ln(115, 197, 8, 2048)),
    # CNN/DailyMail article; summary output p50 75 / p90 110 follows the ~70-80 token reference
    # summaries (Spec-Bench's highlights measure 62/101; model summaries run a bit longer).
    "cnndm": LengthProfile("cnndm", _ln(660, 1272, 32, 8192), _ln(75, 110, 8, 1024)),
    # HumanEval prompt (signature + docstring) / canonical solution.
    "humaneval": LengthProfile("humaneval", _ln(118, 226, 16, 2048), _ln(46, 108, 4, 1024)),
    # MT-bench turn-1 question; the output 250/500 is a guess (chat answers of a few paragraphs;
    # MT-bench has no reference answers for most categories).
    "mtbench": LengthProfile("mtbench", _ln(38, 181, 4, 4096), _ln(250, 500, 8, 4096)),
    # ShareGPT first reply is measured; the prompt 150/600 is a guess (first user turns are
    # mostly short questions with a long tail of pasted text).
    "sharegpt": LengthProfile("sharegpt", _ln(150, 600, 4, 8192), _ln(242, 548, 4, 4096)),
    # Fixed lengths for controlled experiments.
    "synthetic": LengthProfile("synthetic", LengthDist.fixed(128), LengthDist.fixed(128)),
}

ALIASES: dict[str, str] = {
    "cnn_dailymail": "cnndm",
    "cnn/dm": "cnndm",
    "cnn-dm": "cnndm",
    "human-eval": "humaneval",
    "human_eval": "humaneval",
    "mt-bench": "mtbench",
    "mt_bench": "mtbench",
}


def canonical_name(name: str) -> str | None:
    """The built-in profile name for `name` (case-insensitive, aliases allowed), else None."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    return key if key in PROFILES else None


def length_profile(
    name: str,
    prompt: Mapping[str, Any] | LengthDist | None = None,
    output: Mapping[str, Any] | LengthDist | None = None,
) -> LengthProfile:
    """A built-in profile by name, with the prompt and/or output distribution overridden.

    An override is a LengthDist or a dict: {"fixed": n}, {"p50": a, "p90": b[, "min", "max"]}
    or {"values": [...]}.
    """
    key = canonical_name(name) if isinstance(name, str) else None
    if key is None:
        known = ", ".join(sorted(PROFILES)) + "; aliases: " + ", ".join(sorted(ALIASES))
        raise ConfigError(f"unknown length profile {name!r} (known: {known})")
    profile = PROFILES[key]
    if prompt is not None:
        profile = replace(profile, prompt=parse_length_dist(prompt, "prompt"))
    if output is not None:
        profile = replace(profile, output=parse_length_dist(output, "output"))
    return profile


def parse_length_dist(spec: Mapping[str, Any] | LengthDist, where: str = "length") -> LengthDist:
    """A LengthDist from a config dict; errors name `where` and the offending key."""
    if isinstance(spec, LengthDist):
        return spec
    if not isinstance(spec, Mapping):
        raise ConfigError(
            f"{where}: expected a mapping like {{'p50': 100, 'p90': 200}}, got {spec!r}"
        )
    keys = set(spec)
    try:
        if "fixed" in keys:
            _only(keys, {"fixed"}, where)
            return LengthDist.fixed(spec["fixed"])
        if "values" in keys:
            _only(keys, {"values"}, where)
            values = spec["values"]
            if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
                raise ConfigError(f"values must be a list of positive integers, got {values!r}")
            return LengthDist.empirical(values)
        if "p50" in keys or "p90" in keys:
            _only(keys, {"p50", "p90", "min", "max"}, where)
            for required in ("p50", "p90"):
                if required not in keys:
                    raise ConfigError(f"length {required} is required (lognormal: p50 and p90)")
            return LengthDist.lognormal(
                spec["p50"], spec["p90"], spec.get("min", 1), spec.get("max", DEFAULT_MAX_TOKENS)
            )
    except ConfigError as exc:
        msg = str(exc)
        if msg.startswith(f"{where}."):
            raise
        if msg.startswith("length "):  # "length p50 must be ..." -> "output.p50 must be ..."
            raise ConfigError(f"{where}.{msg.removeprefix('length ')}") from None
        raise ConfigError(f"{where}: {msg}") from None
    raise ConfigError(
        f"{where}: expected one of 'fixed', 'values' or 'p50'/'p90', got keys {sorted(keys)}"
    )
