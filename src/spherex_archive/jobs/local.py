"""The default executor: one worker process per job, on this machine.

A process per job is what makes stopping real: an aborted or overdue job is first asked to stop
(``should_stop``), and its whole process group is killed ``grace`` seconds later, with whatever
processes the task started. A worker whose server dies (even by SIGKILL) sees its control pipe
close and kills itself, so no job outlives the server that owned it.

Job processes fork from a forkserver that has imported the task modules and every module of
this package the server had imported, so a job starts in milliseconds. (Each job process still
imports the server's main module, as multiprocessing does: for ``spherex-archive serve`` that
is the CLI, cheap once its imports are preloaded.)
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import multiprocessing.process
import os
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess

from spherex_archive.jobs.base import Outcome, TaskSpec, run_task
from spherex_archive.jobs.executor import Done, Executor

STOP_GRACE = 2.0
"""Seconds a job has to honour ``should_stop`` before its processes are killed."""

_STARTING = threading.Lock()
"""Held from a job process's start to its removal from multiprocessing's children (see
``submit``), so that no other start polls it in between."""


def _child(spec: TaskSpec, control: Connection, report: Connection) -> None:
    """The worker process: run the task, send the outcome, exit."""
    os.setpgrp()  # a hard stop kills the group: the task's own subprocesses too
    stop = threading.Event()
    threading.Thread(target=_listen, args=(control, stop), daemon=True).start()
    outcome = run_task(spec, stop.is_set)
    try:
        report.send(outcome)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        # Not a normal exit: threads the task left behind must not keep the process alive.
        os._exit(0)


def _listen(control: Connection, stop: threading.Event) -> None:
    try:
        while True:
            control.recv()  # the only message is "stop"
            stop.set()
    except (EOFError, OSError):
        # The server's end closed: it got our outcome, or it died and nobody wants the job.
        os.killpg(0, signal.SIGKILL)


@dataclass
class _Running:
    process: BaseProcess
    control: Connection
    report: Connection
    stopping: bool = False
    watcher: threading.Thread = field(init=False)


class LocalExecutor(Executor):
    def __init__(self, workers: int, preload: Sequence[str] = (), grace: float = STOP_GRACE):
        """``preload``: modules the forkserver imports once (the tasks' modules)."""
        self.capacity = workers
        self.grace = grace
        self._context = multiprocessing.get_context("forkserver")
        ours = sorted(m for m in sys.modules if m.partition(".")[0] == "spherex_archive")
        self._context.set_forkserver_preload([__name__, *ours, *preload])
        # Importing takes seconds: start the forkserver now rather than at the first job.
        threading.Thread(
            target=multiprocessing.forkserver.ensure_running, name="forkserver", daemon=True
        ).start()
        self._running: dict[str, _Running] = {}
        self._lock = threading.Lock()

    def submit(self, spec: TaskSpec, done: Done) -> None:
        child_control, control = self._context.Pipe(duplex=False)
        report, child_report = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_child, args=(spec, child_control, child_report), name=f"job {spec.job_id}"
        )
        with _STARTING:
            process.start()
            # The watcher must be the only thread reading the exit status: with a forkserver,
            # of two threads polling a dead process one reads the status and the other gets
            # EOF and sets exitcode 255 (CPython gh-130895). Every Process.start() (and
            # active_children()) polls all registered children, so ours are not registered.
            # Nor are they joined at exit: a worker whose server is gone kills itself anyway.
            multiprocessing.process._children.discard(process)
        child_control.close()
        child_report.close()
        entry = _Running(process, control, report)
        entry.watcher = threading.Thread(
            target=self._watch, args=(spec.job_id, entry, done), name=f"job {spec.job_id}"
        )
        with self._lock:
            self._running[spec.job_id] = entry
        entry.watcher.start()

    def _watch(self, job_id: str, entry: _Running, done: Done) -> None:
        try:
            outcome: Outcome | None = entry.report.recv()
        except (EOFError, OSError):  # the process died without answering
            outcome = None
        entry.process.join(self.grace)
        if entry.process.is_alive():  # it answered but does not end
            self._kill(entry)
        entry.process.join()
        entry.control.close()
        entry.report.close()
        with self._lock:
            self._running.pop(job_id, None)
        if entry.stopping:
            outcome = Outcome("stopped")
        elif outcome is None:
            outcome = Outcome(
                "failed",
                message="the job's process ended without an answer "
                f"(exit code {entry.process.exitcode})",
            )
        done(job_id, outcome)

    def stop(self, job_id: str) -> None:
        with self._lock:
            entry = self._running.get(job_id)
            if entry is None or entry.stopping:
                return
            entry.stopping = True
        try:
            entry.control.send("stop")
        except OSError:  # it is ending anyway
            return
        timer = threading.Timer(self.grace, self._kill, (entry,))
        timer.daemon = True
        timer.start()

    @staticmethod
    def _kill(entry: _Running) -> None:
        # Ended: the forkserver has reported its status. Looked at, not read (is_alive() would
        # read it, racing the watcher).
        if wait([entry.process.sentinel], 0):
            return
        try:
            os.killpg(entry.process.pid, signal.SIGKILL)
        except OSError:  # not yet its own group leader
            entry.process.kill()

    def shutdown(self) -> None:
        with self._lock:
            entries = list(self._running.items())
        for job_id, _ in entries:
            self.stop(job_id)
        for _, entry in entries:
            entry.watcher.join()
