"""Atomic file writes: a temp file in the target's folder, fsync, then ``os.replace``.

A crash or an exception mid-write leaves the previous file untouched and no temp file behind; only a
killed process (SIGKILL, power loss) can leave a temp file, which :func:`remove_stale_temporaries` clears.
"""

from __future__ import annotations

import hashlib
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


def remove_stale_temporaries(directory) -> list[Path]:
    """Delete the temp files (``.<name>.*.tmp``) that :func:`atomic_write` left in ``directory`` when its
    process was killed mid-write; call it only while no other writer uses the directory (e.g. under
    ``gsiirl run``'s lock). Returns the removed paths."""
    removed = []
    for path in Path(directory).glob(".*.tmp"):
        if path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def atomic_write_bytes(path, payload: bytes) -> Path:
    """Write ``payload`` to ``path`` atomically."""
    return atomic_write(path, lambda stream: stream.write(payload))


def pending_path(path) -> Path:
    """Where :func:`atomic_write_pair` keeps the new data file until its header is in place (``DATA.pending``)."""
    path = Path(path)
    return path.with_name(path.name + ".pending")


def atomic_write_pair(data_path, payload: bytes, header_path, header: bytes) -> None:
    """Write a data file and the header that records its SHA-256, so that a crash at any moment leaves a
    pair that reads back (:func:`read_paired`): the data goes to ``DATA.pending`` first, then the header,
    then the data is moved into place. Writing the data in place first would leave, after a crash between
    the two writes, the old header beside the new data: a pair that refers to no save at all."""
    pending = pending_path(data_path)
    atomic_write_bytes(pending, payload)
    atomic_write_bytes(header_path, header)
    os.replace(pending, data_path)


def read_paired(data_path, digest: str | None) -> bytes:
    """The bytes of ``data_path`` written with a header that records ``digest``: if a save stopped after its
    header (the data still in ``DATA.pending``), the pending data is moved into place and returned. Otherwise
    the bytes of ``data_path`` as they are (the caller checks the digest); FileNotFoundError if neither exists."""
    data_path = Path(data_path)
    try:
        payload = data_path.read_bytes()
    except FileNotFoundError:
        payload = None
    if payload is not None and (digest is None or hashlib.sha256(payload).hexdigest() == digest):
        return payload
    pending = pending_path(data_path)
    try:
        staged = pending.read_bytes()
    except FileNotFoundError:
        staged = None
    if staged is not None and digest is not None and hashlib.sha256(staged).hexdigest() == digest:
        os.replace(pending, data_path)
        return staged
    if payload is None:
        raise FileNotFoundError(f"{data_path}: no such file")
    return payload
