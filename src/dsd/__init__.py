"""dsd: distributed speculative decoding across edge and cloud."""

__version__ = "0.1.0"
