"""Resumable ``fit``: the state after every finished outer iteration, saved atomically.

An outer iteration's randomness comes from ``fold_in(key, k)`` and its only carried state is
(θl, θe), so a run resumed from the checkpoint after iteration k gives the numbers the uninterrupted
run would have given. What a checkpoint holds is a :class:`FitResult` (policy at the current θ's)
whose ``config`` also records ``completed_iterations`` and a digest of the game as the learner sees it
(dynamics, initial distribution, known r_li and the queried r_ld table), so a checkpoint from another
game or other settings is refused instead of silently continued.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from gsiirl.algorithms.config import FitResult, _result_paths
from gsiirl.io.atomic import pending_path

COMPLETED = "completed_iterations"
GAME_DIGEST = "game_sha256"
CALLER = "caller_identity"  # what a RunState checkpoint adds (e.g. `gsiirl run`'s experiment and options)
VERSIONS = "library_versions"  # the versions the numbers depend on: a checkpoint of other versions is not continued


def game_digest(game) -> str:
    """SHA-256 over what the learner may read of the game: dynamics, initial distribution, r_li and
    the (queried) r_ld table, horizon and discount — not the hidden ``expert_reward``."""
    import jax

    digest = hashlib.sha256(f"{game.horizon}|{float(game.discount)!r}".encode())
    for leaf in jax.tree_util.tree_leaves((game.dynamics, game.initial, game.learner_reward, game.learner_oracle)):
        array = np.ascontiguousarray(np.asarray(leaf))
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def load_checkpoint(path, identity: dict, discard_mismatched: bool = False) -> FitResult | None:
    """The checkpoint at ``path`` if it exists (None otherwise), after checking that it was written
    by a run with the same ``identity`` (settings and game digest); ValueError names the first field
    that differs, or, with ``discard_mismatched``, the checkpoint is deleted and None returned."""
    json_path, arrays_path = _result_paths(path)
    if not json_path.exists():
        return None
    saved = FitResult.load(path)
    if COMPLETED not in saved.config:
        raise ValueError(f"checkpoint: {json_path} is a saved result, not a fit checkpoint")
    for name, value in identity.items():
        if saved.config.get(name) != value:
            if discard_mismatched:
                json_path.unlink(missing_ok=True)
                arrays_path.unlink(missing_ok=True)
                pending_path(arrays_path).unlink(missing_ok=True)
                return None
            raise ValueError(f"checkpoint: {json_path} was written with {name}={saved.config.get(name)!r}, this "
                             f"call has {name}={value!r}; use another path or delete it to start again")
    return saved


def write_checkpoint(path, result: FitResult, completed: int) -> Path:
    """Save ``result`` with ``completed_iterations`` = ``completed`` (atomically, .json + .npz)."""
    marked = FitResult(result.theta_l, result.theta_e, result.policy, result.history,
                       result.config | {COMPLETED: int(completed)})
    return marked.save(path)[0]


def strip_marker(result: FitResult) -> FitResult:
    """The result without the checkpoint's bookkeeping field (what an uninterrupted ``fit`` returns)."""
    bookkeeping = (COMPLETED, GAME_DIGEST, CALLER, VERSIONS)
    config = {name: value for name, value in result.config.items() if name not in bookkeeping}
    return FitResult(result.theta_l, result.theta_e, result.policy, result.history, config)
