"""The command line: a manual for --help, one clear line for bad input, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "spherex_archive.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_help_is_a_manual():
    result = run("synth", "--help")
    assert result.returncode == 0
    for word in ("--detector-size", "--deep-fields", "MD5SUMS", "Examples"):
        assert word in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--detector-size", "-5"], "--detector-size must be between"),
        (["--release", "qr9"], "unknown release 'qr9'"),
        (["--fields", "NOWHERE"], "unknown field 'NOWHERE'"),
        (["--deep-fields", "XEP:3"], "unknown deep field 'XEP'"),
        (["--exposures", "-1"], "--exposures must be 0 or more"),
    ],
)
def test_impossible_options_get_one_line(tmp_path, args, message):
    result = run("synth", "--out", str(tmp_path / "out"), *args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_output_folder_that_is_a_file(tmp_path):
    target = tmp_path / "file"
    target.write_text("not a folder")
    result = run("synth", "--out", str(target), "--detector-size", "32")
    assert result.returncode == 2
    assert "exists and is not a folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_week_is_a_usage_error(tmp_path):
    result = run("synth", "--out", str(tmp_path), "--weeks", "2025-51")
    assert result.returncode == 2
    assert "not a planning period" in result.stderr
    assert "Traceback" not in result.stderr
