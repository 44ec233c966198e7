"""Durable files: the one sha256 of a file, and fsync of a file or a directory."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["fsync", "sha256_of"]


def sha256_of(path: Path) -> str:
    """The sha256 of a file, in hex."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def fsync(path: Path) -> None:
    """Flush a file or directory to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
