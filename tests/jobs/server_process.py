"""The test app served by uvicorn in a process of its own, for a test to kill:
``python -m tests.jobs.server_process CATALOGUE_URL FOLDER PORT``."""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn

from tests.jobs.service import job_settings, make_app

if __name__ == "__main__":
    url, folder, port = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    settings = job_settings(url, folder, base_url=f"http://127.0.0.1:{port}")
    uvicorn.run(make_app(settings), host="127.0.0.1", port=port, log_level="warning")
