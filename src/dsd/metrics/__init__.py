"""Metric definitions, streaming collection, the per-request table."""

from dsd.metrics.collector import MetricsCollector
from dsd.metrics.sketch import QuantileSketch
from dsd.metrics.table import (
    REQUEST_COLUMNS,
    REQUEST_SCHEMA,
    RequestTableWriter,
    read_request_table,
)
from dsd.metrics.timeseries import TIMESERIES_SCHEMA, TimeSeriesRecorder

__all__ = ["MetricsCollector", "QuantileSketch", "REQUEST_COLUMNS", "REQUEST_SCHEMA",
           "RequestTableWriter", "TIMESERIES_SCHEMA", "TimeSeriesRecorder", "read_request_table"]
