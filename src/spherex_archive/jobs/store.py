"""Job records in the catalogue database (``job`` and ``job_runner``, see ``catalogue/ddl.py``).

The database is the truth about every job, so several server processes (uvicorn workers, or
servers on several hosts) share one set of jobs: whichever process answers a request reads and
writes the same rows. Every change of phase is one writer transaction that first checks the
phase it expects; writer transactions are serialised by the catalogue (SQLite's write lock,
PostgreSQL's advisory lock), so two processes never both move a job.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from spherex_archive.catalogue import Catalogue, ddl
from spherex_archive.jobs.base import Phase


def utc_text(moment: datetime) -> str:
    """The one form of every stored and shown time: ``2024-05-01T12:00:00.000Z`` (UWS wants
    the ``Z``; a fixed width makes text order time order)."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def now_text(after: float = 0.0) -> str:
    """Now, or ``after`` seconds from now, as :func:`utc_text`."""
    return utc_text(datetime.now(UTC) + timedelta(seconds=after))


def parse_time(text: str) -> datetime:
    """An ISO-8601 time a client sent (``Z``, an offset, or none: UTC); ValueError if not."""
    moment = datetime.fromisoformat(text.strip())
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


@dataclass(frozen=True)
class StoredResult:
    id: str
    filename: str
    mime_type: str
    size: int


@dataclass
class Job:
    """One job record."""

    job_id: str
    kind: str
    owner: str | None
    """Authenticated owner (None: anonymous), shown as ownerId."""
    client: str
    """Who counts against the per-owner limit: the owner, else the client's address."""
    phase: str
    creation_time: str
    execution_duration: int
    destruction: str
    run_id: str | None = None
    queued_time: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    parameters: dict[str, list[str]] = field(default_factory=dict)
    uploads: dict[str, str] = field(default_factory=dict)
    """Part name -> file name in the job's directory."""
    results: list[StoredResult] = field(default_factory=list)
    error_message: str | None = None
    error_type: str | None = None
    """``fatal`` or ``transient``."""
    info: str | None = None
    """Why the server ended the job (shown in jobInfo), e.g. an execution-duration overrun."""
    runner: str | None = None
    """The serving process that runs (or ran) it."""


COLUMNS = [f.name for f in fields(Job)]
_JSON = {"parameters", "uploads", "results"}


def _encode(name: str, value: Any) -> Any:
    if name == "results":
        return json.dumps([r.__dict__ for r in value])
    return json.dumps(value) if name in _JSON else value


def _from_row(row: Sequence[Any]) -> Job:
    values = dict(zip(COLUMNS, row, strict=True))
    for name in _JSON:
        values[name] = json.loads(values[name])
    values["results"] = [StoredResult(**r) for r in values["results"]]
    return Job(**values)


@dataclass(frozen=True)
class Runner:
    runner: str
    host: str
    pid: int
    heartbeat: str


class JobStore:
    """Job records of one catalogue. Open it with :meth:`prepare` (creates the tables in a
    catalogue made before jobs existed). Blocking: call it from threads, not the event loop."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self.table = catalogue.dialect.internal("job")
        self.runners_table = catalogue.dialect.internal("job_runner")
        self._select = f"SELECT {', '.join(COLUMNS)} FROM {self.table}"

    def prepare(self) -> None:
        try:
            self.catalogue.config()
        except Exception:  # no schema yet (a new file or database): create all of it
            self.catalogue.create()
        with self.catalogue.writer() as w:
            for statement in ddl.job_tables(self.catalogue.dialect):
                w.execute(statement)

    # --- reading ---------------------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        rows = self.catalogue.fetchall(f"{self._select} WHERE job_id = ?", (job_id,))
        return _from_row(rows[0]) if rows else None

    def list(
        self,
        kind: str,
        owner: str | None,
        phases: Iterable[str] = (),
        after: str | None = None,
        last: int | None = None,
    ) -> list[Job]:
        """Jobs of ``kind`` that ``owner`` sees (anonymous clients see the anonymous jobs),
        newest first; filters as UWS 1.1 defines them (PHASE: any of, AFTER: created later,
        LAST: the newest n), ANDed."""
        sql = f"{self._select} WHERE kind = ? AND "
        params: list[Any] = [kind]
        if owner is None:
            sql += "owner IS NULL"
        else:
            sql += "owner = ?"
            params.append(owner)
        phases = list(phases)
        if phases:
            sql += f" AND phase IN ({', '.join('?' * len(phases))})"
            params += phases
        if after is not None:
            sql += " AND creation_time > ?"
            params.append(after)
        sql += " ORDER BY creation_time DESC, job_id"
        if last is not None:
            sql += " LIMIT ?"
            params.append(last)
        return [_from_row(r) for r in self.catalogue.fetchall(sql, params)]

    def phases_of(self, runner: str) -> dict[str, str]:
        """job id -> phase of the jobs ``runner`` claimed (deleted jobs are missing)."""
        rows = self.catalogue.fetchall(
            f"SELECT job_id, phase FROM {self.table} WHERE runner = ? AND phase = ?",
            (runner, Phase.EXECUTING),
        )
        return dict(rows)

    def queued_count(self, kinds: Sequence[str]) -> int:
        if not kinds:
            return 0
        rows = self.catalogue.fetchall(
            f"SELECT COUNT(*) FROM {self.table} WHERE phase = ? "
            f"AND kind IN ({', '.join('?' * len(kinds))})",
            (Phase.QUEUED, *kinds),
        )
        return int(rows[0][0])

    def expired(self, now: str) -> list[Job]:
        return [
            _from_row(r)
            for r in self.catalogue.fetchall(f"{self._select} WHERE destruction <= ?", (now,))
        ]

    def next_destruction(self) -> str | None:
        rows = self.catalogue.fetchall(f"SELECT MIN(destruction) FROM {self.table}")
        return rows[0][0]

    def job_ids(self) -> set[str]:
        return {r[0] for r in self.catalogue.fetchall(f"SELECT job_id FROM {self.table}")}

    # --- writing ---------------------------------------------------------------------------

    def insert(self, job: Job) -> None:
        row = {name: _encode(name, getattr(job, name)) for name in COLUMNS}
        with self.catalogue.writer() as w:
            w.execute(
                f"INSERT INTO {self.table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                list(row.values()),
            )

    def update(self, job_id: str, expect: Iterable[str] | None = None, **changes: Any) -> bool:
        """Change a job if it exists and (when ``expect`` is given) is in one of those
        phases; False if it was not changed."""
        with self.catalogue.writer() as w:
            rows = w.fetchall(f"SELECT phase FROM {self.table} WHERE job_id = ?", (job_id,))
            if not rows or (expect is not None and rows[0][0] not in set(expect)):
                return False
            w.execute(
                f"UPDATE {self.table} SET {', '.join(f'{k} = ?' for k in changes)} "
                "WHERE job_id = ?",
                [*(_encode(k, v) for k, v in changes.items()), job_id],
            )
        return True

    def delete(self, job_id: str) -> bool:
        with self.catalogue.writer() as w:
            found = w.fetchall(f"SELECT 1 FROM {self.table} WHERE job_id = ?", (job_id,))
            w.execute(f"DELETE FROM {self.table} WHERE job_id = ?", (job_id,))
        return bool(found)

    def claim(self, runner: str, kinds: Sequence[str], slots: int, owner_limit: int) -> list[Job]:
        """Move up to ``slots`` QUEUED jobs of ``kinds`` to EXECUTING for ``runner``, oldest
        request first, skipping clients that already have ``owner_limit`` jobs executing (in
        any process): those wait."""
        if slots <= 0 or not kinds:
            return []
        marks = ", ".join("?" * len(kinds))
        claimed: list[Job] = []
        with self.catalogue.writer() as w:
            busy = dict(
                w.fetchall(
                    f"SELECT client, COUNT(*) FROM {self.table} WHERE phase = ? GROUP BY client",
                    (Phase.EXECUTING,),
                )
            )
            queued = w.fetchall(
                f"{self._select} WHERE phase = ? AND kind IN ({marks}) "
                "ORDER BY queued_time, job_id",
                (Phase.QUEUED, *kinds),
            )
            started = now_text()
            for row in queued:
                job = _from_row(row)
                if busy.get(job.client, 0) >= owner_limit:
                    continue
                # Still QUEUED? An abort may have committed since the SELECT (PostgreSQL
                # reads each statement's own snapshot): an aborted job must never start.
                if not w.fetchall(
                    f"UPDATE {self.table} SET phase = ?, start_time = ?, runner = ? "
                    "WHERE job_id = ? AND phase = ? RETURNING job_id",
                    (Phase.EXECUTING, started, runner, job.job_id, Phase.QUEUED),
                ):
                    continue
                busy[job.client] = busy.get(job.client, 0) + 1
                job.phase, job.start_time, job.runner = Phase.EXECUTING, started, runner
                claimed.append(job)
                if len(claimed) == slots:
                    break
        return claimed

    def fail_orphans(self, live_runners: Iterable[str], message: str) -> list[str]:
        """EXECUTING jobs whose process is not among ``live_runners`` go to ERROR with
        ``message``; their ids."""
        live = set(live_runners)
        with self.catalogue.writer() as w:
            running = w.fetchall(
                f"SELECT job_id, runner FROM {self.table} WHERE phase = ?", (Phase.EXECUTING,)
            )
            lost = [job_id for job_id, runner in running if runner not in live]
            w.executemany(
                f"UPDATE {self.table} SET phase = ?, end_time = ?, error_message = ?, "
                "error_type = ? WHERE job_id = ?",
                [(Phase.ERROR, now_text(), message, "transient", j) for j in lost],
            )
        return lost

    # --- serving processes -----------------------------------------------------------------

    def heartbeat(self, runner: str, host: str, pid: int) -> None:
        with self.catalogue.writer() as w:
            w.upsert(
                "job_runner",
                {"runner": runner, "host": host, "pid": pid, "heartbeat": now_text()},
                ["runner"],
            )

    def runners(self) -> list[Runner]:
        rows = self.catalogue.fetchall(
            f"SELECT runner, host, pid, heartbeat FROM {self.runners_table}"
        )
        return [Runner(*r) for r in rows]

    def forget_runners(self, runners: Iterable[str]) -> None:
        with self.catalogue.writer() as w:
            w.executemany(
                f"DELETE FROM {self.runners_table} WHERE runner = ?", [(r,) for r in runners]
            )
