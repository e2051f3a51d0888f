"""Resumable sample-based runs: the state after every finished step of a run, saved atomically.

A sample-based run (:meth:`gsiirl.algorithms.sample_based.SampleBasedGSIIRL.run_seeds`) carries, from one
outer iteration to the next, the reward parameters, the warm-started MADDPG states and the metric rows so
far; iteration k's randomness is ``fold_in(key, k)``. Saving that carried state after every finished step
and continuing from it gives the numbers of an uninterrupted run (bit for bit on the same machine and
library versions), which is what the tabular ``fit(checkpoint=...)`` already does for (θl, θe).

A checkpoint is two files written by one :meth:`RunState.save`:

* ``PATH.npz`` — the arrays: every leaf of every named pytree, as ``"<tree>/<index>"``
  (``allow_pickle=False``: nothing in it can run code);
* ``PATH.json`` — what identifies the run (method, keys, iterations, the back-end's settings and the game's
  sizes, plus whatever the caller adds), the phase and the number of finished steps, the metric rows, the
  key path, shape and dtype of every leaf, and the SHA-256 of the ``.npz``.

Both are written atomically by :func:`gsiirl.io.atomic.atomic_write_pair`: the new ``.npz`` as ``PATH.npz.pending``,
then the ``.json``, then the ``.npz`` moved into place, so a crash at any moment leaves one save's pair
(the previous one, or — a crash after the ``.json`` — the new one, completed by :meth:`RunState.load`). Pytree *structures* are not stored: the caller
rebuilds them from templates (:func:`jax.eval_shape` or fresh initial states) and the stored key paths,
shapes and dtypes are checked against them.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import io
import json
import os
import time
from typing import Any, Callable

import numpy as np

from gsiirl.algorithms.config import _result_paths
from gsiirl.io.atomic import atomic_write_pair, pending_path, read_paired

FORMAT = "gsiirl-sample-based-checkpoint"
FORMAT_VERSION = 1


def _jsonable(value):
    """``value`` as it reads back from JSON (tuples → lists, NamedTuples → dicts, NumPy scalars → numbers)."""
    if hasattr(value, "_asdict"):
        value = value._asdict()
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


class RunState:
    """The checkpoint of one sample-based run at ``path`` (``PATH.json`` + ``PATH.npz``).

    Args:
        path: where to keep it (a ``.json`` / ``.npz`` suffix is dropped).
        identity: what must be equal for a checkpoint to be continued (JSON-able values); a checkpoint
            written with another identity raises ValueError naming the first field that differs, or, with
            ``discard_mismatched=True``, is deleted and the run starts afresh.
    """

    def __init__(self, path, identity: dict | None = None, discard_mismatched: bool = False) -> None:
        self.json_path, self.npz_path = _result_paths(path)  # as FitResult.save: a .json/.npz suffix replaced
        self.identity = _jsonable(identity or {})
        self.discard_mismatched = discard_mismatched

    def extended(self, identity: dict) -> "RunState":
        """The same checkpoint with ``identity`` added to (and overriding) this one's."""
        return RunState(self.json_path, {**self.identity, **_jsonable(identity)}, self.discard_mismatched)

    @property
    def path(self):
        """The checkpoint's path without suffix (``PATH`` of ``PATH.json`` / ``PATH.npz``)."""
        return self.json_path.with_suffix("")

    def part(self, name: str) -> "RunState":
        """The checkpoint of a part of the same run (``PATH.<name>.json|npz``, same identity and discard
        rule), e.g. the retraining after a run; :meth:`delete` removes the parts with the run's own."""
        if not name or "/" in name or "." in name:
            raise ValueError(f"name: expected a non-empty name without '/' or '.', got {name!r}")
        return RunState(self.path.with_name(f"{self.path.name}.{name}"), self.identity, self.discard_mismatched)

    def save(self, phase: str, completed: int, trees: dict[str, Any], info: dict | None = None) -> None:
        """Save the named pytrees of ``phase`` after ``completed`` finished steps, and ``info`` (JSON-able:
        metric rows, flags)."""
        import jax

        arrays, leaves = {}, {}
        for name, tree in trees.items():
            flat, _ = jax.tree_util.tree_flatten_with_path(tree)
            described = []
            for index, (key_path, leaf) in enumerate(flat):
                array = np.asarray(jax.device_get(leaf))
                arrays[f"{name}/{index}"] = array
                described.append([jax.tree_util.keystr(key_path), list(array.shape), str(array.dtype)])
            leaves[name] = described
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        payload = buffer.getvalue()
        header = {"format": FORMAT, "format_version": FORMAT_VERSION, "identity": self.identity, "phase": phase,
                  "completed": int(completed), "info": _jsonable(info or {}), "leaves": leaves,
                  "npz_sha256": hashlib.sha256(payload).hexdigest()}
        atomic_write_pair(self.npz_path, payload, self.json_path, json.dumps(header).encode())

    def load(self, templates: Callable[[str, int], dict[str, Any]]) -> tuple[str, int, dict[str, Any], dict] | None:
        """``(phase, completed, trees, info)`` of the checkpoint, or None if there is none (or it was
        discarded). ``templates(phase, completed)`` gives a pytree of the right structure for every stored tree
        (arrays or ``jax.ShapeDtypeStruct``s); the stored leaves must match it in key path, shape and dtype.
        """
        import jax
        import jax.numpy as jnp

        if not self.json_path.exists():
            return None
        try:
            header = json.loads(self.json_path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"checkpoint: {self.json_path} cannot be read ({error})") from None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise ValueError(f"checkpoint: {self.json_path} is not a {FORMAT} file")
        if header.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"checkpoint: {self.json_path} has format version {header.get('format_version')!r}, "
                             f"this gsiirl reads {FORMAT_VERSION}")
        stored = header.get("identity", {})
        for name in sorted(set(stored) | set(self.identity)):
            if stored.get(name) != self.identity.get(name):
                if self.discard_mismatched:
                    self.delete()
                    return None
                raise ValueError(f"checkpoint: {self.json_path} was written with {name}={stored.get(name)!r}, this "
                                 f"run has {name}={self.identity.get(name)!r}; use another path or delete it to "
                                 "start again")
        try:
            payload = read_paired(self.npz_path, header.get("npz_sha256"))
        except OSError:
            raise ValueError(f"checkpoint: {self.npz_path} is missing (its .json is there); delete "
                             f"{self.json_path} to start again") from None
        if hashlib.sha256(payload).hexdigest() != header.get("npz_sha256"):
            raise ValueError(f"checkpoint: {self.npz_path} is not the file {self.json_path} was saved with "
                             "(an interrupted save or a damaged file); delete both to start again")
        phase, completed = header["phase"], int(header["completed"])
        with np.load(io.BytesIO(payload), allow_pickle=False) as arrays:
            trees = {}
            for name, template in templates(phase, completed).items():
                flat, treedef = jax.tree_util.tree_flatten_with_path(template)
                described = header["leaves"].get(name)
                expected = [[jax.tree_util.keystr(p), list(np.shape(leaf)), str(np.dtype(leaf.dtype))]
                            for p, leaf in flat]
                if described != expected:
                    raise ValueError(f"checkpoint: {self.json_path}: the stored {name!r} does not have the structure "
                                     "this run computes (written by another version of the code?); delete it "
                                     "to start again")
                leaves = [jnp.asarray(arrays[f"{name}/{index}"]) for index in range(len(flat))]
                trees[name] = jax.tree_util.tree_unflatten(treedef, leaves)
        return phase, completed, trees, header.get("info", {})

    def delete(self) -> None:
        """Remove the checkpoint (both files) and those of its parts (:meth:`part`), e.g. once its results
        are stored elsewhere."""
        stem = glob.escape(self.path.name)
        # ... and the temporary files of a save that was killed before its atomic moves (.<name>.*.tmp)
        parts = [path for pattern in (f"{stem}.*.json", f"{stem}.*.npz", f"{stem}.*.npz.pending", f".{stem}.*.tmp")
                 for path in self.json_path.parent.glob(pattern)]
        for path in (self.json_path, self.npz_path, pending_path(self.npz_path), *parts):
            path.unlink(missing_ok=True)


def as_run_state(checkpoint) -> RunState:
    """``checkpoint`` (a path, or a :class:`RunState`) as a :class:`RunState`; ValueError for anything else."""
    if not isinstance(checkpoint, (str, os.PathLike, RunState)):
        raise ValueError(f"checkpoint: expected a path (str or os.PathLike) or a RunState, got "
                         f"{type(checkpoint).__name__}")
    return checkpoint if isinstance(checkpoint, RunState) else RunState(checkpoint)


class Resume:
    """What a run continues from, and how it saves itself: the loaded checkpoint (``phase``,
    ``completed`` finished steps, ``trees``, ``info``; ``phase`` None for a fresh start) and a clock of the
    run's wall time that continues the interrupted run's (``elapsed()``). ``save`` is a no-op without a
    store, so the methods have one code path with and without a checkpoint."""

    def __init__(self, store: RunState | None = None, templates: Callable[[str, int], dict] | None = None) -> None:
        loaded = store.load(templates) if store is not None else None
        self.store = store
        self.phase, self.completed, self.trees, self.info = loaded or (None, 0, {}, {})
        self._start = time.perf_counter() - float(self.info.get("wall_time", 0.0))

    def elapsed(self) -> float:
        """Seconds of the run so far, including the time before an interruption (up to its last save)."""
        return time.perf_counter() - self._start

    def save(self, phase: str, completed: int, trees: dict[str, Any], info: dict | None = None) -> None:
        if self.store is not None:
            self.store.save(phase, completed, trees, {**(info or {}), "wall_time": self.elapsed()})
