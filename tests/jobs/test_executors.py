"""The executors running the real test task: worker processes on this machine, and a real Dask
cluster (``LocalCluster`` with worker processes) started by the tests."""

from __future__ import annotations

import multiprocessing.forkserver
import os
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from spherex_archive.jobs.base import Outcome, Result, TaskSpec
from spherex_archive.jobs.local import LocalExecutor
from tests.jobs.service import job_settings, served, wait_for

TASK = "tests.jobs.tasks:run"


def spec(folder: Path, job_id: str, **params: str) -> TaskSpec:
    workdir = folder / job_id
    workdir.mkdir()
    return TaskSpec(
        job_id=job_id,
        task=TASK,
        parameters={k: [v] for k, v in params.items()},
        workdir=str(workdir),
        settings={},
    )


class Reports:
    """The ``done`` callback: collects (job id, outcome) as executors report them."""

    def __init__(self) -> None:
        self.queue: queue.Queue[tuple[str, Outcome]] = queue.Queue()

    def __call__(self, job_id: str, outcome: Outcome) -> None:
        self.queue.put((job_id, outcome))

    def next(self, timeout: float = 60) -> tuple[str, Outcome]:
        return self.queue.get(timeout=timeout)


def running(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


@pytest.fixture
def local() -> Iterator[LocalExecutor]:
    executor = LocalExecutor(2, preload=["tests.jobs.tasks"], grace=1.0)
    yield executor
    executor.shutdown()


def test_local_jobs_complete_and_fail(local, tmp_path):
    reports = Reports()
    local.submit(spec(tmp_path, "ok", SECONDS="0"), reports)
    local.submit(spec(tmp_path, "bad", MODE="fail"), reports)
    outcomes = dict(reports.next() for _ in range(2))
    assert outcomes["ok"].status == "completed"
    assert outcomes["ok"].results[0] == Result("result", "result.xml", "application/x-votable+xml")
    written = (tmp_path / "ok" / "result.xml").read_text()
    assert f"<TD>{os.getpid()}</TD>" not in written  # it ran in another process
    assert outcomes["bad"] == Outcome(
        "failed", message="UsageFault: told to fail <on purpose>", transient=True
    )


def test_a_local_job_that_honours_should_stop_stops_at_once(local, tmp_path):
    reports = Reports()
    marker = tmp_path / "done"
    local.submit(spec(tmp_path, "j", SECONDS="5", MARKER=str(marker)), reports)
    time.sleep(0.5)
    started = time.monotonic()
    local.stop("j")
    assert reports.next() == ("j", Outcome("stopped"))
    assert time.monotonic() - started < local.grace  # before any kill
    local.stop("j")  # no longer running: nothing happens
    assert not marker.exists()


def test_a_stubborn_local_job_is_killed_with_its_processes(local, tmp_path):
    reports = Reports()
    local.submit(spec(tmp_path, "j", MODE="child", SECONDS="30"), reports)
    pid_file = tmp_path / "j" / "child.pid"
    deadline = time.monotonic() + 30
    while not pid_file.exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    child = int(pid_file.read_text())
    assert running(child)
    started = time.monotonic()
    local.stop("j")
    assert reports.next() == ("j", Outcome("stopped"))
    assert local.grace <= time.monotonic() - started < local.grace + 2
    deadline = time.monotonic() + 5
    while running(child):  # killed with its process group
        assert time.monotonic() < deadline, "the task's own process outlived the stop"
        time.sleep(0.05)


def test_a_local_job_exit_code_survives_another_job_starting(local, tmp_path, monkeypatch):
    """Each Process.start() polls the children multiprocessing knows. Polling a job's process
    while its watcher reads the exit status splits the status between them: one reads it, the
    other hits EOF, and the forkserver Popen sets exit code 255."""
    reading = threading.Event()
    read = multiprocessing.forkserver.read_signed

    def slow_in_the_watcher(fd: int) -> int:
        if threading.current_thread().name == "job x":  # the status is ready, not yet read
            reading.set()
            time.sleep(0.5)  # a preempted thread, as on a loaded machine
        return read(fd)

    monkeypatch.setattr(multiprocessing.forkserver, "read_signed", slow_in_the_watcher)
    reports = Reports()
    local.submit(spec(tmp_path, "x", MODE="exit"), reports)
    assert reading.wait(30)
    local.submit(spec(tmp_path, "y", SECONDS="0"), reports)
    outcomes = dict(reports.next() for _ in range(2))
    assert outcomes["x"] == Outcome(
        "failed", message="the job's process ended without an answer (exit code 3)"
    )
    assert outcomes["y"].status == "completed"


def test_local_shutdown_stops_every_job(tmp_path):
    executor = LocalExecutor(2, preload=["tests.jobs.tasks"], grace=0.5)
    reports = Reports()
    executor.submit(spec(tmp_path, "a", MODE="stubborn", SECONDS="30"), reports)
    executor.submit(spec(tmp_path, "b", SECONDS="30"), reports)
    time.sleep(0.5)
    executor.shutdown()
    assert sorted(reports.queue.get_nowait() for _ in range(2)) == [
        ("a", Outcome("stopped")),
        ("b", Outcome("stopped")),
    ]


# --------------------------------------------------------------------------------------------
# Dask


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=1, processes=True, threads_per_worker=2, dashboard_address=None
    ) as cluster:
        yield cluster


@pytest.mark.slow
def test_dask_runs_completes_fails_and_stops(cluster, tmp_path):
    from spherex_archive.jobs.dask_executor import DaskExecutor

    executor = DaskExecutor(cluster.scheduler_address, 2)
    reports = Reports()
    try:
        executor.submit(spec(tmp_path, "ok", SECONDS="0"), reports)
        executor.submit(spec(tmp_path, "bad", MODE="crash"), reports)
        outcomes = dict(reports.next() for _ in range(2))
        assert outcomes["ok"].status == "completed"
        (worker_pid,) = executor.client.run(os.getpid).values()
        assert f"<TD>{worker_pid}</TD>" in (tmp_path / "ok" / "result.xml").read_text()
        assert outcomes["bad"] == Outcome("failed", message="a bug in the task")

        marker = tmp_path / "stopped.done"
        executor.submit(spec(tmp_path, "slow", SECONDS="3", MARKER=str(marker)), reports)
        time.sleep(1)
        executor.stop("slow")
        assert reports.next() == ("slow", Outcome("stopped"))
        time.sleep(3)
        assert not marker.exists()  # the task saw the stop event
    finally:
        executor.shutdown()


@pytest.mark.slow
def test_a_server_with_dask_jobs(cluster, tmp_path):
    url = f"sqlite:///{tmp_path / 'catalogue.db'}"
    settings = job_settings(
        url, tmp_path, job_executor="dask", dask_scheduler=cluster.scheduler_address
    )
    marker = tmp_path / "aborted.done"
    with served(settings) as svc:
        done = svc.create(MODE="sleep", SECONDS="0.2", PHASE="RUN")
        aborted = svc.create(MODE="sleep", SECONDS="3", MARKER=str(marker), PHASE="RUN")
        overdue = svc.create(MODE="sleep", SECONDS="30", EXECUTIONDURATION="1", PHASE="RUN")
        assert wait_for(done, {"COMPLETED", "ERROR"}) == "COMPLETED"
        wait_for(aborted, {"EXECUTING"})
        time.sleep(0.5)
        svc.engine.abort(aborted.rsplit("/", 1)[1])
        assert wait_for(overdue, {"ABORTED", "COMPLETED"}) == "ABORTED"
    time.sleep(3)
    assert not marker.exists()
