"""Progress bars (rich) for the long commands: `run` (an overall bar with ETA and tokens/s, one bar per task),
`preprocess` (one bar over the tasks, plus a bar per download), `arena judge` (verdicts of a known total).

Each class is a context manager whose __enter__ returns the callback the library function takes, so the compute
side only calls plain functions and never draws."""
from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

OVERALL = "all tasks"


class RunProgress:
    """`jleval run`: the overall bar (samples done of all, ETA, generated tokens per second) above one bar per
    task. The callback follows jleval.run.ProgressFn: (task, None, total, cached) once per task before generation,
    then (task, completion, total, 0) per completion written."""

    def __init__(self, console: Console) -> None:
        self._p = Progress(TextColumn("{task.description:>22}"), BarColumn(), MofNCompleteColumn(),
                           TimeRemainingColumn(compact=True, elapsed_when_finished=True),
                           TextColumn("{task.fields[tps]}"),
                           console=console)
        self._ids: dict[str, TaskID] = {}
        self._tokens = 0
        self._t0: float | None = None

    def __enter__(self):
        self._p.start()
        return self.update

    def _task(self, name: str, total: int, cached: int) -> TaskID:
        if OVERALL not in self._ids:
            self._ids[OVERALL] = self._p.add_task(f"[bold]{OVERALL}", total=0, completed=0, tps="")
        overall = self._p.tasks[self._ids[OVERALL]]
        self._p.update(self._ids[OVERALL], total=(overall.total or 0) + total, completed=overall.completed + cached)
        return self._p.add_task(name, total=total, completed=cached, tps="")

    def update(self, task: str, completion: Any, total: int, cached: int = 0) -> None:
        if task not in self._ids:
            self._ids[task] = self._task(task, total, cached)
        if completion is None:  # announced before generation starts: the rate is counted from here
            self._t0 = time.perf_counter()
            return
        self._tokens += completion.completion_tokens or 0
        rate = f"{self._tokens / max(time.perf_counter() - (self._t0 or time.perf_counter()), 1e-6):,.0f} tok/s"
        self._p.update(self._ids[task], advance=1)
        self._p.update(self._ids[OVERALL], advance=1, tps=rate)

    def __exit__(self, *exc) -> None:
        self._p.stop()


class PreprocessProgress:
    """`jleval preprocess`: a bar over the tasks naming the one being built, and a bar per download as it starts
    (one live display: rich allows no second). __enter__ returns (on_task, reporter) for jaster.preprocess."""

    def __init__(self, console: Console) -> None:
        self._p = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                           console=console)
        self._tasks: TaskID | None = None
        self._downloads: dict[str, TaskID] = {}

    def __enter__(self):
        self._p.start()
        return self.on_task, self.download

    def on_task(self, done: int, total: int, name: str) -> None:
        label = f"preprocessing {name} ({done + 1}/{total})" if name else f"preprocessed {total} tasks"
        if self._tasks is None:
            self._tasks = self._p.add_task(label, total=total)
        self._p.update(self._tasks, completed=done, total=total, description=label)

    def download(self, label: str, done: int, total: int | None) -> None:
        size = f"{done / 1e6:,.1f}" + (f" of {total / 1e6:,.1f} MB" if total else " MB")
        if label not in self._downloads:
            self._downloads[label] = self._p.add_task(label, total=total)
        self._p.update(self._downloads[label], completed=done, total=total, description=f"downloading {label} {size}")

    def __exit__(self, *exc) -> None:
        self._p.stop()


class JudgeProgress:
    """`jleval arena judge`: verdicts written of the pass's known total, with ETA."""

    def __init__(self, console: Console) -> None:
        self._p = Progress(TextColumn("judging"), BarColumn(), MofNCompleteColumn(),
                           TimeRemainingColumn(compact=True, elapsed_when_finished=True), console=console)
        self._id: TaskID | None = None

    def __enter__(self):
        self._p.start()
        self._id = self._p.add_task("judging", total=None)
        return self.update

    def update(self, done: int, total: int) -> None:
        if self._id is not None:  # set on entering
            self._p.update(self._id, completed=done, total=total)

    def __exit__(self, *exc) -> None:
        self._p.stop()
