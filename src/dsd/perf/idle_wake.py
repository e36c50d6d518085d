"""The cost of a step that starts after its executor sat idle.

A step that follows an idle gap runs slower than one right after another (a core that
dropped its clock, caches and branch predictors that other work or the kernel cooled): on
one CPU core the tiny pair's 3-token verify takes 0.20 ms back to back and 0.90 ms after
10 ms of sleep. A serving loop waits on the network between rounds, so the longer the RTT,
the colder each step starts.

`dsd profile` measures it per model: one reference job (the grid's smallest verify, or its
decode burst) timed after each gap in `WAKE_GAPS_MS`, stored as the metadata line
`idle_wake.<model>: gap_ms:extra_ms,...` (extra over the back-to-back time). The profile's
own rows were timed after an idle gap of their own (the profiler sleeps as long as the last
step took, within [IDLE_MIN_S, IDLE_MAX_S]), so a simulated step of duration d that starts
`gap` after its executor's last step ends costs `extra(gap) - extra(clamp(d))` on top of
the row: more after long gaps, less back to back. The extra is additive and the same for
every shape of the model (the cold state is the core's, not the step's).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

from dsd.errors import DataError

# The profiler idles as long as the last step took, within these bounds, before each
# timed step (calibrate/profile.py): the gap every profile row already includes.
IDLE_MIN_S = 0.002
IDLE_MAX_S = 0.05
# Gaps the profiler measures the wake-up curve at.
WAKE_GAPS_MS = (0.0, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0)
META_PREFIX = "idle_wake."


class IdleWake:
    """Extra seconds a step pays after an idle gap, interpolated between measured gaps
    (flat beyond the longest)."""

    __slots__ = ("gaps", "extras")

    def __init__(self, points: Sequence[tuple[float, float]]) -> None:
        """`points`: (gap s, extra s over back to back), any order, at least one."""
        pts = sorted(points)
        if not pts:
            raise ValueError("an idle wake-up curve needs at least one point")
        self.gaps = [g for g, _ in pts]
        self.extras = [e for _, e in pts]

    def extra_s(self, gap_s: float) -> float:
        gaps = self.gaps
        i = bisect_right(gaps, gap_s)
        if i == 0:
            return self.extras[0]
        if i == len(gaps):
            return self.extras[-1]
        g0, g1 = gaps[i - 1], gaps[i]
        e0, e1 = self.extras[i - 1], self.extras[i]
        return e0 + (e1 - e0) * (gap_s - g0) / (g1 - g0)

    def adjust_s(self, gap_s: float, job_s: float) -> float:
        """What to add to a profiled job of `job_s` seconds that starts `gap_s` after its
        executor's previous job ended (negative for back-to-back jobs)."""
        profiled_gap = IDLE_MIN_S if job_s < IDLE_MIN_S else min(job_s, IDLE_MAX_S)
        # The curve was timed on one reference job: a smaller job back to back saves at
        # most half its profiled time.
        return max(self.extra_s(gap_s) - self.extra_s(profiled_gap), -0.5 * job_s)

    def format(self) -> str:
        """The metadata value: `gap_ms:extra_ms` pairs, comma-separated."""
        return ",".join(f"{g * 1e3:g}:{e * 1e3:.4f}" for g, e in zip(self.gaps, self.extras,
                                                                      strict=True))

    @classmethod
    def parse(cls, text: str, where: str) -> IdleWake:
        try:
            pairs = [item.split(":") for item in text.split(",") if item.strip()]
            points = [(float(g) / 1e3, float(e) / 1e3) for g, e in pairs]
            return cls(points)
        except ValueError:
            raise DataError(f"{where}: idle wake-up curve {text!r} is not "
                            "'gap_ms:extra_ms,...'") from None


def wake_from_metadata(metadata: dict[str, str], model: str, where: str) -> IdleWake | None:
    """The model's curve from a profile's metadata, or None when it was not measured."""
    text = metadata.get(META_PREFIX + model)
    return IdleWake.parse(text, f"{where} {META_PREFIX}{model}") if text else None
