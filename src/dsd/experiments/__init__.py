"""The papers' experiments as commands: `dsd experiment NAME [--quick] [--out DIR]`.

Experiments register themselves in `dsd.experiments.registry.EXPERIMENTS` by name.
"""

from dsd.experiments.registry import (
    EXPERIMENTS,
    ExperimentContext,
    ExperimentResult,
    register_experiment,
    run_experiment,
)

__all__ = ["EXPERIMENTS", "ExperimentContext", "ExperimentResult", "register_experiment",
           "run_experiment"]
