"""Metric definitions, streaming collection, the per-request table.

`request_schema()` and `timeseries_schema()` build the Arrow schemas on first use:
importing this package does not import pyarrow."""

from dsd.metrics.collector import MetricsCollector
from dsd.metrics.sketch import QuantileSketch
from dsd.metrics.table import (
    REQUEST_COLUMNS,
    RequestTableWriter,
    read_request_table,
    request_schema,
)
from dsd.metrics.timeseries import TimeSeriesRecorder, timeseries_schema

__all__ = ["MetricsCollector", "QuantileSketch", "REQUEST_COLUMNS", "RequestTableWriter",
           "TimeSeriesRecorder", "read_request_table", "request_schema", "timeseries_schema"]
