"""The profiling grid: which (op, batch, context, query) points `dsd profile` measures."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from dsd.errors import ConfigError


@dataclass(frozen=True)
class ProfileGrid:
    """Axes of one model's profile. Decode is query 1, verify is query gamma+1 for each
    gamma; prefill is measured at context 0 over `prompts` (prompt lengths)."""

    batch_sizes: tuple[int, ...] = (1, 2, 4)
    contexts: tuple[int, ...] = (64, 256, 1024)
    gammas: tuple[int, ...] = (1, 2, 4, 6, 8)
    prompts: tuple[int, ...] = (16, 64, 256, 1024)

    def __post_init__(self) -> None:
        for name in ("batch_sizes", "contexts", "gammas", "prompts"):
            values = getattr(self, name)
            if not values or any(v < 1 for v in values):
                raise ConfigError(f"profile grid: {name} must be positive integers")
            object.__setattr__(self, name, tuple(sorted(set(values))))

    @property
    def queries(self) -> tuple[int, ...]:
        """Query tokens per sequence of the decode/verify grid: 1 and gamma+1."""
        return tuple(sorted({1, *(g + 1 for g in self.gammas)}))

    def points(self) -> Iterator[tuple[str, int, int, int]]:
        """(op, batch_size, context_len, query_tokens), prefill first."""
        for b in self.batch_sizes:
            for p in self.prompts:
                yield "prefill", b, 0, p
        for b in self.batch_sizes:
            for c in self.contexts:
                for q in self.queries:
                    yield ("decode" if q == 1 else "verify"), b, c, q

    def held_out(self) -> Iterator[tuple[str, int, int, int]]:
        """Points between grid points (midpoints of neighbours on each axis), for
        `dsd profile --validate`: each varies one or more axes off the grid."""
        bs = _mids(self.batch_sizes) or self.batch_sizes[:1]
        cs = _mids(self.contexts) or self.contexts[:1]
        ps = _mids(self.prompts) or self.prompts[:1]
        qs = _mids(self.queries)
        for b in sorted({self.batch_sizes[0], *bs}):
            for p in ps:
                yield "prefill", b, 0, p
        for b in sorted({self.batch_sizes[0], *bs}):
            for c in cs:
                for q in sorted({1, *qs}):
                    yield ("decode" if q == 1 else "verify"), b, c, q


def _mids(values: Sequence[int]) -> list[int]:
    """Integer midpoints strictly between neighbours (none for adjacent integers)."""
    out = []
    for lo, hi in zip(values, values[1:], strict=False):
        mid = (lo + hi) // 2
        if lo < mid < hi:
            out.append(mid)
    return out


def parse_ints(text: str, what: str) -> tuple[int, ...]:
    """'1,2,4' -> (1, 2, 4); a clear error naming the option otherwise."""
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"{what}: expected comma-separated integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise ConfigError(f"{what}: expected positive integers, got {text!r}")
    return values
