"""Reward transfer for the sample-based back-end: a policy retrained FROM SCRATCH on learned rewards with
the MARL baseline's budget and random numbers, scored with the true rewards (docs/hri.md, "Reward
transfer"). Per-seed differences to the MARL unit then isolate the rewards from the in-run policy, which
has followed the rewards along the outer loop."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gsiirl.algorithms.sample_based_config import _params
from gsiirl.algorithms.seed_batch import check_key, check_keys, split_each, tree_index


class RewardTransfer:
    """Mixin of :class:`gsiirl.algorithms.sample_based.SampleBasedGSIIRL` (uses its ``game``, ``_ops``,
    ``_resume``, ``_train_fixed``, ``_group_evaluation`` and ``_reset_metrics``)."""

    def retrained_evaluation(self, key: jax.Array, theta_l: jax.Array, theta_e: jax.Array, iterations: int, *,
                             true_learner_reward: bool = False, true_expert_reward: bool = False,
                             checkpoint=None) -> dict:
        """Reward transfer: a joint policy trained FROM SCRATCH on the learned pair (r_li + r_ld^θl, r_e^θe)
        with the MARL baseline's budget (warm-up + ``iterations`` fine-tunes), scored with the TRUE rewards.

        With the key of the MARL unit of the same seed (``run("marl", key, iterations)``) the training
        randomness is identical to MARL's, so per-seed differences isolate the rewards: the in-run
        policy of GSIIRL/MA-IRL has followed the rewards along the outer loop, this one has not.
        ``true_learner_reward`` / ``true_expert_reward`` swap one learned reward for the true one (both:
        exactly the MARL unit), which splits a gap between the two learned rewards. ``checkpoint`` as in
        :meth:`retrained_evaluations`. theta_l [P_l], theta_e [P_e] (the reward models' num_params). Returns the same metrics as :meth:`evaluation`.
        """
        theta_l, theta_e = jnp.asarray(theta_l, jnp.float32), jnp.asarray(theta_e, jnp.float32)
        sizes = tuple(model.num_params for model in self.reward_models)
        if theta_l.shape != sizes[:1] or theta_e.shape != sizes[1:]:
            raise ValueError(f"theta_l, theta_e: expected shapes ({sizes[0]},) and ({sizes[1]},) (the reward models' "
                             f"num_params), got {theta_l.shape} and {theta_e.shape}")
        return self.retrained_evaluations(check_key(key)[None], theta_l[None], theta_e[None], iterations,
                                          true_learner_reward=true_learner_reward,
                                          true_expert_reward=true_expert_reward, checkpoint=checkpoint)[0]

    def retrained_evaluations(self, keys: jax.Array, thetas_l: jax.Array, thetas_e: jax.Array, iterations: int, *,
                              true_learner_reward: bool = False, true_expert_reward: bool = False,
                              checkpoint=None) -> list[dict]:
        """:meth:`retrained_evaluation` for a seed group: keys [S, 2], thetas_l [S, P_l], thetas_e [S, P_e].

        ``checkpoint`` (a path or a :class:`gsiirl.algorithms.run_state.RunState`): the training is saved
        after its warm-up and every fine-tune, as a MARL run's (``run_seeds``), and continued from there
        when called again with the same arguments (another θ, key, flag or setting raises ValueError).
        """
        keys = check_keys(keys)
        thetas_l, thetas_e = jnp.asarray(thetas_l, jnp.float32), jnp.asarray(thetas_e, jnp.float32)
        size = keys.shape[0]
        sizes = tuple(model.num_params for model in self.reward_models)
        if thetas_l.shape != (size, sizes[0]) or thetas_e.shape != (size, sizes[1]):
            raise ValueError(f"thetas_l, thetas_e: expected shapes ({size}, {sizes[0]}) and ({size}, {sizes[1]}) "
                             f"(the reward models' num_params), got {thetas_l.shape} and {thetas_e.shape}")
        if isinstance(iterations, bool) or int(iterations) != iterations or int(iterations) < 1:
            raise ValueError(f"iterations: expected a positive integer, got {iterations}")
        ops = self._ops(size > 1)
        split = split_each(keys, 2)  # the same split as _run_marl
        params = _params(thetas_l[:, None], thetas_e[:, None], float(true_learner_reward), float(true_expert_reward))
        resume = self._resume("retrained", ops, keys, int(iterations), checkpoint, {
            "theta_l": jax.device_get(thetas_l).tolist(), "theta_e": jax.device_get(thetas_e).tolist(),
            "true_learner_reward": bool(true_learner_reward), "true_expert_reward": bool(true_expert_reward)})
        states, _, resets = self._train_fixed(ops, split[:, 0], params, int(iterations), resume)
        metrics = self._group_evaluation(ops, split[:, 1], tree_index(states, (slice(None), 0)))
        return [m | self._reset_metrics(resets, s) for s, m in enumerate(metrics)]
