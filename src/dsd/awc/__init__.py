"""AWC training pipeline: simulator scenarios -> oracle-labelled dataset -> WC-DNN weights.

Kept import-light (no torch, no simulator) because `dsd.policies.awc` reads the packaged
`default_weights.npz` through this package. The trainable pieces live in submodules:
`scenarios` (scenario grid), `recorder` (decision-point logging window policy), `dataset`
(counterfactual oracle labels, Parquet), `train` (PyTorch), `bench` (inference timing).
"""
