"""Per-token acceptance models keyed by (draft model, target model, dataset)."""

from dsd.acceptance.models import (
    DATASET_ALPHA,
    GAMMA_MAX,
    AcceptanceModel,
    TokenAcceptance,
    resolve_acceptance,
)

__all__ = ["DATASET_ALPHA", "GAMMA_MAX", "AcceptanceModel", "TokenAcceptance",
           "resolve_acceptance"]
