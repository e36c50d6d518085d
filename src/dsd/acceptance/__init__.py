"""Per-token acceptance models keyed by (draft model, target model, dataset)."""

from dsd.acceptance.fitted import fitted_table, load_fitted, write_fitted
from dsd.acceptance.models import (
    DATASET_ALPHA,
    GAMMA_MAX,
    AcceptanceModel,
    TokenAcceptance,
    resolve_acceptance,
)

__all__ = ["DATASET_ALPHA", "GAMMA_MAX", "AcceptanceModel", "TokenAcceptance",
           "fitted_table", "load_fitted", "resolve_acceptance", "write_fitted"]
