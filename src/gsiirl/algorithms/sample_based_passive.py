"""The passive methods of the sample-based back-end (DESIGN §7): MARL (MADDPG on both TRUE rewards, one
value per seed) and MA-IRL (demonstrations of that policy, then maximum-likelihood descent on both θ's with
Lemma 1/3's Monte-Carlo gradients; no interaction).

MA-IRL's μ(π) (``SampleBasedConfig.ma_irl_gradient``): "joint" takes both from the model pair π^{θl,θe}, the
policy it reports; "best_response" trains two more members beside it, in the same vmapped batch: the learner
team on θl against the demonstrator's expert actors held fixed (μ_l) and the expert on θe against the
demonstrator's learner actors held fixed (μ_e) — each player's likelihood with the other's policy known."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gsiirl.algorithms.run_state import Resume
from gsiirl.algorithms.sample_based_config import _params, require_finite
from gsiirl.algorithms.seed_batch import fold_in_each, seedwise, split_each, tree_index
from gsiirl.games.continuous import RewardParams, expected_gradient
from gsiirl.rewards import project_to_ball
from gsiirl.solvers.maddpg_reset import with_team_actors

# MA-IRL's members with ma_irl_gradient="best_response": the model pair (reported), the learner's best response
# (expert frozen at the demonstrator), the expert's best response (learner frozen at the demonstrator)
BEST_RESPONSE_FROZEN = ((0.0, 0.0), (0.0, 1.0), (1.0, 0.0))


class PassiveMethods:
    """Mixin of :class:`gsiirl.algorithms.sample_based.SampleBasedGSIIRL` (uses its ``game``, ``config``,
    ``_train_fixed``, ``_warm_states``, ``_fine_tune``, ``_group_evaluation``, ``_inner_update``,
    ``_reset_metrics`` and ``_theta_metrics``)."""

    def _true_params(self, size: int) -> RewardParams:
        """Both TRUE rewards, [size, 1] (the MARL policy)."""
        model_l, model_e = self.reward_models
        return _params(jnp.zeros((size, 1, model_l.num_params)), jnp.zeros((size, 1, model_e.num_params)), 1.0, 1.0)

    def _run_marl(self, ops, keys, iterations, callback, resume: Resume):
        split = split_each(keys, 2)
        states, _, resets = self._train_fixed(ops, split[:, 0], self._true_params(keys.shape[0]), iterations,
                                              resume)
        states = tree_index(states, (slice(None), 0))
        metrics = self._group_evaluation(ops, split[:, 1], states)
        for s, m in enumerate(metrics):
            m.update(wall_time=resume.elapsed(), **self._reset_metrics(resets, s))
            require_finite("marl", iterations - 1, s, m, self.game)
        callback(iterations - 1, metrics)
        return [[m] for m in metrics], states

    def _run_ma_irl(self, ops, keys, iterations, callback, resume: Resume):
        """Passive MA-IRL: demonstrations with both TRUE rewards, then ML descent on both θ's."""
        size = keys.shape[0]
        best_response = self.config.ma_irl_gradient == "best_response"
        split = split_each(keys, 4)
        demo_keys, init_keys, warm_keys, loop_keys = (split[:, i] for i in range(4))
        if best_response:
            frozen = jnp.asarray(BEST_RESPONSE_FROZEN, jnp.float32)
            members = len(BEST_RESPONSE_FROZEN)
            model = lambda tl, te: _params(jnp.repeat(tl[:, None], members, axis=1),
                                           jnp.repeat(te[:, None], members, axis=1), 0.0, 0.0, frozen)
        else:
            model = lambda tl, te: _params(tl[:, None], te[:, None], 0.0, 0.0)
        learner_member, expert_member = (1, 2) if best_response else (0, 0)  # whose rollouts give μ_l, μ_e
        if resume.phase == "ma-irl":
            demos, theta_l, theta_e, states = (resume.trees[name] for name in ("demos", "theta_l", "theta_e", "states"))
            histories = resume.info["histories"]
        else:
            demonstrator, demos, _ = self._train_fixed(ops, demo_keys, self._true_params(size), iterations, resume)
            demos = tree_index(demos, (slice(None), 0))  # the last measurement = the demonstrations
            theta_l, theta_e = ops["init_parameters"](init_keys)
            splice = None
            if best_response:  # the frozen teams start (and stay) at the demonstrator's actors
                demonstrator = tree_index(demonstrator, (slice(None), 0))
                splice = lambda fresh: self._with_demonstrated_teams(fresh, demonstrator, frozen > 0.5)
            states = self._warm_states(ops, warm_keys, model(theta_l, theta_e), splice)
            histories = [[] for _ in range(size)]
        save = lambda done: resume.save("ma-irl", done, {"demos": demos, "theta_l": theta_l, "theta_e": theta_e,
                                                         "states": states}, {"histories": histories})
        if resume.phase != "ma-irl":
            save(0)
        descend = seedwise(self._ma_irl_update, size > 1, jit=False)
        state = tree_index(states, (slice(None), 0))
        for k in range(resume.completed if resume.phase == "ma-irl" else 0, iterations):
            step_keys = split_each(fold_in_each(loop_keys, k), 2)
            states, measured, resets = self._fine_tune(ops, step_keys[:, 0], states, model(theta_l, theta_e))
            state = tree_index(states, (slice(None), 0))  # the model pair: reported
            metrics = self._group_evaluation(ops, step_keys[:, 1], state)
            losses = ops["nll"](state.actor, demos["data"])
            wall = resume.elapsed()
            for s, row in enumerate(metrics):
                row.update(wall_time=wall, expert_loss=float(losses[s]), **self._reset_metrics(resets, s),
                           **self._theta_metrics(theta_l[s], theta_e[s]))
                require_finite("ma-irl", k, s, row, self.game)
                histories[s].append(row)
            theta_l, theta_e = descend(theta_l, theta_e, tree_index(measured["mu_l"], (slice(None), learner_member)),
                                       tree_index(measured["mu_e"], (slice(None), expert_member)),
                                       demos["mu_l"], demos["mu_e"])
            save(k + 1)
            callback(k, metrics)
        return histories, state

    def _with_demonstrated_teams(self, states, demonstrator, teams):
        """states [S, P] with the actors of the teams flagged in ``teams`` [P, 2] taken from the demonstrator
        states [S] (:func:`gsiirl.solvers.maddpg_reset.with_team_actors`)."""
        splice = lambda state, source, flags: with_team_actors(self.game, state, source, flags)
        return jax.vmap(jax.vmap(splice, in_axes=(0, None, 0)), in_axes=(0, 0, None))(states, demonstrator, teams)

    def _ma_irl_update(self, theta_l, theta_e, mu_l, mu_e, demo_mu_l, demo_mu_e):
        c = self.config
        theta_e = self._inner_update(theta_e, mu_e, demo_mu_e)  # Lemma 1
        model = self.reward_models[0]
        mu_l, demo_mu_l = expected_gradient(model, theta_l, mu_l), expected_gradient(model, theta_l, demo_mu_l)
        grad_l = (mu_l - demo_mu_l) / c.temperature + c.regularization * theta_l  # Lemma 3
        return project_to_ball(theta_l - c.inner_step_size * grad_l, c.radius), theta_e
