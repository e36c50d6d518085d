"""The output of `dsd calibrate latency`: a catalog overlay with fitted coefficients, and a
report of how well they fit and what they say about the spec rule."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml

from dsd import __version__
from dsd.catalog import Catalog
from dsd.catalog.gpu import OpCoefficients
from dsd.perf.coefficients import rule_fractions


def overlay(fitted: dict[str, OpCoefficients]) -> dict:
    """{gpus: {NAME: {ops: {...}}}}: what a catalog file adds for these GPUs."""
    return {"gpus": {name: {"ops": c.given()} for name, c in sorted(fitted.items())}}


def write_overlay(path: str | Path, fitted: dict[str, OpCoefficients],
                  folders: Sequence[str]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (
        f"# Written by `dsd calibrate latency` (dsd {__version__}) from VIDUR operator "
        f"profiles in: {', '.join(map(str, folders))}.\n"
        "# Operator-level latency coefficients per GPU (docs/latency.md). Use it as a "
        "catalog overlay:\n# `catalog: [this file]` in a scenario, or `--catalog` on the "
        "command line.\n")
    text = yaml.safe_dump(overlay(fitted), sort_keys=False, width=100)
    path.write_text(header + text)
    return path


def summarize(fitted: dict[str, OpCoefficients], errors: dict[str, float],
              catalog: Catalog) -> list[str]:
    """One line per fitted GPU (in-sample error of the forward's non-attention time), then
    the spec fractions whose means the rule for unprofiled GPUs uses."""
    lines: list[str] = []
    fractions: dict[str, list[float]] = {}
    for name, c in sorted(fitted.items()):
        lines.append(f"{name}: {c.matmul_tflops:g} TFLOP/s, {c.matmul_gbps:g} GB/s matmul, "
                     f"{c.elementwise_gbps:g} GB/s elementwise, p={c.smoothness:g}, kernels "
                     f"{c.matmul_kernel_us:g}/{c.elementwise_kernel_us:g} us"
                     + (f", all-reduce {c.allreduce_us:g} us + {c.allreduce_gbps:g} GB/s"
                        if c.allreduce_gbps else "")
                     + f"; in-sample MAPE {errors.get(name, float('nan')):.1%}")
        for key, value in rule_fractions(catalog.gpu(name), c).items():
            fractions.setdefault(key, []).append(value)
    if fractions:
        means = ", ".join(f"{k}={np.mean(v):.3g}" for k, v in fractions.items())
        lines.append(f"spec-rule means over these GPUs (dsd.perf.coefficients): {means}")
    return lines
