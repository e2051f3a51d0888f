"""Sample-based GSIIRL back-end for continuous games (Algorithm 1 with MADDPG policies; DESIGN §2, §4).

Everything the tabular back-end computes exactly is estimated here from vectorised rollouts:

* μ(π) = E_π[Σ_t γ^t ∇_θ r^θ(s^t, a^t)] (linear models: ∇_θ r^θ = scale·φ) and μ̂(D) by Monte Carlo; a rollout
  is kept as its :func:`~gsiirl.games.continuous.gradient_statistics` (a linear model's μ itself, else the
  sampled features), turned into μ at the current θ by :func:`~gsiirl.games.continuous.expected_gradient`;
* f(θl, θe) = E_π[Σ_t γ^t (r_ld + r_li)] from rollouts using the *queried* r_ld values (eq. 2);
* the policy π^{θl,θe} = MADDPG trained on (r_li + r_ld^θl, r_e^θe), warm-started from the previous
  outer iteration (a short fine-tune), and the SPSA batch of 2 + 2n perturbed pairs trained as one
  vmapped batch from the same warm start with common random numbers (same PRNG key for every
  member, so the ± differences are not drowned by independent sampling noise).

Methods (DESIGN §7): ``gsiirl`` (interaction + SPSA outer loop with
:func:`gsiirl.hypergradients.spsa.spsa_hypergradient`), ``ma-irl`` (passive: both θ's fitted by maximum
likelihood, i.e. projected descent on Lemma 1/3's gradients, to demonstrations of MADDPG trained on
both TRUE rewards; no interaction), ``marl`` (MADDPG on both true rewards; one value per seed).
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from gsiirl.algorithms.reward_transfer import RewardTransfer
from gsiirl.algorithms.run_state import Resume
from gsiirl.algorithms.sample_based_checkpoint import CheckpointedRuns
from gsiirl.algorithms.sample_based_outer_loop import INTERACTION_PREFIX, OuterLoop  # noqa: F401  (re-exported)
from gsiirl.algorithms.sample_based_passive import PassiveMethods
from gsiirl.algorithms.sample_based_config import (  # noqa: F401  (re-exported: the back-end's public names)
    CROSS_TERMS, SampleBasedConfig, _params, final_thetas, require_finite,
)
from gsiirl.algorithms.seed_batch import (
    check_key, check_keys, fold_in_each, per_seed_floats, seedwise, split_each, tree_expand, tree_index,
)
from gsiirl.games.continuous import (
    ContinuousGame, RewardParams, Rollout, discounted_sum, expected_gradient, gradient_statistics, reward_models,
    rollout, validate_game,
)
from gsiirl.hypergradients.spsa import spsa_hypergradient
from gsiirl.hypergradients.types import LowerLevelEvaluation
from gsiirl.rewards import project_to_ball
from gsiirl.solvers.maddpg import init_state, log_likelihood, make_policy, make_train
from gsiirl.solvers.maddpg_reset import reset_worse_than_random

METHODS = ("gsiirl", "ma-irl", "marl")
FINAL_PAIRS = ("model", "interaction", "both")  # run_seeds(final_pair=...): which final GSIIRL policies to return
_NOT_REPORTED = ("mu_l", "mu_e", "upper_objective", "data")  # estimator internals, not metrics
_RESET_STREAM = 0x7E5E7  # fold_in data of the reset check's keys (a stream no other computation uses)
MetricsFn = Callable[[Rollout], dict]


class SampleBasedGSIIRL(OuterLoop, RewardTransfer, PassiveMethods, CheckpointedRuns):
    """GSIIRL / MA-IRL / MARL on a :class:`ContinuousGame`; jitted pieces are built once per instance.

    Args:
        game: the continuous game (learner team first).
        config: :class:`SampleBasedConfig`.
        metrics_fn: optional game-specific per-episode metrics, ``Rollout -> {name: [N]}`` (e.g. the
            HRI collision and goal indicators); averaged over episodes.
    """

    def __init__(self, game: ContinuousGame, config: SampleBasedConfig = SampleBasedConfig(),
                 metrics_fn: MetricsFn | None = None) -> None:
        if not isinstance(game, ContinuousGame):
            raise TypeError(f"game: expected a gsiirl.games.continuous.ContinuousGame, got {type(game).__name__}")
        if not isinstance(config, SampleBasedConfig):
            raise TypeError(f"config: expected a SampleBasedConfig, got {type(config).__name__}")
        self.game, self.config = validate_game(game), config
        self.reward_models = reward_models(game)  # (learner, expert): r_ld^θl, r_e^θe
        self.metrics_fn = metrics_fn or (lambda data: {})
        self._train = make_train(game, config.maddpg)
        # Few compiled functions (compiling MADDPG dominates start-up): a batched train+measure step,
        # the SPSA batch, a greedy evaluation, and the expert's likelihood on logged data.
        self._step = jax.jit(self._step_impl)
        self._spsa_batch = jax.jit(self._spsa_batch_impl)
        self._evaluate = jax.jit(lambda key, actor: self._measure_impl(
            key, actor, config.greedy_evaluation, config.evaluation_episodes))
        self._nll = jax.jit(self._expert_nll)
        self._group_ops: dict[bool, dict] = {}  # the same pieces for seed groups (see _ops)

    # ----------------------------------------------------------------- estimators (pure, jitted)
    def _measure_impl(self, key, actor, greedy: bool, episodes: int, return_data: bool = False):
        """Rollouts of one joint policy: the statistics of μ_l, μ_e (:func:`gradient_statistics`; a linear
        model's μ itself), f (discounted true learner return), metrics."""
        game = self.game
        data = rollout(key, game, make_policy(game, actor, greedy=greedy), episodes)
        mu_l, mu_e = gradient_statistics(game, data)
        learner_true = data.learner_independent_reward + data.learner_dependent_reward
        out = dict(
            mu_l=mu_l, mu_e=mu_e,
            upper_objective=jnp.mean(discounted_sum(learner_true, game.discount)),  # f, eq. 2
            learner_return=jnp.mean(jnp.sum(learner_true, axis=1)),
            expert_return=jnp.mean(jnp.sum(data.expert_reward, axis=1)),
            episode_length=jnp.mean(jnp.sum(data.alive, axis=1)),
        )
        out.update({name: jnp.mean(value) for name, value in self.metrics_fn(data).items()})
        if return_data:
            out["data"] = (data.observations, data.actions, data.alive)
        return out

    def _step_impl(self, key, states, params: RewardParams):
        """Fine-tune [B] warm-started policies on their own rewards, then measure each (stochastic)."""
        train_key, measure_key = jax.random.split(key)
        states, _ = jax.vmap(self._train, in_axes=(None, 0, 0))(train_key, states, params)
        m = jax.vmap(lambda actor: self._measure_impl(measure_key, actor, False, self.config.data_episodes,
                                                      return_data=True))(states.actor)
        return states, m

    def _reset_impl(self, key, states, params: RewardParams):
        """[P] states: restart the teams worse than random play on their own rewards params [P]
        (:func:`gsiirl.solvers.maddpg_reset.reset_worse_than_random`). Returns (states, resets [P, 2])."""
        return jax.vmap(lambda state, p: reset_worse_than_random(
            key, self.game, self.config.maddpg, state, p, self.config.evaluation_episodes))(states, params)

    def _expert_nll(self, actor, data) -> jax.Array:
        """Expert part of L (eq. 1) per trajectory: −mean_i Σ_t γ^t ln π_e(a_e^t | s^t) on D.

        data: (observations [N, T, A, O], actions [N, T, A], alive [N, T]).
        """
        observations, actions, alive = data
        log_probs = log_likelihood(self.game, actor, observations, actions)  # [N, T, A]
        expert = jnp.sum(log_probs[..., self.game.num_learner_agents:], axis=-1) * alive
        return -jnp.mean(discounted_sum(expert, self.game.discount))

    def _spsa_batch_impl(self, key, model_state, interaction_state, thetas_l, thetas_e, mu_hat_l, mu_hat_e):
        """The SPSA contract's batched evaluate: train [B] policies from one warm start, measure each.

        With ``cross_term="data_dependent"`` two more members are trained in the same batch: the
        interaction policies (TRUE r_e) at rows 0 and 1 (θl ± pΔl), warm-started from
        ``interaction_state``; their Monte-Carlo μ̂(D(θl ± pΔl)) replace the fixed data in those rows,
        so the rows' ∇θe L differences give the total derivative d∇θe L/dθl.
        """
        train_key, measure_key = jax.random.split(key)
        size = thetas_l.shape[0]
        params = _params(thetas_l, thetas_e, 0.0, 0.0)
        data_dependent = self.config.cross_term == "data_dependent"
        if data_dependent:
            interaction = _params(thetas_l[:2], thetas_e[:2], 0.0, 1.0)
            params = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b]), params, interaction)
            starts = jax.tree_util.tree_map(
                lambda a, b: jnp.concatenate([jnp.broadcast_to(a, (size,) + a.shape),
                                              jnp.broadcast_to(b, (2,) + b.shape)]),
                model_state, interaction_state)
            states, _ = jax.vmap(self._train, in_axes=(None, 0, 0))(train_key, starts, params)
        else:
            states, _ = jax.vmap(self._train, in_axes=(None, None, 0))(train_key, model_state, params)
        m = jax.vmap(lambda actor: self._measure_impl(measure_key, actor, False, self.config.evaluation_episodes))(
            states.actor)
        rows = lambda tree, part: jax.tree_util.tree_map(lambda a: a[part], tree)
        alpha = self.config.temperature

        def gradient(model, thetas, team, mu_hat):
            """Rows (μ(θ_i) − μ̂(θ_i)) of one team, each at the member's own θ_i: the member's rollouts, and the
            fixed data D(θl) or, data-dependent, rows 0/1's interaction members D(θl ± pΔl). The statistics
            are not written into one array: a FeatureSample of D has data_episodes rows, a member's
            evaluation_episodes."""
            at_own_theta = jax.vmap(partial(expected_gradient, model))
            data = jax.vmap(partial(expected_gradient, model), in_axes=(0, None))(thetas, mu_hat)
            if data_dependent:
                data = data.at[:2].set(at_own_theta(thetas[:2], rows(m[team], slice(size, None))))
            return (at_own_theta(thetas, rows(m[team], slice(None, size))) - data) / alpha

        model_l, model_e = self.reward_models
        return LowerLevelEvaluation(m["upper_objective"][:size],
                                    gradient(model_e, thetas_e, "mu_e", mu_hat_e),  # Lemma 1
                                    gradient(model_l, thetas_l, "mu_l", mu_hat_l))  # Lemma 3

    # ----------------------------------------------------------------- helpers
    def initial_parameters(self, key):
        """Random initial (θl [P_l], θe [P_e]) with norms in [0.5, 1]·initial_radius, from one PRNG key."""
        key_l, key_e = jax.random.split(key)
        c = self.config
        r = c.radius if c.initial_radius is None else c.initial_radius
        model_l, model_e = self.reward_models
        return model_l.init(key_l, r), model_e.init(key_e, r)

    def evaluation(self, key, state) -> dict:
        """Reported metrics of a joint policy (greedy by default) with the TRUE rewards."""
        m = self._evaluate(key, state.actor)
        return {k: float(v) for k, v in m.items() if k not in _NOT_REPORTED}

    def sample_trajectory(self, key, state) -> Rollout:
        """One greedy episode of the joint policy (for Figure 3 (e)/(f))."""
        return rollout(key, self.game, make_policy(self.game, state.actor, greedy=True), 1)

    def _inner_update(self, theta_e, mu_e, mu_hat_e):
        """One projected gradient step of the inner loop (Algorithm 1 line 7, Lemma 1); ``mu_e``, ``mu_hat_e``:
        the model policy's and the data's :func:`gradient_statistics` (a linear model's μ itself)."""
        c, model = self.config, self.reward_models[1]
        mu_e, mu_hat_e = expected_gradient(model, theta_e, mu_e), expected_gradient(model, theta_e, mu_hat_e)
        gradient = (mu_e - mu_hat_e) / c.temperature + c.regularization * theta_e
        return project_to_ball(theta_e - c.inner_step_size * gradient, c.radius)

    def _init_states(self, key, size: int):
        """[size] fresh MADDPG states (one per member of a reward batch)."""
        return jax.vmap(lambda k: init_state(k, self.game, self.config.maddpg))(jax.random.split(key, size))

    def _estimate(self, batch, perturbation, key, spsa_key, model_state, interaction_state, theta_l, theta_e,
                  mu_l, mu_e):
        """One seed's SPSA hypergradient (lines 10-14) with ``batch`` = :meth:`_spsa_batch_impl` or its
        jitted form as the back-end's batched evaluate."""
        c = self.config

        def evaluate(thetas_l, thetas_e):
            return batch(spsa_key, model_state, interaction_state, thetas_l, thetas_e, mu_l, mu_e)

        return spsa_hypergradient(
            key, evaluate, theta_l, theta_e, perturbation=perturbation, num_samples=c.spsa_samples,
            regularization=c.regularization if c.hessian_regularization is None else c.hessian_regularization,
            cross_term="learner_perturbation" if c.cross_term == "data_dependent" else "expert_perturbation")

    def _ascent(self, step: float):
        """Line 15: clip the direction to ``max_hypergradient_norm``, step, project (per seed)."""
        c = self.config

        def ascend(theta_l, direction):
            if c.max_hypergradient_norm is not None:
                direction = direction * jnp.minimum(1.0, c.max_hypergradient_norm / jnp.maximum(
                    jnp.linalg.norm(direction), 1e-12))
            return project_to_ball(theta_l + step * direction, c.radius)

        return ascend

    def _ops(self, batched: bool) -> dict:
        """The per-seed pieces in their seed-group form (built once per form)."""
        if batched not in self._group_ops:
            self._group_ops[batched] = dict(
                step=seedwise(self._step_impl, batched),
                reset=seedwise(self._reset_impl, batched),
                evaluate=seedwise(lambda key, actor: self._measure_impl(
                    key, actor, self.config.greedy_evaluation, self.config.evaluation_episodes), batched),
                nll=seedwise(self._expert_nll, batched),
                init_parameters=seedwise(self.initial_parameters, batched, jit=False),
                inner_update=seedwise(self._inner_update, batched, jit=False),
                pair=seedwise(self._pair, batched, jit=False),
                # a group: one jitted function of the whole estimate; a single seed: the eager estimate
                # around the jitted batch (the per-seed code path, kept bit for bit)
                hypergradient=(jax.jit(jax.vmap(partial(self._estimate, self._spsa_batch_impl),
                                                in_axes=(None,) + (0,) * 8)) if batched
                               else lambda perturbation, *args: tree_expand(self._estimate(
                                   self._spsa_batch, perturbation, *tree_index(args, 0)))),
            )
        return self._group_ops[batched]

    def _group_evaluation(self, ops, keys, states) -> list[dict]:
        m = ops["evaluate"](keys, states.actor)
        return per_seed_floats({k: v for k, v in m.items() if k not in _NOT_REPORTED}, keys.shape[0])

    # ----------------------------------------------------------------- methods
    def run(self, method: str, key: jax.Array, iterations: int,
            callback: Callable[[int, dict], None] | None = None, *, final_pair: str = "model", checkpoint=None):
        """Run one method for one seed. Returns (per-iteration metric dicts, final joint MADDPG state).

        ``callback(k, metrics)`` is called after every outer iteration k (0-based). The same computation
        as :meth:`run_seeds` with a group of one (``final_pair`` and ``checkpoint`` as there).
        """
        on_group = None if callback is None else (lambda k, metrics: callback(k, metrics[0]))
        histories, states = self.run_seeds(method, check_key(key)[None], iterations, on_group,
                                           final_pair=final_pair, checkpoint=checkpoint)
        return histories[0], (tree_index(states, 0) if final_pair != "both"
                              else {name: tree_index(s, 0) for name, s in states.items()})

    def run_seeds(self, method: str, keys: jax.Array, iterations: int,
                  callback: Callable[[int, list[dict]], None] | None = None, *, final_pair: str = "model",
                  checkpoint=None):
        """Run one method for a group of S seeds as one vmapped batch (keys [S, 2]).

        Returns (one history per seed, final joint MADDPG states [S]). ``callback(k, metrics)`` gets
        the S metric dicts of outer iteration k. Seed s of a group of S is the run of ``keys[s]`` up to
        float32 rounding (a group of one: bit for bit); the rounding differs between group sizes, so a
        seed's numbers are reproducible for a fixed group (the experiments fix the groups).

        ``final_pair`` (GSIIRL only; the passive methods have one pair): ``"model"`` returns the model
        pair π^{θl,θe} (both players on learned rewards; the reported metrics), ``"interaction"`` the
        learner's policy with the simulated expert's true-reward response (the ``interaction_*`` metrics),
        ``"both"`` a dict ``{"model": states, "interaction": states}``.

        ``checkpoint`` (a path, or a :class:`gsiirl.algorithms.run_state.RunState`): after the warm-up and
        after every finished outer iteration (MARL: every fine-tune) the run's state is saved there
        atomically (``PATH.json`` + ``PATH.npz``); calling again with the same arguments continues after the
        last saved step and gives the uninterrupted run's numbers (``wall_time`` aside), or, if the run had
        finished, returns its results without computing. ``callback`` is not called for restored
        iterations. A checkpoint of another method, seeds, iteration count, configuration, game size or
        library version raises ValueError naming the field. The retraining of
        :meth:`retrained_evaluations` is not part of a run; it takes its own ``checkpoint``.
        """
        if method not in METHODS:
            raise ValueError(f"method: expected one of {list(METHODS)}, got {method!r}")
        if isinstance(iterations, bool) or int(iterations) != iterations or int(iterations) < 1:
            raise ValueError(f"iterations: expected a positive integer, got {iterations}")
        if final_pair not in FINAL_PAIRS or (method != "gsiirl" and final_pair != "model"):
            allowed = list(FINAL_PAIRS) if method == "gsiirl" else ["model"]
            raise ValueError(f"final_pair: expected one of {allowed} for method {method!r} (only GSIIRL interacts), "
                             f"got {final_pair!r}")
        keys = check_keys(keys)
        callback = callback or (lambda k, m: None)
        ops = self._ops(keys.shape[0] > 1)
        resume = self._resume(method, ops, keys, int(iterations), checkpoint)
        if method != "gsiirl":
            return {"ma-irl": self._run_ma_irl, "marl": self._run_marl}[method](ops, keys, int(iterations), callback,
                                                                                 resume)
        histories, pairs = self._run_gsiirl(ops, keys, int(iterations), callback, resume)
        return histories, (pairs if final_pair == "both" else pairs[final_pair])

    def _warm_states(self, ops, keys, params: RewardParams, prepare=None):
        """[S, P] MADDPG states trained from scratch for the warm-up on params [S, P]; ``prepare`` (optional)
        maps the fresh states [S, P] before training (MA-IRL's best-response members)."""
        size = params.theta_l.shape[1]
        split = split_each(keys, 2)
        init_keys, train_keys = split[:, 0], split[:, 1]
        states = seedwise(lambda key: self._init_states(key, size), keys.shape[0] > 1, jit=False)(init_keys)
        if prepare is not None:
            states = prepare(states)
        for i in range(self.config.warmup_iterations // self.config.maddpg.iterations):
            states, _ = ops["step"](fold_in_each(train_keys, i), states, params)
        return states

    def _train_fixed(self, ops, keys, params: RewardParams, iterations: int, resume: Resume | None = None):
        """MADDPG from scratch on fixed rewards params [S, P]: warm-up + ``iterations`` fine-tunes, saved
        after each as phase "fixed" of ``resume`` (continued from it if it holds that phase).
        Returns (states [S, P], last measurement [S, P], teams restarted)."""
        resume = resume or Resume()
        split = split_each(keys, 2)
        if resume.phase == "fixed":
            states, measured, first = resume.trees["states"], resume.trees.get("measured"), resume.completed
            resets = np.asarray(resume.info["resets"])
        else:
            states, measured, resets, first = self._warm_states(ops, split[:, 0], params), None, 0, 0
            resume.save("fixed", 0, {"states": states}, {"resets": 0})
        for k in range(first, iterations):
            states, measured, reset = self._fine_tune(ops, fold_in_each(split[:, 1], k), states, params)
            resets = resets + reset
            resume.save("fixed", k + 1, {"states": states, **({"measured": measured} if k + 1 == iterations else {})},
                        {"resets": np.asarray(resets).tolist()})
        return states, measured, resets

    def _fine_tune(self, ops, keys, states, params: RewardParams):
        """One warm-started fine-tune of states [S, P] on params [S, P] (then measured), preceded by the
        restart of teams worse than random play if ``reset_worse_than_random``.
        Returns (states, measurement, resets [S, P, 2] int: teams restarted, learner and expert)."""
        if self.config.reset_worse_than_random:
            states, reset = ops["reset"](fold_in_each(keys, _RESET_STREAM), states, params)
            reset = jax.device_get(reset).astype(int)
        else:
            reset = 0
        states, measured = ops["step"](keys, states, params)
        return states, measured, reset

    def _reset_metrics(self, resets, seed: int, member: int = 0, prefix: str = "") -> dict:
        """Teams of one member restarted (resets [S, P, 2] or 0) as metrics, only when the check is on."""
        if not self.config.reset_worse_than_random:
            return {}
        counts = jnp.asarray(resets)[seed, member] if jnp.ndim(resets) else (0, 0)
        return {f"{prefix}learner_team_resets": float(counts[0]), f"{prefix}expert_team_resets": float(counts[1])}

    def _theta_metrics(self, theta_l, theta_e) -> dict:
        return {f"theta_l_{i}": float(v) for i, v in enumerate(theta_l)} | {
            f"theta_e_{i}": float(v) for i, v in enumerate(theta_e)}

    def _pair(self, theta_l, theta_e) -> RewardParams:
        """(interaction policy: θl with the TRUE r_e, model policy: θl with θe) as a batch of two."""
        pair = _params(jnp.stack([theta_l, theta_l]), jnp.stack([theta_e, theta_e]), 0.0, 0.0)
        return pair._replace(use_true_e=jnp.asarray([1.0, 0.0], jnp.float32))
