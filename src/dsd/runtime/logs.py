"""Structured logging for the runtime servers: one JSON object per line (or plain text),
with repeated lines rate-limited so that a fault in a loop cannot fill the disk."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time

# Loggers outside `dsd` that can repeat a line per connection or per accept attempt.
NOISY_LOGGERS = ("asyncio", "uvicorn.error", "grpc._cython.cygrpc")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": round(time.time(), 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        extra = getattr(record, "dsd", None)
        if isinstance(extra, dict):
            out.update(extra)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(out, default=str)


class RepeatFilter(logging.Filter):
    """Lets the first record of each (logger, message) through per `window_s`; counts the
    rest and reports the count on the next one let through. Floods are one fault in a loop
    (the same accept error, the same refused peer), so identical lines are what is cut;
    lines that differ (one per request) pass."""

    def __init__(self, window_s: float = 10.0, max_keys: int = 1024,
                 clock=time.monotonic) -> None:
        super().__init__()
        self.window_s = window_s
        self.clock = clock
        self.max_keys = max_keys
        self._seen: dict[tuple[str, str], list] = {}  # key -> [window start, suppressed]
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True  # info lines (one per request) are not the flood risk
        key = (record.name, record.getMessage()[:200])
        now = self.clock()
        with self._lock:
            state = self._seen.get(key)
            if state is not None and now - state[0] < self.window_s:
                state[1] += 1
                return False
            if len(self._seen) >= self.max_keys:
                self._seen.clear()
            suppressed = state[1] if state is not None else 0
            self._seen[key] = [now, 0]
        if suppressed:
            record.msg = f"{record.msg} [{suppressed} similar lines suppressed]"
        return True


_REPEATS = RepeatFilter()


def install_repeat_filter() -> None:
    """Rate-limit repeated warnings of the libraries under the runtime (dsd's own records
    pass the filter on the handler `setup_logging` installs)."""
    for name in NOISY_LOGGERS:
        logger = logging.getLogger(name)
        if _REPEATS not in logger.filters:
            logger.addFilter(_REPEATS)


def setup_logging(level: str = "info", json_logs: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_logs else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_REPEATS)  # records from dsd.* children reach it through propagation
    root = logging.getLogger("dsd")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    install_repeat_filter()
