"""Checkpoints of the sample-based back-end (``run_seeds(..., checkpoint=...)``): what identifies a run, and
the pytree structures its saved phases are rebuilt into (:mod:`gsiirl.algorithms.run_state`).

Phases (one file holds the latest phase of a run; ``completed`` counts its finished steps):

* ``"gsiirl"`` — θl [S, P_l], θe [S, P_e] (the reward models' num_params), the interaction and model MADDPG states [S, 2]; completed = outer
  iterations done (0: the warm-up is done);
* ``"fixed"`` — MADDPG trained on fixed rewards (MARL, and MA-IRL's demonstrations): states [S, 1] and, once
  all fine-tunes are done, their last measurement; completed = fine-tunes done (0: the warm-up is done);
* ``"ma-irl"`` — the demonstrations, θl, θe and the model states [S, 1] (with ``ma_irl_gradient="best_response"``
  [S, 3]: the model pair and the two best-response members); completed = outer iterations done.

The retraining of :meth:`~gsiirl.algorithms.reward_transfer.RewardTransfer.retrained_evaluations` (method
``"retrained"``, identified also by the learned θ's it trains on) saves phase ``"fixed"`` in its own file.
"""

from __future__ import annotations

import jax

from gsiirl.algorithms.run_state import Resume, as_run_state
from gsiirl.algorithms.sample_based_passive import BEST_RESPONSE_FROZEN
from gsiirl.algorithms.seed_batch import seedwise, tree_index
from gsiirl.io.versions import checkpoint_versions
from gsiirl.rewards.feature_models import model_identity


class CheckpointedRuns:
    """Mixin of :class:`gsiirl.algorithms.sample_based.SampleBasedGSIIRL` (uses ``game``, ``config``,
    ``_init_states`` and ``_true_params``)."""

    def _run_identity(self, method: str, keys, iterations: int) -> dict:
        """What must be equal for a saved run to be continued: the method, the seeds' keys, the number of
        iterations, every setting, the game's sizes and the versions the numbers depend on. (The game's
        functions and ``metrics_fn`` cannot be fingerprinted: a checkpoint is for the same game.)"""
        game = {name: value for name, value in self.game._asdict().items()
                if isinstance(value, (int, float, str, tuple)) and not callable(value)}
        identity = {"method": method, "keys": jax.device_get(keys).tolist(), "iterations": int(iterations),
                    "config": self.config, "game": game, "versions": checkpoint_versions()}
        if self.game.learner_reward_model is not None or self.game.expert_reward_model is not None:
            identity["reward_models"] = [model_identity(model) for model in self.reward_models]
        return identity

    def _resume(self, method: str, ops, keys, iterations: int, checkpoint, identity: dict | None = None) -> Resume:
        """The :class:`Resume` of a run: a fresh start without ``checkpoint`` (a path or a
        :class:`RunState`, to which this run's identity and ``identity`` are added), else whatever the
        checkpoint holds."""
        if checkpoint is None:
            return Resume()
        store = as_run_state(checkpoint)
        return Resume(store.extended(self._run_identity(method, keys, iterations) | (identity or {})),
                      self._checkpoint_templates(ops, keys, iterations))

    def _checkpoint_templates(self, ops, keys, iterations: int):
        """``templates(phase, completed)``: pytrees with the structure of each phase's saved trees."""
        size = keys.shape[0]

        def fresh(members: int):
            return seedwise(lambda key: self._init_states(key, members), size > 1, jit=False)(keys)

        def measured(first_member: bool):
            def step(states):
                m = ops["step"](keys, states, self._true_params(size))[1]
                return tree_index(m, (slice(None), 0)) if first_member else m
            return jax.eval_shape(step, fresh(1))

        def thetas():
            theta_l, theta_e = ops["init_parameters"](keys)
            return {"theta_l": theta_l, "theta_e": theta_e}

        def templates(phase: str, completed: int) -> dict:
            if phase == "gsiirl":
                return {**thetas(), "states": fresh(2)}
            if phase == "fixed":
                return {"states": fresh(1), **({"measured": measured(False)} if completed == iterations else {})}
            if phase == "ma-irl":
                members = len(BEST_RESPONSE_FROZEN) if self.config.ma_irl_gradient == "best_response" else 1
                return {**thetas(), "states": fresh(members), "demos": measured(True)}
            raise ValueError(f"checkpoint: unknown phase {phase!r} (written by another version of gsiirl?)")

        return templates
