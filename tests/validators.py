"""The IVOA's own checkers (STILTS), run on what the archive writes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

STILTS = shutil.which("stilts")


def votlint(data: bytes, tmp_path: Path) -> list[str]:
    """votlint's complaints about a VOTable document (schema, UCDs and units checked too)."""
    path = tmp_path / "doc.xml"
    path.write_bytes(data)
    result = subprocess.run(
        [STILTS, "votlint", f"votable={path}", "validate=true", "ucd=true", "unit=true"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]


def xsdvalidate(data: bytes, tmp_path: Path, name: str = "doc") -> str:
    """STILTS's schema check of an XML document: "" when it is valid, else what it said."""
    path = tmp_path / f"{name}.xml"
    path.write_bytes(data)
    result = subprocess.run(
        [STILTS, "xsdvalidate", "uselocals=true", f"doc={path}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return "" if result.returncode == 0 else result.stdout + result.stderr
