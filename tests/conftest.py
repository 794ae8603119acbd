"""Shared fixtures: one small synthetic release per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from spherex_archive.synth.release import SynthOptions, synthesise

SMALL_RELEASE = dict(
    detector_size=64,
    fields=["M31", "NCP", "RA0"],
    exposures=2,
    deep_fields=[("NEP", 8), ("SEP", 2)],
    seed=7,
)


@pytest.fixture(scope="session")
def small_release(tmp_path_factory) -> Path:
    """A bucket root holding a small but complete QR2 release (64-pixel detectors)."""
    root = tmp_path_factory.mktemp("release")
    synthesise(SynthOptions(out=root, **SMALL_RELEASE), progress=False, log=lambda _: None)
    return root
