"""Trajectories on disk: a validated ``.npz`` with named arrays and a JSON header (DESIGN §8).

Format (schema ``gsiirl.trajectories``, version 1; see docs/file_format.md):

* ``states``, ``learner_actions``, ``expert_actions``: int32 arrays [N, T];
* ``header``: the UTF-8 bytes of a JSON object, stored as a 1-D uint8 array, with keys
  ``schema``, ``version``, ``num_trajectories``, ``horizon``, ``num_states``, ``num_learner_actions``,
  ``num_expert_actions``, ``discount`` and ``metadata`` (a JSON object of user data).

No pickled objects are stored or accepted. Saving is atomic (temp file in the same directory, then
``os.replace``), so a reader never sees a half-written file.
"""

from __future__ import annotations

import json
import numbers
import zipfile
import zlib
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

from gsiirl.io.atomic import atomic_write

from gsiirl.solvers.sampling import Trajectories
from gsiirl.validation import check_count

__all__ = ["SCHEMA_NAME", "SCHEMA_VERSION", "Trajectories", "save_trajectories", "load_trajectories"]

SCHEMA_NAME = "gsiirl.trajectories"
SCHEMA_VERSION = 1
ARRAY_FIELDS = ("states", "learner_actions", "expert_actions")
SIZE_FIELDS = {"states": "num_states", "learner_actions": "num_learner_actions",
               "expert_actions": "num_expert_actions"}
HEADER_KEYS = ("schema", "version", "num_trajectories", "horizon", "num_states", "num_learner_actions",
               "num_expert_actions", "discount", "metadata")


def _check_discount(value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (0.0 < float(value) <= 1.0):
        raise ValueError(f"discount: expected a number in (0, 1], got {value!r}")
    return float(value)


def _check_index_array(name: str, array: np.ndarray, size: int, shape: tuple[int, ...] | None) -> None:
    if array.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array [N, T], got shape {array.shape}")
    if shape is not None and array.shape != shape:
        raise ValueError(f"{name}: expected shape {shape} (as states), got {array.shape}")
    if array.size and (array.min() < 0 or array.max() >= size):
        raise ValueError(f"{name}: indices must lie in [0, {size}) ({SIZE_FIELDS[name]} = {size}), "
                         f"got range [{array.min()}, {array.max()}]")


def save_trajectories(path, trajectories, *, num_states: int, num_learner_actions: int,
                      num_expert_actions: int, discount: float, metadata: dict | None = None) -> Path:
    """Write trajectories to ``path`` (exactly that name) as a gsiirl ``.npz``; returns the path.

    Args:
        path: destination file (conventionally ``*.npz``); replaced atomically if it exists.
        trajectories: a :class:`Trajectories` (or any object with ``states``, ``learner_actions``,
            ``expert_actions``), integer arrays [N, T] (numpy or JAX), stored as int32.
        num_states, num_learner_actions, num_expert_actions: sizes S, A_l, A_e of the game; every
            index must lie in range.
        discount: γ in (0, 1] of the game the trajectories come from.
        metadata: optional JSON-serialisable dict (no NaN/inf), stored in the header as JSON.
    """
    sizes = {"num_states": check_count("num_states", num_states, 1),
             "num_learner_actions": check_count("num_learner_actions", num_learner_actions, 1),
             "num_expert_actions": check_count("num_expert_actions", num_expert_actions, 1)}
    discount = _check_discount(discount)
    metadata = {} if metadata is None else metadata
    if not isinstance(metadata, dict):
        raise ValueError(f"metadata: expected a dict, got {type(metadata).__name__}")

    arrays = {}
    for name in ARRAY_FIELDS:
        if not hasattr(trajectories, name):
            raise ValueError(f"trajectories: missing field {name!r}")
        array = np.asarray(getattr(trajectories, name))
        if not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"{name}: expected an integer array, got dtype {array.dtype}")
        _check_index_array(name, array, sizes[SIZE_FIELDS[name]], arrays["states"].shape if arrays else None)
        arrays[name] = array.astype(np.int32)
    num_trajectories, horizon = arrays["states"].shape
    if horizon < 1:
        raise ValueError(f"states: expected a horizon T >= 1, got shape {arrays['states'].shape}")

    header = {"schema": SCHEMA_NAME, "version": SCHEMA_VERSION, "num_trajectories": int(num_trajectories),
              "horizon": int(horizon), **sizes, "discount": discount, "metadata": metadata}
    try:
        header_text = json.dumps(header, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as error:
        raise ValueError(f"metadata: must be JSON-serialisable with no NaN/inf ({error})") from None

    path = Path(path)
    header_bytes = np.frombuffer(header_text.encode("utf-8"), dtype=np.uint8)
    atomic_write(path, lambda stream: np.savez_compressed(stream, header=header_bytes, **arrays))
    return path


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """All arrays of the file, or a ValueError that says the file is not a readable trajectory file."""
    if not path.is_file():
        raise FileNotFoundError(f"trajectory file not found: {path}")
    with open(path, "rb") as handle:
        signature = handle.read(6)
    if signature.startswith(b"\x93NUMPY"):
        raise ValueError(f"{path}: not a gsiirl trajectory file (a single .npy array, expected an .npz archive)")
    if not signature.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        raise ValueError(f"{path}: not a readable gsiirl trajectory file (not an .npz archive: the file "
                         f"does not start with the zip signature; empty, truncated or another format)")
    try:
        with np.load(path, allow_pickle=False) as loaded:
            return {name: loaded[name] for name in loaded.files}
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error, NotImplementedError,
            RuntimeError) as error:  # what zipfile / zlib / numpy raise on damaged archives
        if "pickled" in str(error):
            raise ValueError(f"{path}: not a readable gsiirl trajectory file (it holds a pickled object "
                             f"array; gsiirl files contain only numeric arrays and are never unpickled)") from None
        raise ValueError(f"{path}: not a readable gsiirl trajectory file (corrupt, truncated or not an "
                         f".npz archive: {type(error).__name__}: {error})") from None


def _parse_header(path: Path, raw: np.ndarray) -> dict[str, Any]:
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise ValueError(f"{path}: header: expected a 1-D uint8 array of UTF-8 JSON, got dtype {raw.dtype} "
                         f"shape {raw.shape}")
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: header: not valid UTF-8 JSON ({error})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: header: expected a JSON object, got {type(header).__name__}")
    if header.get("schema") != SCHEMA_NAME:
        raise ValueError(f"{path}: header.schema: expected {SCHEMA_NAME!r}, got {header.get('schema')!r}")
    version = header.get("version")
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise ValueError(f"{path}: header.version: this reader supports version {SCHEMA_VERSION}, "
                         f"got {version!r}")
    missing = [key for key in HEADER_KEYS if key not in header]
    unknown = sorted(set(header) - set(HEADER_KEYS))
    if missing:
        raise ValueError(f"{path}: header: missing key(s) {missing}")
    if unknown:
        raise ValueError(f"{path}: header: unknown key(s) {unknown} for version {SCHEMA_VERSION}")
    try:
        check_count("num_trajectories", header["num_trajectories"], 0)
        check_count("horizon", header["horizon"], 1)
        for key in ("num_states", "num_learner_actions", "num_expert_actions"):
            check_count(key, header[key], 1)
        _check_discount(header["discount"])
    except ValueError as error:
        raise ValueError(f"{path}: header.{error}") from None
    if not isinstance(header["metadata"], dict):
        raise ValueError(f"{path}: header.metadata: expected a JSON object, got "
                         f"{type(header['metadata']).__name__}")
    return header


def load_trajectories(path) -> tuple[Trajectories, dict[str, Any]]:
    """Read and validate a file written by :func:`save_trajectories`.

    Returns:
        ``(trajectories, header)``: a :class:`Trajectories` of int32 JAX arrays [N, T], and the header
        dict (``schema``, ``version``, ``num_trajectories``, ``horizon``, ``num_states``,
        ``num_learner_actions``, ``num_expert_actions``, ``discount``, ``metadata``).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is corrupt, truncated, not an ``.npz``, or violates the schema (wrong
            version, missing/extra arrays, dtype not int32, shapes that disagree with each other or the
            header, indices out of range); the message names the offending field.
    """
    path = Path(path)
    contents = _read_npz(path)
    if "header" not in contents:
        raise ValueError(f"{path}: header: missing (not a gsiirl trajectory file)")
    header = _parse_header(path, contents.pop("header"))
    missing = [name for name in ARRAY_FIELDS if name not in contents]
    unknown = sorted(set(contents) - set(ARRAY_FIELDS))
    if missing:
        raise ValueError(f"{path}: missing array(s) {missing}")
    if unknown:
        raise ValueError(f"{path}: unknown array(s) {unknown} for version {SCHEMA_VERSION}")
    expected_shape = (header["num_trajectories"], header["horizon"])
    for name in ARRAY_FIELDS:
        array = contents[name]
        if array.dtype != np.int32:
            raise ValueError(f"{path}: {name}: expected dtype int32, got {array.dtype}")
        if array.shape != expected_shape:
            raise ValueError(f"{path}: {name}: expected shape {expected_shape} "
                             f"(header num_trajectories, horizon), got {array.shape}")
        try:
            _check_index_array(name, array, header[SIZE_FIELDS[name]], expected_shape)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None
    trajectories = Trajectories(*(jnp.asarray(contents[name], dtype=jnp.int32) for name in ARRAY_FIELDS))
    return trajectories, header
