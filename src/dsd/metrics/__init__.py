"""Metric definitions, streaming collection, the per-request table.

`REQUEST_SCHEMA` and `TIMESERIES_SCHEMA` (Arrow schemas) are built on first use: importing
this package does not import pyarrow."""

from typing import Any

from dsd.metrics.collector import MetricsCollector
from dsd.metrics.sketch import QuantileSketch
from dsd.metrics.table import (
    REQUEST_COLUMNS,
    RequestTableWriter,
    read_request_table,
    request_schema,
)
from dsd.metrics.timeseries import TimeSeriesRecorder, timeseries_schema

__all__ = ["MetricsCollector", "QuantileSketch", "REQUEST_COLUMNS", "REQUEST_SCHEMA",
           "RequestTableWriter", "TIMESERIES_SCHEMA", "TimeSeriesRecorder", "read_request_table"]


def __getattr__(name: str) -> Any:
    if name == "REQUEST_SCHEMA":
        return request_schema()
    if name == "TIMESERIES_SCHEMA":
        return timeseries_schema()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
