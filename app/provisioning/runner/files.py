"""Private files of a run: written once, readable by the worker's user only (mode 0600), since they hold
opened credentials or scrubbed copies of a run's output."""

from __future__ import annotations

import os
from pathlib import Path


def write_private(path: Path, text: str) -> None:
    """Create `path` (it must not exist: a run's files are never shared) with `text`, mode 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def write_bytes(path: Path, data: bytes) -> None:
    """Write (or overwrite) `path` with `data`, mode 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
