"""UWS 1.1 over HTTP (ivoa-services §6, Part C 1-5): the job list, the job and its children.

``uws_router(prefix, kind)`` serves one kind of job at ``prefix`` (``/TAP/async``). Jobs are
created with DALI parameters (names case-insensitive, GET or POST, url-encoded or multipart;
posted files are saved in the job's folder); a job's parameters are checked by its task when
it runs, so a bad query still makes a job, which ends in ERROR. Every redirect is a 303 to an
absolute URL built from the public base URL; every time ends in ``Z``; nillable elements are
written ``xsi:nil="true"``, never empty (pyvo fails on empty ones).

Who sees a job: its owner when the request is authenticated (``scope["user"]``, as Starlette's
AuthenticationMiddleware sets it), else every anonymous client (job ids are unguessable). The
per-owner limit of executing jobs counts the owner, or the client's address when anonymous.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import re
import secrets
import shutil
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.responses import FileResponse, Response

from spherex_archive.formats.votable import xml_attr, xml_text
from spherex_archive.jobs.base import ACTIVE, PROGRESS_FILE, JobKind, Phase, register_kind
from spherex_archive.jobs.engine import JobEngine, durations
from spherex_archive.jobs.store import Job, now_text, parse_time, utc_text
from spherex_archive.server.dali import DaliError, Params, dali_files, dali_params, single

UWS_NS = "http://www.ivoa.net/xml/UWS/v1.0"
NAMESPACES = (
    f'xmlns:uws="{UWS_NS}" xmlns:xlink="http://www.w3.org/1999/xlink" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
)
INFO_NS = "urn:spherex-archive:uws"
"""Namespace of what this server adds in jobInfo (progress, why the server ended a job)."""
XML = "text/xml"
XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'

WAIT_CAP = 30.0
"""Most seconds a WAIT blocks, WAIT=-1 included (Part C 5: well below any timeout a client
derives from the executionDuration it is told)."""
WAIT_POLL = 1.0
"""Seconds between two reads of a waited-for job: another server process may change it."""

CONTROLS = ("PHASE", "RUNID", "EXECUTIONDURATION", "DESTRUCTION")
"""UWS parameters that act on the job itself; the others are the task's."""
PART_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")
"""Names a posted file may have: it is saved under that name in the job's folder."""


class UwsError(Exception):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def _answers(handler: Callable[..., Awaitable[Response]]) -> Callable[..., Awaitable[Response]]:
    """Refusals become text/plain answers with their status."""

    @functools.wraps(handler)
    async def answer(*args, **kwargs) -> Response:
        try:
            return await handler(*args, **kwargs)
        except UwsError as error:
            return _text(error.message, error.status)
        except DaliError as error:
            return _text(error.message, error.status)

    return answer


def _text(text: str, status: int = 200) -> Response:
    return Response(text, status_code=status, media_type="text/plain")


def _see_other(url: str) -> Response:
    return Response(b"", status_code=303, headers={"Location": url}, media_type="text/plain")


def owner_of(request: Request) -> str | None:
    """The authenticated user (None: anonymous)."""
    user = request.scope.get("user")
    return user.display_name if getattr(user, "is_authenticated", False) else None


def _engine(request: Request) -> JobEngine:
    engine = getattr(request.app.state, "jobs", None)
    if engine is None:
        raise UwsError("the job engine is not running on this server", 503)
    return engine


def uws_router(prefix: str, kind: JobKind) -> APIRouter:
    """Routes of the job list at ``prefix`` and of every job under it, for jobs of ``kind``."""
    register_kind(kind)
    router = APIRouter(prefix=prefix)

    def jobs_url(request: Request) -> str:
        return request.app.state.settings.base_url.rstrip("/") + prefix

    def job_url(request: Request, job_id: str) -> str:
        return f"{jobs_url(request)}/{job_id}"

    async def find(request: Request, job_id: str) -> tuple[JobEngine, Job]:
        engine = _engine(request)
        job = await run_in_threadpool(engine.store.get, job_id)
        if job is None or job.kind != kind.name:
            raise UwsError(f"no job {job_id}", 404)
        if job.destruction <= now_text():  # due for destruction: the sweep may not have run
            await run_in_threadpool(engine.delete, job_id)
            raise UwsError(f"no job {job_id}", 404)
        if job.owner is not None and job.owner != owner_of(request):
            raise UwsError(f"job {job_id} belongs to someone else", 403)
        return engine, job

    # --- the job list ----------------------------------------------------------------------

    @router.get("")
    @_answers
    async def job_list(request: Request) -> Response:
        engine = _engine(request)
        params = await dali_params(request)
        phases = params.get("PHASE", [])
        unknown = [p for p in phases if p not in Phase.__members__]
        if unknown:
            raise UwsError(f"PHASE {unknown[0]!r} is not a UWS phase", 400)
        after = single(params, "AFTER")
        last = single(params, "LAST")
        try:
            after_text = None if after is None else utc_text(parse_time(after))
        except ValueError:
            raise UwsError(f"AFTER must be an ISO-8601 time, not {after!r}", 400) from None
        if last is not None and not last.strip().isdigit():
            raise UwsError(f"LAST must be a whole number of jobs, not {last!r}", 400)
        jobs = await run_in_threadpool(
            engine.store.list,
            kind.name,
            owner_of(request),
            phases,
            after_text,
            None if last is None else int(last),
        )
        return Response(job_list_document(jobs, jobs_url(request)), media_type=XML)

    @router.post("")
    @_answers
    async def create(request: Request) -> Response:
        engine = _engine(request)
        settings = request.app.state.settings
        params = await dali_params(request)
        files = await dali_files(request)
        owner = owner_of(request)
        now = datetime.now(UTC)
        duration, _ = durations(kind, settings)
        job = Job(
            job_id=secrets.token_hex(8),
            kind=kind.name,
            owner=owner,
            client=owner or (request.client.host if request.client else "unknown"),
            phase=Phase.PENDING,
            creation_time=utc_text(now),
            execution_duration=duration,
            destruction=utc_text(now + timedelta(seconds=settings.job_destruction)),
        )
        run = _apply(job, params, kind, settings)
        _check_files(files)
        if run:
            job.phase, job.queued_time = Phase.QUEUED, now_text()
        workdir = engine.workdir(job.job_id)
        try:
            await run_in_threadpool(_save_files, workdir, files, job, create=True)
            await run_in_threadpool(engine.store.insert, job)
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        if run:
            engine.queued(job.job_id)
        if "DESTRUCTION" in params:
            engine.destruction_changed(job.destruction)
        return _see_other(job_url(request, job.job_id))

    # --- the job ---------------------------------------------------------------------------

    @router.get("/{job_id}")
    @_answers
    async def job_resource(request: Request, job_id: str) -> Response:
        params = await dali_params(request)
        wait = single(params, "WAIT")
        if wait is None:
            engine, job = await find(request, job_id)
        else:
            try:
                seconds = float(wait)
            except ValueError:
                raise UwsError(f"WAIT must be a number of seconds, not {wait!r}", 400) from None
            engine = _engine(request)
            async with engine.watching(job_id) as changed:
                engine, job = await find(request, job_id)
                awaited = single(params, "PHASE")
                if job.phase in ACTIVE and awaited in (None, job.phase):
                    limit = WAIT_CAP if seconds < 0 else min(seconds, WAIT_CAP)
                    job = await _wait(engine, job, limit, changed)
        return Response(
            job_document(job, job_url(request, job_id), _progress(engine, job)), media_type=XML
        )

    @router.delete("/{job_id}")
    @_answers
    async def delete(request: Request, job_id: str) -> Response:
        engine, _ = await find(request, job_id)
        await run_in_threadpool(engine.delete, job_id)
        return _see_other(jobs_url(request))

    @router.post("/{job_id}")
    @_answers
    async def post_job(request: Request, job_id: str) -> Response:
        params = await dali_params(request)
        if (single(params, "ACTION") or "").upper() != "DELETE":
            raise UwsError("a POST to a job takes ACTION=DELETE only", 400)
        return await delete(request, job_id)

    @router.get("/{job_id}/phase")
    @_answers
    async def phase(request: Request, job_id: str) -> Response:
        _, job = await find(request, job_id)
        return _text(job.phase)

    @router.post("/{job_id}/phase")
    @_answers
    async def set_phase(request: Request, job_id: str) -> Response:
        wanted = (single(await dali_params(request), "PHASE") or "").upper()
        engine, job = await find(request, job_id)
        if wanted == "RUN":
            if job.phase == Phase.PENDING:
                await run_in_threadpool(engine.run, job_id)
            elif job.phase not in ACTIVE:
                raise UwsError(f"job {job_id} has already run ({job.phase})", 403)
        elif wanted == "ABORT":
            await run_in_threadpool(engine.abort, job_id)  # nothing to do once it ended
        else:
            raise UwsError("PHASE must be RUN or ABORT", 400)
        return _see_other(job_url(request, job_id))

    @router.get("/{job_id}/executionduration")
    @_answers
    async def execution_duration(request: Request, job_id: str) -> Response:
        _, job = await find(request, job_id)
        return _text(str(job.execution_duration))

    @router.post("/{job_id}/executionduration")
    @_answers
    async def set_execution_duration(request: Request, job_id: str) -> Response:
        return await change(request, job_id, "EXECUTIONDURATION")

    @router.get("/{job_id}/destruction")
    @_answers
    async def destruction(request: Request, job_id: str) -> Response:
        _, job = await find(request, job_id)
        return _text(job.destruction)

    @router.post("/{job_id}/destruction")
    @_answers
    async def set_destruction(request: Request, job_id: str) -> Response:
        return await change(request, job_id, "DESTRUCTION")

    @router.get("/{job_id}/quote")
    @_answers
    async def quote_(request: Request, job_id: str) -> Response:
        await find(request, job_id)
        return _text("")  # no estimate: the document says xsi:nil

    @router.get("/{job_id}/error")
    @_answers
    async def error(request: Request, job_id: str) -> Response:
        _, job = await find(request, job_id)
        if job.phase != Phase.ERROR or job.error_message is None:
            raise UwsError(f"job {job_id} has no error ({job.phase})", 404)
        body, media_type = kind.error_document(job.error_message)
        return Response(body, media_type=media_type)

    @router.get("/{job_id}/parameters")
    @_answers
    async def parameters(request: Request, job_id: str) -> Response:
        _, job = await find(request, job_id)
        document = _parameters(job, job_url(request, job_id), root=True)
        return Response(XML_DECLARATION + document, media_type=XML)

    @router.post("/{job_id}/parameters")
    @_answers
    async def set_parameters(request: Request, job_id: str) -> Response:
        return await change(request, job_id, None)

    @router.get("/{job_id}/parameters/{name}")
    @_answers
    async def uploaded(request: Request, job_id: str, name: str) -> Response:
        engine, job = await find(request, job_id)
        if name not in job.uploads:
            raise UwsError(f"job {job_id} has no uploaded file {name!r}", 404)
        return FileResponse(engine.workdir(job_id) / job.uploads[name])

    @router.get("/{job_id}/results")
    @_answers
    async def results(request: Request, job_id: str) -> Response:
        _, job = await find(request, job_id)
        document = _results(job, job_url(request, job_id), root=True)
        return Response(XML_DECLARATION + document, media_type=XML)

    @router.get("/{job_id}/results/{result_id}")
    @_answers
    async def result(request: Request, job_id: str, result_id: str) -> Response:
        engine, job = await find(request, job_id)
        for stored in job.results:
            if stored.id == result_id:
                path = engine.workdir(job_id) / stored.filename
                return FileResponse(path, media_type=stored.mime_type)
        raise UwsError(f"job {job_id} has no result {result_id!r}", 404)

    @router.get("/{job_id}/owner")
    @_answers
    async def owner(request: Request, job_id: str) -> Response:
        _, job = await find(request, job_id)
        return _text(job.owner or "")

    async def change(request: Request, job_id: str, only: str | None) -> Response:
        """POST of parameters (``only`` None: any, files too) or of one control parameter,
        all allowed while the job is PENDING, except DESTRUCTION (any time)."""
        params = await dali_params(request)
        files = await dali_files(request) if only is None else {}
        if only is not None:
            params = {only: params.get(only, [])}
            if not params[only]:
                raise UwsError(f"{only} is missing", 400)
        engine, job = await find(request, job_id)
        if only != "DESTRUCTION" and job.phase != Phase.PENDING:
            raise UwsError(f"job {job_id} is {job.phase}: its parameters are fixed", 403)
        run = _apply(job, params, kind, request.app.state.settings)
        _check_files(files)
        await run_in_threadpool(_save_files, engine.workdir(job_id), files, job, create=False)
        expect = None if only == "DESTRUCTION" else [Phase.PENDING]
        stored = await run_in_threadpool(
            functools.partial(
                engine.store.update,
                job_id,
                expect,
                run_id=job.run_id,
                execution_duration=job.execution_duration,
                destruction=job.destruction,
                parameters=job.parameters,
                uploads=job.uploads,
            )
        )
        if not stored:
            raise UwsError(f"job {job_id} started meanwhile: its parameters are fixed", 403)
        if "DESTRUCTION" in params:
            engine.destruction_changed(job.destruction)
        if run:
            await run_in_threadpool(engine.run, job_id)
        return _see_other(job_url(request, job_id))

    return router


# --------------------------------------------------------------------------------------------
# Requests


def _apply(job: Job, params: Params, kind: JobKind, settings) -> bool:
    """Apply the parameters of a creation or change request to ``job``: UWS controls act on
    it, the others replace the task's parameters of the same names. True if PHASE=RUN."""
    run = False
    if (phase := single(params, "PHASE")) is not None:
        if phase.upper() != "RUN":
            raise UwsError("PHASE may only be RUN when a job is created or changed", 400)
        run = True
    if (run_id := single(params, "RUNID")) is not None:
        job.run_id = run_id
    if (text := single(params, "EXECUTIONDURATION")) is not None:
        job.execution_duration = _execution_duration(text, kind, settings)
    if (text := single(params, "DESTRUCTION")) is not None:
        try:
            wanted = parse_time(text)
        except ValueError:
            raise UwsError(f"DESTRUCTION must be an ISO-8601 time, not {text!r}", 400) from None
        latest = parse_time(job.creation_time) + timedelta(seconds=settings.job_destruction)
        job.destruction = utc_text(min(wanted, latest))
    for name, values in params.items():
        if name not in CONTROLS:
            job.parameters[name] = values
    return run


def _execution_duration(text: str, kind: JobKind, settings) -> int:
    """The duration granted for a request: the kind's most at most (0 asks for no limit)."""
    try:
        seconds = int(text.strip())
    except ValueError:
        seconds = -1
    if seconds < 0:
        raise UwsError(f"EXECUTIONDURATION must be whole seconds (0: no limit), not {text!r}", 400)
    _, most = durations(kind, settings)
    return most if most and (seconds == 0 or seconds > most) else seconds


def _check_files(files: dict[str, UploadFile]) -> None:
    for name in files:
        if not PART_NAME.fullmatch(name):
            raise UwsError(
                f"a posted file's part name must be letters, digits, '_', '.' or '-', not {name!r}",
                400,
            )


def _save_files(workdir: Path, files: dict[str, UploadFile], job: Job, create: bool) -> None:
    workdir.mkdir(parents=True, exist_ok=not create)
    for name, upload in files.items():
        upload.file.seek(0)
        with open(workdir / name, "wb") as out:
            shutil.copyfileobj(upload.file, out, 1 << 20)
        job.uploads[name] = name


async def _wait(engine: JobEngine, job: Job, limit: float, changed: asyncio.Event) -> Job:
    """The job once its phase changed, or as it is after ``limit`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while (remaining := deadline - loop.time()) > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), min(remaining, WAIT_POLL))
        changed.clear()
        current = await run_in_threadpool(engine.store.get, job.job_id)
        if current is None:
            raise UwsError(f"no job {job.job_id}", 404)
        if current.phase != job.phase:
            return current
        job = current
    return job


def _progress(engine: JobEngine, job: Job) -> dict | None:
    if job.phase != Phase.EXECUTING:
        return None
    try:
        return json.loads((engine.workdir(job.job_id) / PROGRESS_FILE).read_text())
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------------------------
# Documents


def _nillable(tag: str, value: str | None) -> str:
    if value is None:
        return f'<uws:{tag} xsi:nil="true"/>'
    return f"<uws:{tag}>{xml_text(value)}</uws:{tag}>"


def _parameters(job: Job, url: str, root: bool = False) -> str:
    lines = []
    for name, values in job.parameters.items():
        attribute = xml_attr(name)
        lines += [f'<uws:parameter id="{attribute}">{xml_text(v)}</uws:parameter>' for v in values]
    for name in job.uploads:
        href = f"{url}/parameters/{quote(name)}"
        lines.append(
            f'<uws:parameter id="{xml_attr(name)}" byReference="true">{xml_text(href)}'
            "</uws:parameter>"
        )
    head = f"<uws:parameters {NAMESPACES}>" if root else "<uws:parameters>"
    return "\n".join([head, *lines, "</uws:parameters>"])


def _results(job: Job, url: str, root: bool = False) -> str:
    lines = [
        f'<uws:result id="{xml_attr(r.id)}" xlink:type="simple" '
        f'xlink:href="{xml_attr(f"{url}/results/{quote(r.id)}")}" size="{r.size}" '
        f'mime-type="{xml_attr(r.mime_type)}"/>'
        for r in job.results
    ]
    head = f"<uws:results {NAMESPACES}>" if root else "<uws:results>"
    return "\n".join([head, *lines, "</uws:results>"])


def job_document(job: Job, url: str, progress: dict | None = None) -> str:
    """The ``uws:job`` document, elements in the schema's order (ivoa-services §6.3)."""
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<uws:job {NAMESPACES} version="1.1">',
        f"<uws:jobId>{xml_text(job.job_id)}</uws:jobId>",
    ]
    if job.run_id is not None:
        parts.append(f"<uws:runId>{xml_text(job.run_id)}</uws:runId>")
    parts += [
        _nillable("ownerId", job.owner),
        f"<uws:phase>{job.phase}</uws:phase>",
        _nillable("quote", None),
        f"<uws:creationTime>{job.creation_time}</uws:creationTime>",
        _nillable("startTime", job.start_time),
        _nillable("endTime", job.end_time),
        f"<uws:executionDuration>{job.execution_duration}</uws:executionDuration>",
        _nillable("destruction", job.destruction),
        _parameters(job, url),
        _results(job, url),
    ]
    if job.phase == Phase.ERROR and job.error_message is not None:
        parts.append(
            f'<uws:errorSummary type="{job.error_type or "fatal"}" hasDetail="true">'
            f"<uws:message>{xml_text(job.error_message)}</uws:message></uws:errorSummary>"
        )
    info = []
    if job.info:
        info.append(f"<sx:reason>{xml_text(job.info)}</sx:reason>")
    if progress:
        info.append(
            f'<sx:progress fraction="{float(progress.get("fraction", 0)):g}">'
            f"{xml_text(str(progress.get('note', '')))}</sx:progress>"
        )
    if info:
        parts.append(f'<uws:jobInfo xmlns:sx="{INFO_NS}">{"".join(info)}</uws:jobInfo>')
    parts.append("</uws:job>")
    return "\n".join(parts) + "\n"


def job_list_document(jobs: list[Job], url: str) -> str:
    """The ``uws:jobs`` list: one ``jobref`` per job with its short description."""
    parts = ['<?xml version="1.0" encoding="UTF-8"?>', f'<uws:jobs {NAMESPACES} version="1.1">']
    for job in jobs:
        run_id = "" if job.run_id is None else f"<uws:runId>{xml_text(job.run_id)}</uws:runId>"
        parts.append(
            f'<uws:jobref id="{xml_attr(job.job_id)}" xlink:type="simple" '
            f'xlink:href="{xml_attr(f"{url}/{job.job_id}")}">'
            f"<uws:phase>{job.phase}</uws:phase>{run_id}{_nillable('ownerId', job.owner)}"
            f"<uws:creationTime>{job.creation_time}</uws:creationTime></uws:jobref>"
        )
    parts.append("</uws:jobs>")
    return "\n".join(parts) + "\n"
