"""Fitted acceptance files: per-position acceptance measured from runtime logs.

`dsd calibrate acceptance RUN_DIR... --out FILE.yaml` writes one; its format is

    draft: tiny-draft            # catalog names of the pair the runs used
    target: tiny-target
    dataset: synthetic
    alphas: [0.91, 0.88, ...]    # alpha_i = P(position i accepted | position i reached)
    spread: 0.05                 # std of per-session mean acceptance (0 = identical)
    rounds: 1234                 # speculation rounds behind the fit
    reached: [1234, 1100, ...]   # rounds that reached each position
    accepted: [1123, 968, ...]   # rounds that accepted each position

`load_fitted(path)` returns the entry the config's `acceptance.table` takes, so a fitted
file plugs into the simulator as `acceptance: {table: [<entry>]}` or by path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from dsd.errors import DataError

_ENTRY_KEYS = ("draft", "target", "dataset", "alphas", "spread")


def load_fitted(path: str | Path) -> dict[str, Any]:
    """Read a fitted acceptance file into an `acceptance.table` entry
    {draft, target, dataset, alphas, spread} (missing draft/target/dataset match any)."""
    p = Path(path).expanduser()
    try:
        data = yaml.safe_load(p.read_text())
    except OSError:
        raise DataError(f"fitted acceptance file {p} does not exist "
                        "(write one with `dsd calibrate acceptance`)") from None
    except yaml.YAMLError as exc:
        raise DataError(f"{p}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise DataError(f"{p}: expected a mapping with 'alphas'")
    alphas = data.get("alphas")
    if (not isinstance(alphas, list) or not alphas
            or not all(isinstance(a, int | float) and 0.0 <= a <= 1.0 for a in alphas)):
        raise DataError(f"{p}: 'alphas' must be a non-empty list of numbers in [0, 1]")
    spread = data.get("spread", 0.0)
    if not isinstance(spread, int | float) or spread < 0:
        raise DataError(f"{p}: 'spread' must be a number >= 0")
    entry = {k: data[k] for k in _ENTRY_KEYS if data.get(k) is not None}
    entry["alphas"] = [float(a) for a in alphas]
    entry["spread"] = float(spread)
    return entry


def fitted_table(paths: str | Path | list[str | Path] | None) -> list[dict[str, Any]]:
    """Table entries of one or several fitted files (for `acceptance.path`)."""
    if paths is None:
        return []
    if isinstance(paths, str | Path):
        paths = [paths]
    return [load_fitted(p) for p in paths]


def write_fitted(path: str | Path, fit: dict[str, Any]) -> Path:
    """Write a fit (as produced by `dsd.calibrate.acceptance.fit_acceptance`) as YAML."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    header = ("# Fitted by `dsd calibrate acceptance`: alphas[i] = P(draft position i+1 "
              "accepted | reached),\n# from `rounds` speculation rounds; load with "
              "dsd.acceptance.fitted.load_fitted or acceptance.path.\n")
    p.write_text(header + yaml.safe_dump(fit, sort_keys=False, default_flow_style=None))
    return p
