"""Sim-to-real calibration: measured latency profiles, fitted acceptance, and the check of
the simulator against the runtime. Heavy imports (torch) happen inside the functions."""
