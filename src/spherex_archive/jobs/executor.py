"""Where jobs run: the interface the job engine drives, and the choice made by the settings."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

from spherex_archive.config import Settings
from spherex_archive.jobs.base import Outcome, TaskSpec

Done = Callable[[str, Outcome], None]
"""Called once per submitted job (from an executor thread) with its id and how it ended."""


class Executor(ABC):
    """Runs tasks somewhere else than the serving thread, and stops them on request."""

    capacity: int
    """Jobs it runs at once; the engine never submits more."""

    @abstractmethod
    def submit(self, spec: TaskSpec, done: Done) -> None:
        """Start the job; ``done`` is called when it ends, however it ends (a job stopped by
        :meth:`stop` ends as ``Outcome("stopped")``)."""

    @abstractmethod
    def stop(self, job_id: str) -> None:
        """Ask the job to stop (its ``should_stop`` turns true), then make it stop where the
        executor can. Also called for jobs this executor never ran (a process that died left
        them): it stops what it can reach of them, and ignores the rest."""

    @abstractmethod
    def shutdown(self) -> None:
        """Stop every job and wait until each ``done`` has been called."""


def make_executor(settings: Settings, tasks: Sequence[str] = ()) -> Executor:
    """The executor the settings choose; ``tasks``: modules of the tasks it will run."""
    if settings.job_executor == "dask":
        if not settings.dask_scheduler:
            raise ValueError("job_executor = 'dask' needs dask_scheduler (tcp://host:8786)")
        from spherex_archive.jobs.dask_executor import DaskExecutor

        return DaskExecutor(settings.dask_scheduler, settings.job_workers)
    from spherex_archive.jobs.local import LocalExecutor

    return LocalExecutor(settings.job_workers, preload=tasks)
