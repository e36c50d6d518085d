"""Progress bars for long work (simulations, experiments, capacity searches): a rich bar on
stderr with elapsed time and ETA, drawn only on a terminal and only once the work has run
for `delay_s`, so short runs, logs and CI output stay clean and pay nothing (rich is
imported when the bar first draws)."""

from __future__ import annotations

import sys
import time
from typing import Any


class ProgressBar:
    """`update(completed, total=..., info=...)` as work advances; `close()` at the end.

    `count` formats the completed/total column (default "3/40 <unit>"); `info` is free text
    after it (e.g. "1,234 requests done"). With `console` (a rich Console) the bar draws
    there regardless of the terminal check (for tests)."""

    def __init__(self, description: str, total: float | None = None, *, unit: str = "",
                 enabled: bool = True, delay_s: float = 1.0, console: Any = None,
                 count: Any = None) -> None:
        self.description = description
        self.total = total
        self.unit = unit
        self.count = count or self._count
        self._enabled = enabled and (console is not None or sys.stderr.isatty())
        self._created = time.monotonic()
        self._start = self._created + delay_s
        self._console = console
        self._bar: Any = None
        self._task: Any = None

    def _count(self, completed: float, total: float | None) -> str:
        done = f"{completed:,.0f}"
        return f"{done}/{total:,.0f} {self.unit}" if total else f"{done} {self.unit}"

    def update(self, completed: float, *, total: float | None = None, info: str = "") -> None:
        if total is not None:
            self.total = total
        if not self._enabled or (self._bar is None and time.monotonic() < self._start):
            return
        fields = {"completed": completed, "total": self.total, "info": info,
                  "count": self.count(completed, self.total)}
        if self._bar is None:
            self._open(fields)
        else:
            self._bar.update(self._task, **fields)

    def _open(self, fields: dict[str, Any]) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[count]}"),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TextColumn("ETA"),
            TimeRemainingColumn(), console=self._console or Console(stderr=True),
            transient=False)
        self._task = self._bar.add_task(self.description, **fields)
        for task in self._bar.tasks:  # elapsed time counts from the start of the work
            task.start_time = self._created
        self._bar.start()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SimulationProgress(ProgressBar):
    """Simulated time against the run's duration, and requests done; after the duration,
    a draining run shows the requests still in flight."""

    def __init__(self, duration_s: float, *, description: str = "simulate",
                 enabled: bool = True, console: Any = None) -> None:
        super().__init__(description, duration_s, enabled=enabled, console=console,
                         count=lambda done, total: f"{min(done, total or done):,.1f}/"
                                                   f"{total:,.0f} simulated s")

    def __call__(self, sim_time_s: float, requests_done: int, in_flight: int) -> None:
        info = f"{requests_done:,} requests done"
        if self.total and sim_time_s > self.total:
            info += f", draining {in_flight:,} in flight"
        self.update(min(sim_time_s, self.total or sim_time_s), info=info)
