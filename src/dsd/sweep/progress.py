"""A progress bar with ETA for sweeps; silent when stderr is not a terminal or when
disabled, so logs and CI output stay clean."""

from __future__ import annotations

import sys
from typing import Any


class SweepProgress:
    def __init__(self, total: int, *, enabled: bool = True, description: str = "sweep",
                 skipped: int = 0) -> None:
        self.errors = 0
        self._bar: Any = None
        if not (enabled and total and sys.stderr.isatty()):
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[errors]} errors"), TimeElapsedColumn(), TextColumn("ETA"),
            TimeRemainingColumn(), console=Console(stderr=True), transient=False,
        )
        note = f" ({skipped} already done)" if skipped else ""
        self._task = self._bar.add_task(description + note, total=total, errors=0)
        self._bar.start()

    def advance(self, ok: bool) -> None:
        self.errors += not ok
        if self._bar is not None:
            self._bar.update(self._task, advance=1, errors=self.errors)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
