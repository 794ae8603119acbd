"""Jobs on a Dask cluster (``job_executor = "dask"``): one Dask task per job.

Dask cannot kill a running task, so stopping is cooperative: :meth:`DaskExecutor.stop` sets a
named ``distributed.Event`` that the task's ``should_stop`` polls, and cancels the future (a job
not started yet never starts). The workers must import the task modules and see the jobs folder
at the same path as the server (results are files in it).
"""

from __future__ import annotations

import threading
import time

from distributed import Client, Event, Future

from spherex_archive.jobs.base import Outcome, TaskSpec, run_task
from spherex_archive.jobs.executor import Done, Executor

POLL = 0.5
"""Seconds between two looks at the stop event from a task (each is a scheduler round trip)."""


def stop_event(job_id: str) -> str:
    return f"spherex-archive-stop-{job_id}"


def run_on_dask(spec: TaskSpec) -> Outcome:
    """The Dask task of a job: run it, polling the job's stop event."""
    event = Event(stop_event(spec.job_id))
    seen = {"at": 0.0, "set": False}

    def should_stop() -> bool:
        if not seen["set"] and time.monotonic() - seen["at"] >= POLL:
            seen["set"], seen["at"] = event.is_set(), time.monotonic()
        return seen["set"]

    try:
        return run_task(spec, should_stop)
    finally:
        event.clear()  # an event that is clear and awaited by nobody is dropped by the scheduler


class DaskExecutor(Executor):
    def __init__(self, address: str, capacity: int) -> None:
        self.capacity = capacity
        self.client = Client(address, set_as_default=False, timeout="30s")
        self._futures: dict[str, Future] = {}
        self._stopping: set[str] = set()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)

    def submit(self, spec: TaskSpec, done: Done) -> None:
        future = self.client.submit(
            run_on_dask, spec, key=f"spherex-archive-job-{spec.job_id}", pure=False, retries=0
        )
        with self._lock:
            self._futures[spec.job_id] = future
        future.add_done_callback(lambda f: self._finished(spec.job_id, f, done))

    def _finished(self, job_id: str, future: Future, done: Done) -> None:
        with self._lock:
            stopping = job_id in self._stopping
        if stopping or future.status == "cancelled":
            outcome = Outcome("stopped")
        elif future.status == "finished":
            outcome = future.result()
        else:  # the task raised outside run_task, or its worker was lost
            outcome = Outcome("failed", message=f"the Dask task failed: {future.exception()}")
        try:
            done(job_id, outcome)
        finally:
            with self._lock:
                self._futures.pop(job_id, None)
                self._stopping.discard(job_id)
                self._idle.notify_all()

    def stop(self, job_id: str) -> None:
        with self._lock:
            future = self._futures.get(job_id)
            if future is not None:
                self._stopping.add(job_id)
        Event(stop_event(job_id), client=self.client).set()
        if future is not None:
            future.cancel()

    def shutdown(self) -> None:
        with self._lock:
            running = list(self._futures)
        for job_id in running:
            self.stop(job_id)
        with self._lock:
            self._idle.wait_for(lambda: not self._futures, timeout=30)
        self.client.close()
