"""Keeping a run's secrets out of what VCOps keeps: every event and error scrubbed, and the artifacts copied
scrubbed, without the environment recorded with the command."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from app.provisioning.runner.files import write_bytes

SCRUBBED = "********"


class Scrubber:
    """Replaces every secret of a run (and its JSON-escaped spelling, and each line of a key) with ********."""

    def __init__(self, secrets: Iterable[str]) -> None:
        variants: set[str] = set()
        for secret in secrets:
            if not secret:
                continue
            variants.update({secret, secret.strip(), json.dumps(secret)[1:-1]})
            variants.update(line.strip() for line in secret.splitlines() if len(line.strip()) >= 16
                            and not line.startswith("-----"))
        # Longest first, so that a secret containing another is replaced whole.
        self._texts = sorted((v for v in variants if len(v) >= 3), key=len, reverse=True)
        self._bytes = [v.encode() for v in self._texts]

    def text(self, value: str) -> str:
        for secret in self._texts:
            if secret in value:
                value = value.replace(secret, SCRUBBED)
        return value

    def data(self, value: bytes) -> bytes:
        for secret in self._bytes:
            if secret in value:
                value = value.replace(secret, SCRUBBED.encode())
        return value


def keep_artifacts(source: Path, target: Path, scrub: Scrubber) -> None:
    """Copy the run's artifacts, scrubbed; the environment recorded with the command is left out."""
    target.mkdir(parents=True, exist_ok=True, mode=0o700)
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if path.is_symlink() or relative.name in {"ssh_key_data", "env.list"}:
            continue
        destination = target / relative
        if path.is_dir():
            destination.mkdir(exist_ok=True, mode=0o700)
            continue
        if not path.is_file():
            continue  # a FIFO (the key pipe) or a socket
        data = path.read_bytes()
        if relative == Path("command"):
            try:
                recorded = json.loads(data)
                data = json.dumps({"command": recorded.get("command"), "cwd": recorded.get("cwd")}).encode()
            except ValueError:
                data = b""
        destination.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_bytes(destination, scrub.data(data))
