"""Hardware and model catalog: GPU specs and model architectures, looked up by name."""

from dsd.catalog.catalog import Catalog, builtin_catalog, load_catalog
from dsd.catalog.gpu import GpuSpec
from dsd.catalog.model import ModelSpec

__all__ = ["Catalog", "GpuSpec", "ModelSpec", "builtin_catalog", "load_catalog"]
