"""Algorithm 1's outer loop on the sample-based back-end (GSIIRL): interact once per iteration, t_k inner
steps on θe (Lemma 1's Monte-Carlo gradient), the SPSA hypergradient of the 2 + 2n perturbed pairs trained as
one vmapped batch, projected ascent on θl; saved after every iteration (:mod:`gsiirl.algorithms.run_state`)."""

from __future__ import annotations

import warnings

import jax.numpy as jnp

from gsiirl.algorithms import schedules
from gsiirl.algorithms.run_state import Resume
from gsiirl.algorithms.sample_based_config import require_finite
from gsiirl.algorithms.seed_batch import fold_in_each, seedwise, split_each, tree_index

INTERACTION_PREFIX = "interaction_"  # GSIIRL's metrics of the interaction pair (learner policy + TRUE expert)


class OuterLoop:
    """Mixin of :class:`gsiirl.algorithms.sample_based.SampleBasedGSIIRL` (uses its ``config``,
    ``_warm_states``, ``_fine_tune``, ``_ascent``, ``_group_evaluation``, ``_reset_metrics`` and
    ``_theta_metrics``)."""

    def _run_gsiirl(self, ops, keys, iterations, callback, resume: Resume):
        """Algorithm 1: interaction, t_k inner steps, SPSA hypergradient, projected ascent on θl."""
        c, size = self.config, keys.shape[0]
        batched = size > 1
        split = split_each(keys, 3)
        init_keys, warm_keys, loop_keys = split[:, 0], split[:, 1], split[:, 2]
        step = c.outer_step_size or schedules.outer_step_size(iterations, c.lipschitz)
        ascend = seedwise(self._ascent(step), batched, jit=False)
        if resume.phase == "gsiirl":
            theta_l, theta_e, states = (resume.trees[name] for name in ("theta_l", "theta_e", "states"))
            histories, warned_zero = resume.info["histories"], resume.info["warned_zero"]
        else:
            theta_l, theta_e = ops["init_parameters"](init_keys)
            # Two warm-started policies trained as one batch: the interaction policy (the learner plays
            # r_ld^θl + r_li, the simulated expert best-responds with its TRUE r_e) and the model policy
            # π^{θl,θe}. Both are fine-tuned at every step (the data policy's extra tuning is free in time).
            states = self._warm_states(ops, warm_keys, ops["pair"](theta_l, theta_e))
            histories, warned_zero = [[] for _ in range(size)], False
        save = lambda done: resume.save("gsiirl", done, {"theta_l": theta_l, "theta_e": theta_e, "states": states},
                                        {"histories": histories, "warned_zero": warned_zero})
        if resume.phase != "gsiirl":
            save(0)
        for k in range(resume.completed if resume.phase == "gsiirl" else 0, iterations):
            iteration_keys = split_each(fold_in_each(loop_keys, k), 4)  # [S, 4, 2]
            data, resets = None, 0
            # Lines 3-8: interact once (D(θl) fixed for the iteration), then t_k projected gradient
            # steps on θe with Lemma 1's Monte-Carlo gradient μ_e(π^{θl,θe(t)}) − μ̂_e(D).
            for t in range(schedules.inner_steps(k)):
                states, m, reset = self._fine_tune(ops, fold_in_each(iteration_keys[:, 0], t), states,
                                                   ops["pair"](theta_l, theta_e))
                resets = resets + reset
                if data is None:
                    data = tree_index(m, (slice(None), 0))
                model = tree_index(m, (slice(None), 1))
                theta_e_used = theta_e
                theta_e = ops["inner_update"](theta_e, model["mu_e"], data["mu_e"])
            interaction_state = tree_index(states, (slice(None), 0))
            model_state = tree_index(states, (slice(None), 1))
            # Lines 10-14: SPSA hypergradient; the 2 + 2n perturbed pairs trained as one vmapped batch
            # warm-started from the model policy, with common random numbers.
            perturbation = max(schedules.perturbation_size(k + 1, c.perturbation_scale), c.perturbation_floor)
            arguments = (iteration_keys[:, 2], iteration_keys[:, 1], model_state, interaction_state, theta_l,
                         theta_e, data["mu_l"], data["mu_e"])
            estimate = ops["hypergradient"](jnp.float32(perturbation) if batched else perturbation, *arguments)
            metrics = self._group_evaluation(ops, iteration_keys[:, 3], model_state)
            # The interaction itself (the learner's policy met by the simulated expert's response with its
            # TRUE r_e), scored like the reported model pair and on the same start states (same key).
            interaction = self._group_evaluation(ops, iteration_keys[:, 3], interaction_state)
            losses = ops["nll"](model_state.actor, data["data"])
            hypergradient_norms = jnp.linalg.norm(estimate.hypergradient, axis=-1)
            direct_norms = jnp.linalg.norm(estimate.learner_objective_gradient, axis=-1)
            wall = resume.elapsed()
            for s, row in enumerate(metrics):
                row.update(
                    wall_time=wall, hypergradient_norm=float(hypergradient_norms[s]),
                    direct_gradient_norm=float(direct_norms[s]),
                    upper_objective=float(model["upper_objective"][s]), expert_loss=float(losses[s]),
                    **self._reset_metrics(resets, s, member=1),  # the model policy (the reported one)
                    **self._reset_metrics(resets, s, member=0, prefix=INTERACTION_PREFIX),
                    **self._theta_metrics(theta_l[s], theta_e_used[s]),
                    **{INTERACTION_PREFIX + name: value for name, value in interaction[s].items()})
                require_finite("gsiirl", k, s, row, self.game)
                histories[s].append(row)
            if not warned_zero and any(row["hypergradient_norm"] == 0.0 for row in metrics):
                warned_zero = True
                warnings.warn(
                    f"gsiirl: outer iteration {k}: the SPSA hypergradient is exactly 0, so θl does not move — "
                    "the ± perturbed rewards trained identical policies. The fine-tune budget "
                    "(maddpg.iterations × updates_per_iteration) is too small for a reward change to reach "
                    "the policy; raise it (docs/simulators.md §3)", RuntimeWarning, stacklevel=2)
            direction = estimate.learner_objective_gradient if c.hypergradient_terms == "direct" \
                else estimate.hypergradient
            theta_l = ascend(theta_l, direction)  # line 15 (ascent)
            save(k + 1)
            callback(k, metrics)
        interaction_state, model_state = (tree_index(states, (slice(None), member)) for member in (0, 1))
        return histories, {"model": model_state, "interaction": interaction_state}
