"""DSD-Sim: discrete-event simulation of edge drafters and cloud verifiers."""

from dsd.sim.run import Result, simulate

__all__ = ["Result", "simulate"]
