"""The job engine of one serving process: it starts queued jobs, enforces execution durations,
stops aborted and deleted jobs, records how jobs end, and destroys expired ones.

Every serving process (each uvicorn worker, each host) has one engine over the shared
catalogue. The database says what each job is; an engine acts on the jobs it claimed. A job
another process aborts or deletes is noticed within a second; queued jobs go to whichever
engine has a free slot, at most ``job_owner_limit`` executing per owner over all processes.

Each engine keeps a row in ``job_runner`` with a heartbeat. When an engine starts it fails the
EXECUTING jobs of every engine that is gone (ERROR, "the server stopped while the job ran"): a
runner on this host whose process no longer exists (or whose pid is now ours: a restarted
container), or one whose heartbeat is older than ``STALE``. A clean shutdown does the same for
its own jobs at once. QUEUED jobs belong to no engine and simply wait for the next one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from spherex_archive.catalogue import open_catalogue
from spherex_archive.config import Settings
from spherex_archive.jobs.base import (
    ACTIVE,
    JobKind,
    Outcome,
    Phase,
    TaskSpec,
    kind_named,
    known_kinds,
)
from spherex_archive.jobs.executor import Executor, make_executor
from spherex_archive.jobs.store import Job, JobStore, StoredResult, now_text, parse_time

log = logging.getLogger(__name__)

TICK = 1.0
"""Seconds between two looks at the database for work other processes left (queued jobs,
aborts, deletions); work of this process wakes the engine at once."""
HEARTBEAT = 15.0
STALE = 120.0
"""Seconds without a heartbeat after which another host's engine is taken for dead."""
SWEEP = 60.0
"""Most seconds between two searches for expired jobs (the engine also wakes at the earliest
destruction time it knows)."""
ORPHAN_AGE = 3600.0
"""Seconds after which a job folder with no job record is removed (at start)."""
SERVER_STOPPED = "the server stopped while the job ran"

_HERE: set[str] = set()
"""Runners of the engines running in this process: a runner row with our pid is a previous
process (a restarted container) unless it is one of these."""


def jobs_root(settings: Settings) -> Path:
    """The folder of job directories: ``jobs_dir``, else ``jobs`` beside a SQLite
    catalogue, else ``./jobs``."""
    if settings.jobs_dir:
        return Path(settings.jobs_dir)
    if settings.catalogue.startswith("sqlite:"):
        path = settings.catalogue.removeprefix("sqlite://").removeprefix("/")
        return Path(path).parent / "jobs"
    return Path("jobs")


def durations(kind: JobKind, settings: Settings) -> tuple[int, int]:
    """(default, most) execution duration of ``kind``'s jobs, in seconds (0: unlimited)."""
    default = settings.job_duration if kind.duration is None else kind.duration
    most = settings.job_max_duration if kind.max_duration is None else kind.max_duration
    if most and (default == 0 or default > most):
        default = most
    return default, most


@dataclass
class _Running:
    duration: int
    deadline: float | None
    """time.monotonic() after which the job is aborted."""
    stopping: bool = False


class JobEngine:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = jobs_root(settings)
        self.store = JobStore(open_catalogue(settings.catalogue))
        self.runner = uuid.uuid4().hex
        self.host = socket.gethostname()
        self._executor: Executor | None = None
        self._running: dict[str, _Running] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_sweep = 0.0
        self._next_heartbeat = 0.0
        self._watchers: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}

    @property
    def executor(self) -> Executor:
        assert self._executor is not None, "the engine is not started"
        return self._executor

    # --- life ------------------------------------------------------------------------------

    def start(self) -> None:
        """Create the tables if needed, fail the jobs of engines that are gone, and start."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.store.prepare()
        self.store.heartbeat(self.runner, self.host, os.getpid())
        _HERE.add(self.runner)
        self._next_heartbeat = time.monotonic() + HEARTBEAT
        tasks = [k.task.partition(":")[0] for k in known_kinds()]
        self._executor = make_executor(self.settings, tasks)
        self._recover()
        self._remove_orphans()
        self._thread = threading.Thread(target=self._loop, name="job engine", daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        """Stop: jobs executing here end in ERROR (a restart will not resume them)."""
        self._closing.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            running = list(self._running)
        for job_id in running:
            self._end(job_id, Phase.ERROR, error_message=SERVER_STOPPED, error_type="transient")
        if self._executor is not None:
            self._executor.shutdown()
        self.store.forget_runners([self.runner])
        _HERE.discard(self.runner)
        self.store.catalogue.close()

    # --- requests from the protocol layer (threads) ---------------------------------------

    def workdir(self, job_id: str) -> Path:
        return self.root / job_id

    def run(self, job_id: str) -> bool:
        """PENDING -> QUEUED (visible at once); False if the job was not PENDING."""
        if not self.store.update(
            job_id, expect=[Phase.PENDING], phase=Phase.QUEUED, queued_time=now_text()
        ):
            return False
        self.changed(job_id)
        return True

    def queued(self, job_id: str) -> None:
        """A job was created QUEUED: start it as soon as a slot is free."""
        self.changed(job_id)

    def abort(self, job_id: str) -> bool:
        """Any active phase -> ABORTED, the work stopped; False if the job was not active."""
        if not self._end(job_id, Phase.ABORTED):
            return False
        self._stop(job_id)
        return True

    def delete(self, job_id: str) -> bool:
        """Forget the job and remove its files (once its work has stopped, if it runs)."""
        job = self.store.get(job_id)
        if job is None or not self.store.delete(job_id):
            return False
        with self._lock:
            here = job_id in self._running
        if here:
            self._stop(job_id)  # its files go when the executor reports the end
        elif job.phase != Phase.EXECUTING:
            self._remove_files(job_id)
        # Executing in another process: that engine sees the record gone, stops the job and
        # removes the files.
        self.changed(job_id)
        return True

    def destruction_changed(self, destruction: str) -> None:
        """Wake at ``destruction`` if that is earlier than the next sweep."""
        delay = (parse_time(destruction) - datetime.now(UTC)).total_seconds()
        with self._lock:
            self._next_sweep = min(self._next_sweep, time.monotonic() + max(delay, 0.0))
        self._wake.set()

    # --- phase-change notifications (for WAIT) --------------------------------------------

    def changed(self, job_id: str) -> None:
        """Wake the engine and whoever waits on the job (any thread)."""
        self._wake.set()
        with self._lock:
            watchers = list(self._watchers.get(job_id, ()))
        for loop, event in watchers:
            loop.call_soon_threadsafe(event.set)

    @asynccontextmanager
    async def watching(self, job_id: str) -> AsyncIterator[asyncio.Event]:
        """An event set when this process changes the job (others: poll)."""
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._watchers.setdefault(job_id, set()).add(entry)
        try:
            yield entry[1]
        finally:
            with self._lock:
                self._watchers[job_id].discard(entry)
                if not self._watchers[job_id]:
                    del self._watchers[job_id]

    # --- the loop --------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._closing.is_set():
            with self._lock:
                pause = min(TICK, max(self._next_sweep - time.monotonic(), 0.0))
            self._wake.wait(pause)
            self._wake.clear()
            if self._closing.is_set():
                break
            try:
                self._tick()
            except Exception:  # a database hiccup must not end the engine
                log.exception("job engine")
                self._closing.wait(TICK)

    def _tick(self) -> None:
        now = time.monotonic()
        if now >= self._next_heartbeat:
            self.store.heartbeat(self.runner, self.host, os.getpid())
            self._next_heartbeat = now + HEARTBEAT
        self._enforce()
        self._dispatch()
        with self._lock:
            due = now >= self._next_sweep
        if due:
            self._sweep()

    def _enforce(self) -> None:
        """Abort overdue jobs; stop the ones aborted or deleted by another process."""
        with self._lock:
            running = dict(self._running)
        if not running:
            return
        now = time.monotonic()
        for job_id, entry in running.items():
            if entry.deadline is not None and now > entry.deadline and not entry.stopping:
                info = f"the job ran longer than its execution duration ({entry.duration} s)"
                if self._end(job_id, Phase.ABORTED, info=info):
                    log.info("job %s aborted: %s", job_id, info)
                self._stop(job_id)
        phases = self.store.phases_of(self.runner)
        for job_id, entry in running.items():
            if job_id not in phases and not entry.stopping:
                self._stop(job_id)

    def _dispatch(self) -> None:
        with self._lock:
            slots = self.executor.capacity - len(self._running)
        kinds = [k.name for k in known_kinds()]
        if slots <= 0 or not self.store.queued_count(kinds):
            return
        for job in self.store.claim(self.runner, kinds, slots, self.settings.job_owner_limit):
            self._start(job)

    def _start(self, job: Job) -> None:
        kind = kind_named(job.kind)
        assert kind is not None  # claimed only among the known kinds
        deadline = time.monotonic() + job.execution_duration if job.execution_duration > 0 else None
        with self._lock:
            self._running[job.job_id] = _Running(job.execution_duration, deadline)
        spec = TaskSpec(
            job_id=job.job_id,
            task=kind.task,
            parameters=job.parameters,
            workdir=str(self.workdir(job.job_id).resolve()),
            settings=self.settings.model_dump(),
            uploads=job.uploads,
        )
        log.info("job %s (%s) starts", job.job_id, job.kind)
        try:
            self.executor.submit(spec, self._finished)
        except Exception as error:
            log.exception("job %s could not start", job.job_id)
            with self._lock:
                self._running.pop(job.job_id, None)
            self._end(job.job_id, Phase.ERROR, error_message=f"the job could not start: {error}")
            return
        with self._lock:
            entry = self._running.get(job.job_id)
            stopped_meanwhile = entry is not None and entry.stopping
        if stopped_meanwhile:  # aborted while the executor started it: it did not know it yet
            self.executor.stop(job.job_id)
        self.changed(job.job_id)

    def _finished(self, job_id: str, outcome: Outcome) -> None:
        """The executor's report: record how the job ended, unless it ended already (aborted,
        deleted, failed by a shutdown)."""
        with self._lock:
            self._running.pop(job_id, None)
        try:
            if outcome.status == "completed":
                try:
                    results = self._stored_results(job_id, outcome)
                except ValueError as error:
                    self._end(job_id, Phase.ERROR, error_message=str(error))
                else:
                    self._end(job_id, Phase.COMPLETED, results=results)
            elif outcome.status == "failed":
                self._end(
                    job_id,
                    Phase.ERROR,
                    error_message=outcome.message,
                    error_type="transient" if outcome.transient else "fatal",
                )
            else:  # stopped, though nothing here ended it: say so
                self._end(job_id, Phase.ERROR, error_message="the job was stopped")
            if self.store.get(job_id) is None:  # deleted while it ran
                self._remove_files(job_id)
        except Exception:
            log.exception("recording the end of job %s failed", job_id)
        self.changed(job_id)

    def _stored_results(self, job_id: str, outcome: Outcome) -> list[StoredResult]:
        workdir = self.workdir(job_id).resolve()
        stored = []
        for result in outcome.results:
            path = (workdir / result.filename).resolve()
            if not path.is_relative_to(workdir) or not path.is_file():
                raise ValueError(f"the task did not write its result {result.filename!r}")
            stored.append(
                StoredResult(result.id, result.filename, result.mime_type, path.stat().st_size)
            )
        return stored

    def _end(self, job_id: str, phase: Phase, **changes) -> bool:
        """Move an active job to a final phase; False if it was not active."""
        done = self.store.update(job_id, expect=ACTIVE, phase=phase, end_time=now_text(), **changes)
        if done:
            log.info("job %s: %s", job_id, phase)
            self.changed(job_id)
        return done

    def _stop(self, job_id: str) -> None:
        """Stop the job if it runs here (another process's engine stops its own)."""
        with self._lock:
            entry = self._running.get(job_id)
            if entry is None:
                return
            entry.stopping = True
        self.executor.stop(job_id)

    # --- housekeeping ----------------------------------------------------------------------

    def _sweep(self) -> None:
        """Destroy expired jobs; fail the jobs of engines that are gone."""
        for job in self.store.expired(now_text()):
            log.info("job %s destroyed (destruction time %s)", job.job_id, job.destruction)
            self.delete(job.job_id)
        self._recover()
        following = self.store.next_destruction()
        delay = SWEEP
        if following is not None:
            delay = min(delay, (parse_time(following) - datetime.now(UTC)).total_seconds())
        with self._lock:
            self._next_sweep = time.monotonic() + max(delay, 0.0)

    def _recover(self) -> None:
        live, dead = {self.runner}, []
        for runner in self.store.runners():
            if runner.runner in _HERE:
                live.add(runner.runner)
                continue
            age = (datetime.now(UTC) - parse_time(runner.heartbeat)).total_seconds()
            gone_here = runner.host == self.host and (
                runner.pid == os.getpid() or not _alive(runner.pid)
            )
            if gone_here or age > STALE:
                dead.append(runner.runner)
            else:
                live.add(runner.runner)
        for job_id in self.store.fail_orphans(live, SERVER_STOPPED):
            log.warning("job %s: %s", job_id, SERVER_STOPPED)
            self.executor.stop(job_id)  # Dask: the task may still run on a worker
            self.changed(job_id)
        if dead:
            self.store.forget_runners(dead)

    def _remove_orphans(self) -> None:
        known = self.store.job_ids()
        cutoff = time.time() - ORPHAN_AGE
        for path in self.root.iterdir():
            if path.is_dir() and path.name not in known and path.stat().st_mtime < cutoff:
                shutil.rmtree(path, ignore_errors=True)

    def _remove_files(self, job_id: str) -> None:
        shutil.rmtree(self.workdir(job_id), ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[JobEngine]:
    """Run the job engine of ``app`` (``app.state.settings``) while the app serves: enter it
    in the app's lifespan. The engine is ``app.state.jobs``; entering again while it runs
    changes nothing."""
    engine = getattr(app.state, "jobs", None)
    if engine is not None:
        yield engine
        return
    engine = JobEngine(app.state.settings)
    await run_in_threadpool(engine.start)
    app.state.jobs = engine
    try:
        yield engine
    finally:
        del app.state.jobs
        await run_in_threadpool(engine.shutdown)
