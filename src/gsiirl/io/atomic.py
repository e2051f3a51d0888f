"""Atomic file writes: a temp file in the target's folder, fsync, then ``os.replace``.

A crash or an exception mid-write leaves the previous file untouched and no temp file behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable


def check_output_directory(path, name: str = "out") -> Path:
    """``path`` as a Path, with a clear error if it exists but is not a directory (before any work)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{name}: {path} exists and is not a directory; expected a directory for the results")
    return path


def _file_mode(path: Path) -> int:
    """The permission bits an ordinary ``open(path, "w")`` would give: the existing file's, else 0o666
    minus the umask (``mkstemp`` creates its files 0o600, which would hide results from other users)."""
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


def atomic_write(path, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(stream)`` on a temp file beside ``path`` and move it into place atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, _file_mode(path))
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return path


def atomic_write_bytes(path, payload: bytes) -> Path:
    """Write ``payload`` to ``path`` atomically."""
    return atomic_write(path, lambda stream: stream.write(payload))
