"""dsd: distributed speculative decoding across edge and cloud.

    >>> import dsd
    >>> result = dsd.simulate("examples/quickstart.yaml")
    >>> result.summary["throughput_rps"]
"""

__version__ = "0.1.0"


def simulate(*args, **kwargs):  # noqa: ANN002, ANN003 - re-exported lazily (see dsd.sim.run)
    from dsd.sim.run import simulate as _simulate

    return _simulate(*args, **kwargs)


simulate.__doc__ = "Run one scenario; see `dsd.sim.run.simulate`."


def load_config(*args, **kwargs):  # noqa: ANN002, ANN003
    from dsd.config import load_config as _load

    return _load(*args, **kwargs)
