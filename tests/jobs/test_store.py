"""Job records in both catalogue backends: conditional phase changes, claiming queued jobs in
order within per-owner limits, listing filters, failing the jobs of vanished runners."""

from __future__ import annotations

import time

import pytest

from spherex_archive.catalogue import open_catalogue
from spherex_archive.jobs.base import Phase
from spherex_archive.jobs.store import Job, JobStore, StoredResult, now_text


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, new_catalogue_url):
    catalogue = open_catalogue(new_catalogue_url(request.param))
    store = JobStore(catalogue)
    store.prepare()
    store.prepare()  # again: nothing changes
    yield store
    catalogue.close()


def make_job(job_id: str, client: str = "10.0.0.1", kind: str = "k", **values) -> Job:
    return Job(
        job_id=job_id,
        kind=kind,
        owner=values.pop("owner", None),
        client=client,
        phase=values.pop("phase", Phase.PENDING),
        creation_time=values.pop("creation_time", now_text()),
        execution_duration=60,
        destruction=values.pop("destruction", now_text(3600)),
        **values,
    )


def test_a_job_round_trips(store):
    job = make_job(
        "a",
        run_id="r",
        parameters={"QUERY": ["SELECT 1"], "UPLOAD": ["t,param:t", "u,param:u"]},
        uploads={"t": "t"},
    )
    store.insert(job)
    assert store.get("a") == job
    assert store.get("missing") is None
    results = [StoredResult("result", "result.xml", "text/xml", 12)]
    assert store.update("a", None, results=results, error_message="x")
    assert store.get("a").results == results


def test_changes_happen_only_from_the_expected_phases(store):
    store.insert(make_job("a"))
    assert not store.update("a", [Phase.QUEUED], phase=Phase.EXECUTING)
    assert store.update("a", [Phase.PENDING], phase=Phase.QUEUED)
    assert store.get("a").phase == Phase.QUEUED
    assert not store.update("missing", None, phase=Phase.QUEUED)
    assert store.delete("a") and not store.delete("a")


def test_claims_follow_the_queue_and_the_owner_limit(store):
    for n, client in enumerate(["x", "x", "y", "x", "z"]):
        store.insert(make_job(f"j{n}", client=client, phase=Phase.QUEUED, queued_time=f"t{n}"))
    store.insert(make_job("other-kind", kind="other", phase=Phase.QUEUED, queued_time="t0"))
    store.insert(make_job("busy", client="z", phase=Phase.EXECUTING, runner="elsewhere"))
    claimed = store.claim("me", ["k"], slots=10, owner_limit=1)
    assert [j.job_id for j in claimed] == ["j0", "j2"]  # x once, y once, z already busy
    assert all(j.phase == Phase.EXECUTING and j.runner == "me" for j in claimed)
    assert store.phases_of("me") == {"j0": Phase.EXECUTING, "j2": Phase.EXECUTING}
    assert store.queued_count(["k"]) == 3
    assert [j.job_id for j in store.claim("me", ["k"], slots=1, owner_limit=3)] == ["j1"]
    assert store.get("other-kind").phase == Phase.QUEUED
    assert store.claim("me", ["k"], slots=0, owner_limit=3) == []


def test_lists_filter_and_sort(store):
    for n in range(4):
        store.insert(make_job(f"j{n}", creation_time=f"2026-01-0{n + 1}T00:00:00.000Z"))
    store.update("j1", None, phase=Phase.COMPLETED)
    store.insert(make_job("theirs", owner="alice"))

    def ids(**filters) -> list[str]:
        return [j.job_id for j in store.list("k", None, **filters)]

    assert ids() == ["j3", "j2", "j1", "j0"]
    assert ids(phases=[Phase.COMPLETED]) == ["j1"]
    assert ids(after="2026-01-02T00:00:00.000Z") == ["j3", "j2"]
    assert ids(last=2, phases=[Phase.PENDING]) == ["j3", "j2"]
    assert [j.job_id for j in store.list("k", "alice")] == ["theirs"]


def test_jobs_of_vanished_runners_fail(store):
    store.insert(make_job("mine", phase=Phase.EXECUTING, runner="alive"))
    store.insert(make_job("lost", phase=Phase.EXECUTING, runner="dead"))
    store.insert(make_job("queued", phase=Phase.QUEUED))
    store.heartbeat("alive", "host", 1)
    store.heartbeat("dead", "host", 2)
    first = {r.runner: r.heartbeat for r in store.runners()}
    time.sleep(0.01)
    store.heartbeat("alive", "host", 1)
    assert {r.runner: r.heartbeat for r in store.runners()}["alive"] > first["alive"]
    assert store.fail_orphans({"alive"}, "gone") == ["lost"]
    lost = store.get("lost")
    assert (lost.phase, lost.error_message, lost.error_type) == (Phase.ERROR, "gone", "transient")
    assert store.get("mine").phase == Phase.EXECUTING
    assert store.get("queued").phase == Phase.QUEUED  # the next engine runs it
    store.forget_runners(["dead"])
    assert [r.runner for r in store.runners()] == ["alive"]


def test_expired_jobs_and_the_next_destruction(store):
    store.insert(make_job("old", destruction="2020-01-01T00:00:00.000Z"))
    store.insert(make_job("new"))
    assert [j.job_id for j in store.expired(now_text())] == ["old"]
    assert store.next_destruction() == "2020-01-01T00:00:00.000Z"
    assert store.job_ids() == {"old", "new"}
