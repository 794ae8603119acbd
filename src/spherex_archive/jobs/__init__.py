"""Asynchronous jobs (UWS 1.1) shared by TAP async, SODA async, bulk cutouts and
spectrophotometry: the kinds of job and their tasks (``base``), their records in the catalogue
(``store``), where they run (``executor``: ``local`` processes or ``dask_executor``) and the
engine that drives them (``engine``). ``protocols/uws.py`` serves them over HTTP.

A service defines a :class:`JobKind` and mounts ``protocols.uws.uws_router(prefix, kind)``; the
app enters :func:`lifespan` while it serves.
"""

from spherex_archive.jobs.base import (
    JobFailure,
    JobKind,
    Phase,
    Result,
    TaskContext,
    text_error,
)
from spherex_archive.jobs.engine import JobEngine, durations, jobs_root, lifespan
from spherex_archive.jobs.executor import Executor, make_executor
from spherex_archive.jobs.store import Job, JobStore

__all__ = [
    "Executor",
    "Job",
    "JobEngine",
    "JobFailure",
    "JobKind",
    "JobStore",
    "Phase",
    "Result",
    "TaskContext",
    "durations",
    "jobs_root",
    "lifespan",
    "make_executor",
    "text_error",
]
