"""What a job is, for the services that define one and the executors that run it.

A service describes its asynchronous work as a :class:`JobKind`: a name, the dotted path of a
task function, and how its errors are shown. The task is a plain module-level function
``run(ctx: TaskContext) -> list[Result]``, found by its path in whatever process runs it (a
local worker process or a Dask worker), so nothing but the :class:`TaskSpec` is pickled. It
writes its result files into ``ctx.workdir`` and names them; it raises :class:`JobFailure` (or
any exception) to end the job in ERROR.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger(__name__)


class Phase(StrEnum):
    """UWS 1.1 execution phases (HELD, SUSPENDED and ARCHIVED are never used here)."""

    PENDING = "PENDING"
    QUEUED = "QUEUED"
    EXECUTING = "EXECUTING"
    COMPLETED = "COMPLETED"
    ERROR = "ERROR"
    ABORTED = "ABORTED"
    UNKNOWN = "UNKNOWN"
    HELD = "HELD"
    SUSPENDED = "SUSPENDED"
    ARCHIVED = "ARCHIVED"


ACTIVE = frozenset({Phase.PENDING, Phase.QUEUED, Phase.EXECUTING})
"""Phases a job can still leave: WAIT blocks only in these, ABORT applies only to these."""


@dataclass(frozen=True)
class Result:
    """A file the task wrote in its working directory, served at ``{job}/results/{id}``."""

    id: str
    filename: str
    """Relative to ``ctx.workdir``."""
    mime_type: str


class JobFailure(Exception):
    """Raised by a task to end its job in ERROR with ``message`` as the error summary;
    ``transient`` says that the same job might succeed later (UWS errorSummary type)."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient


def text_error(message: str) -> tuple[bytes, str]:
    """The default ``{job}/error`` document: the message as plain text."""
    return message.rstrip().encode() + b"\n", "text/plain; charset=utf-8"


@dataclass(frozen=True)
class JobKind:
    """One service's kind of job (``tap``, ``soda``, ...)."""

    name: str
    task: str
    """``module:function`` of the task, importable where jobs run."""
    error_document: Callable[[str], tuple[bytes, str]] = text_error
    """(body, media type) of ``{job}/error`` for a job in ERROR, from its error message; sent
    with status 200 (TAP: a VOTable error document)."""
    duration: int | None = None
    """Default execution duration in seconds (0: unlimited); None: the ``job_duration``
    setting."""
    max_duration: int | None = None
    """Longest execution duration a client may ask for (0: unlimited); None: the
    ``job_max_duration`` setting."""


_KINDS: dict[str, JobKind] = {}


def register_kind(kind: JobKind) -> None:
    """Make ``kind`` known to the job engines of this process (``uws_router`` does it). An app
    built again may register its kinds again; two tasks under one name are refused."""
    known = _KINDS.get(kind.name)
    if known is not None and known.task != kind.task:
        raise ValueError(f"job kind {kind.name!r} is {known.task}, not {kind.task}")
    _KINDS[kind.name] = kind


def kind_named(name: str) -> JobKind | None:
    return _KINDS.get(name)


def known_kinds() -> list[JobKind]:
    return list(_KINDS.values())


# --------------------------------------------------------------------------------------------
# What runs in the worker


@dataclass(frozen=True)
class TaskSpec:
    """Everything a worker needs to run one job: plain data, pickled to the worker."""

    job_id: str
    task: str
    parameters: dict[str, list[str]]
    workdir: str
    settings: dict[str, Any]
    uploads: dict[str, str] = field(default_factory=dict)
    """Part name -> file name in ``workdir`` of the files posted with the job."""


PROGRESS_FILE = ".progress.json"
"""Where ``TaskContext.progress`` writes, in the job's directory: the server reads it for the
job document, whichever machine the task runs on (the directory is shared with Dask
workers)."""


class TaskContext:
    """What a task gets: its job, its parameters and directory, the deployment's settings, and
    a way to learn that it should stop."""

    def __init__(self, spec: TaskSpec, should_stop: Callable[[], bool]) -> None:
        self.job_id = spec.job_id
        self.parameters: dict[str, list[str]] = spec.parameters
        """Names upper-cased (as ``server.dali.dali_params`` gives them), values as sent."""
        self.workdir = Path(spec.workdir)
        """The job's own directory: uploads are there, results go there."""
        self.settings: dict[str, Any] = spec.settings
        """``Settings.model_dump()`` of the deployment (open the catalogue by its URL)."""
        self.uploads: dict[str, Path] = {
            name: self.workdir / filename for name, filename in spec.uploads.items()
        }
        """Files posted with the job, by multipart part name (``UPLOAD=t,param:x`` -> ``x``)."""
        self._should_stop = should_stop

    def should_stop(self) -> bool:
        """True once the job is aborted or over its execution duration: return (or raise)
        soon. Check it between steps; a local worker process is killed a little later
        anyway, a Dask task is not."""
        return self._should_stop()

    def progress(self, fraction: float, note: str = "") -> None:
        """Tell clients how far the job got (shown in the job document's jobInfo)."""
        path = self.workdir / PROGRESS_FILE
        scratch = path.with_suffix(".tmp")
        scratch.write_text(json.dumps({"fraction": float(fraction), "note": note}))
        os.replace(scratch, path)  # readers never see half a file


@dataclass(frozen=True)
class Outcome:
    """How a run ended, as an executor reports it."""

    status: Literal["completed", "failed", "stopped"]
    results: tuple[Result, ...] = ()
    message: str = ""
    transient: bool = False


def load_task(path: str) -> Callable[[TaskContext], list[Result]]:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def run_task(spec: TaskSpec, should_stop: Callable[[], bool]) -> Outcome:
    """Run the task of ``spec`` here and now; every way it can end becomes an Outcome."""
    try:
        results = load_task(spec.task)(TaskContext(spec, should_stop))
    except JobFailure as failure:
        return Outcome("failed", message=failure.message, transient=failure.transient)
    except Exception as error:
        log.exception("job %s failed", spec.job_id)
        return Outcome("failed", message=str(error) or type(error).__name__)
    if should_stop():
        return Outcome("stopped")
    if not isinstance(results, list | tuple) or not all(isinstance(r, Result) for r in results):
        return Outcome("failed", message=f"the task {spec.task} did not return a list of Result")
    return Outcome("completed", results=tuple(results))
