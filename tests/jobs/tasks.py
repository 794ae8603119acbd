"""Real task functions for the job tests, run by the executors in other processes.

One task, told what to do by its parameters: MODE (sleep, fail, crash, exit, stubborn, child,
large, upload, missing), SECONDS (how long to work), MARKER (a file written only if the work
ran to its end, which an aborted or overdue job must never reach) and SIZE (bytes of the large
result).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from spherex_archive.jobs import JobFailure, Result, TaskContext

STEP = 0.05

VOTABLE = """<?xml version="1.0" encoding="UTF-8"?>
<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">
<RESOURCE type="results"><INFO name="QUERY_STATUS" value="OK"/>
<TABLE><FIELD name="job" datatype="char" arraysize="*"/><FIELD name="pid" datatype="int"/>
<DATA><TABLEDATA><TR><TD>{job}</TD><TD>{pid}</TD></TR></TABLEDATA></DATA></TABLE>
</RESOURCE></VOTABLE>
"""


def _param(ctx: TaskContext, name: str, default: str) -> str:
    return ctx.parameters.get(name, [default])[0]


def run(ctx: TaskContext) -> list[Result]:
    mode = _param(ctx, "MODE", "sleep")
    seconds = float(_param(ctx, "SECONDS", "0.2"))
    if mode == "fail":
        raise JobFailure("UsageFault: told to fail <on purpose>", transient=True)
    if mode == "crash":
        raise ZeroDivisionError("a bug in the task")
    if mode == "exit":
        os._exit(3)
    if mode == "child":  # a process of its own, which a hard stop must end too
        child = subprocess.Popen(["sleep", str(seconds)])
        (ctx.workdir / "child.pid").write_text(str(child.pid))
        mode = "stubborn"
    if mode == "stubborn":  # never looks at should_stop: only a kill ends it early
        time.sleep(seconds)
    else:
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            if ctx.should_stop():
                return []
            ctx.progress((time.monotonic() - started) / seconds, "sleeping")
            time.sleep(STEP)
    if marker := _param(ctx, "MARKER", ""):
        Path(marker).write_text(f"{ctx.job_id} ran to its end\n")
    if mode == "large":
        size = int(_param(ctx, "SIZE", str(50 << 20)))
        block = bytes(range(256)) * 4096
        with open(ctx.workdir / "large.bin", "wb") as out:
            for start in range(0, size, len(block)):
                out.write(block[: size - start])
        return [Result("result", "large.bin", "application/octet-stream")]
    if mode == "upload":
        name = _param(ctx, "TABLE", "t1")
        (ctx.workdir / "echo.xml").write_bytes(ctx.uploads[name].read_bytes())
        return [Result("result", "echo.xml", "application/x-votable+xml")]
    if mode == "missing":
        return [Result("result", "never-written.xml", "text/xml")]
    (ctx.workdir / "result.xml").write_text(VOTABLE.format(job=ctx.job_id, pid=os.getpid()))
    (ctx.workdir / "note.txt").write_text("a second result\n")
    return [
        Result("result", "result.xml", "application/x-votable+xml"),
        Result("note", "note.txt", "text/plain"),
    ]
