"""Sample-based GSIIRL back-end for continuous games (Algorithm 1 with MADDPG policies; DESIGN §2, §4).

Everything the tabular back-end computes exactly is estimated here from vectorised rollouts:

* μ(π) = E_π[Σ_t γ^t ∇_θ r^θ(s^t, a^t)] (linear models: ∇_θ r^θ = scale·φ) and μ̂(D) by Monte Carlo;
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

import time
from dataclasses import dataclass, field
from typing import Callable

import jax
import jax.numpy as jnp

from gsiirl.algorithms import schedules
from gsiirl.games.continuous import (
    ContinuousGame, RewardParams, Rollout, discounted_sum, feature_expectations, rollout,
)
from gsiirl.hypergradients.spsa import spsa_hypergradient
from gsiirl.hypergradients.types import LowerLevelEvaluation
from gsiirl.rewards import project_to_ball
from gsiirl.solvers.maddpg import MADDPGConfig, init_state, log_likelihood, make_policy, make_train

METHODS = ("gsiirl", "ma-irl", "marl")
CROSS_TERMS = ("fixed_data", "data_dependent")
MetricsFn = Callable[[Rollout], dict]


@dataclass(frozen=True)
class SampleBasedConfig:
    """Hyper-parameters of the sample-based back-end (validated on construction)."""

    maddpg: MADDPGConfig = field(default_factory=lambda: MADDPGConfig(iterations=2))
    warmup_iterations: int = 60  # MADDPG cycles from scratch before the first outer iteration
    data_episodes: int = 256  # |D(θl)| trajectories per interaction
    evaluation_episodes: int = 256  # rollouts for μ(π), f and the metrics
    temperature: float = 1.0  # α in Lemma 1/3: ∇L = (μ(π) − μ̂(D)) / α
    regularization: float = 0.01  # λ
    radius: float = 1.5  # both θ's live in the ball of this radius
    inner_step_size: float = 0.05  # β
    outer_step_size: float | None = None  # None: 1 / (L_f √K) (Theorem 2)
    lipschitz: float = 1.0
    spsa_samples: int = 2
    perturbation_scale: float = 1.0  # p(k) = max(scale / (k+1), floor)
    perturbation_floor: float = 0.0
    max_hypergradient_norm: float | None = None  # clip ‖∇F‖ before the step (Monte-Carlo SPSA is noisy)
    hypergradient_terms: str = "lemma2"  # "lemma2": ∇θl f − C H⁻¹ ∇θe f; "direct": ∇θl f only (ablation)
    # "fixed_data": the paper's eq. 4 cross term (D(θl) held fixed); "data_dependent": the total
    # derivative, D re-collected at θl ± pΔl (two more trainings per iteration; docs/design_decisions.md)
    cross_term: str = "data_dependent"
    greedy_evaluation: bool = True  # metrics with deterministic (argmax) policies, as the paper

    def __post_init__(self) -> None:
        for name in ("warmup_iterations", "data_episodes", "evaluation_episodes", "spsa_samples"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}: expected a positive integer, got {getattr(self, name)}")
        for name in ("temperature", "regularization", "radius", "inner_step_size", "lipschitz",
                     "perturbation_scale"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"{name}: expected a positive number, got {getattr(self, name)}")
        if self.outer_step_size is not None and not self.outer_step_size > 0:
            raise ValueError(f"outer_step_size: expected a positive number or None, got {self.outer_step_size}")
        if self.max_hypergradient_norm is not None and not self.max_hypergradient_norm > 0:
            raise ValueError(f"max_hypergradient_norm: expected a positive number or None, "
                             f"got {self.max_hypergradient_norm}")
        if self.hypergradient_terms not in ("lemma2", "direct"):
            raise ValueError(f"hypergradient_terms: expected 'lemma2' or 'direct', got {self.hypergradient_terms!r}")
        if self.cross_term not in CROSS_TERMS:
            raise ValueError(f"cross_term: expected one of {list(CROSS_TERMS)}, got {self.cross_term!r}")
        if self.perturbation_floor < 0:
            raise ValueError(f"perturbation_floor: expected >= 0, got {self.perturbation_floor}")


def random_in_ball(key: jax.Array, size: int, radius: float) -> jax.Array:
    """Random direction with norm uniform in [0.5, 1]·radius: the random initial rewards."""
    direction_key, norm_key = jax.random.split(key)
    direction = jax.random.normal(direction_key, (size,))
    direction = direction / jnp.linalg.norm(direction)
    return direction * radius * jax.random.uniform(norm_key, (), minval=0.5, maxval=1.0)


def _params(theta_l, theta_e, use_true_ld, use_true_e) -> RewardParams:
    batch = jnp.shape(theta_l)[:-1]
    flag = lambda v: jnp.full(batch, float(v), jnp.float32)
    return RewardParams(jnp.asarray(theta_l, jnp.float32), jnp.asarray(theta_e, jnp.float32),
                        flag(use_true_ld), flag(use_true_e))


def final_thetas(history: list[dict]) -> tuple[jax.Array, jax.Array]:
    """(θl [n_l], θe [n_e]) recorded in the last metrics row of a GSIIRL / MA-IRL history: the rewards
    whose policy that row reports (``theta_l_0…``, ``theta_e_0…``)."""
    last = history[-1] if history else {}
    theta_l = [last[f"theta_l_{i}"] for i in range(sum(k.startswith("theta_l_") for k in last))]
    theta_e = [last[f"theta_e_{i}"] for i in range(sum(k.startswith("theta_e_") for k in last))]
    if not theta_l or not theta_e:
        raise ValueError("history: expected theta_l_* and theta_e_* in the last row (a GSIIRL or MA-IRL run)")
    return jnp.asarray(theta_l, jnp.float32), jnp.asarray(theta_e, jnp.float32)


def retrained_metrics(algorithm: "SampleBasedGSIIRL", key: jax.Array, history: list[dict],
                      iterations: int) -> dict[str, list[float]]:
    """``retrained_<metric>``: :meth:`SampleBasedGSIIRL.retrained_evaluation` of a run's final learned
    rewards (one value each), for the experiments' unit runners."""
    theta_l, theta_e = final_thetas(history)
    metrics = algorithm.retrained_evaluation(key, theta_l, theta_e, iterations)
    return {f"retrained_{name}": [float(value)] for name, value in metrics.items()}


def _index(tree, i):
    return jax.tree_util.tree_map(lambda x: x[i], tree)


class SampleBasedGSIIRL:
    """GSIIRL / MA-IRL / MARL on a :class:`ContinuousGame`; jitted pieces are built once per instance.

    Args:
        game: the continuous game (learner team first).
        config: :class:`SampleBasedConfig`.
        metrics_fn: optional game-specific per-episode metrics, ``Rollout -> {name: [N]}`` (e.g. the
            HRI collision and goal indicators); averaged over episodes.
    """

    def __init__(self, game: ContinuousGame, config: SampleBasedConfig = SampleBasedConfig(),
                 metrics_fn: MetricsFn | None = None) -> None:
        self.game, self.config = game, config
        self.metrics_fn = metrics_fn or (lambda data: {})
        if config.warmup_iterations % config.maddpg.iterations:
            raise ValueError(f"warmup_iterations: expected a multiple of maddpg.iterations "
                             f"({config.maddpg.iterations}), got {config.warmup_iterations}")
        self._train = make_train(game, config.maddpg)
        # Few compiled functions (compiling MADDPG dominates start-up): a batched train+measure step,
        # the SPSA batch, a greedy evaluation, and the expert's likelihood on logged data.
        self._step = jax.jit(self._step_impl)
        self._spsa_batch = jax.jit(self._spsa_batch_impl)
        self._evaluate = jax.jit(lambda key, actor: self._measure_impl(
            key, actor, config.greedy_evaluation, config.evaluation_episodes))
        self._nll = jax.jit(self._expert_nll)

    # ----------------------------------------------------------------- estimators (pure, jitted)
    def _measure_impl(self, key, actor, greedy: bool, episodes: int, return_data: bool = False):
        """Rollouts of one joint policy: μ_l, μ_e, f (discounted true learner return), metrics."""
        game = self.game
        data = rollout(key, game, make_policy(game, actor, greedy=greedy), episodes)
        mu_l, mu_e = feature_expectations(game, data)
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
        data_l = jnp.broadcast_to(mu_hat_l, (size,) + mu_hat_l.shape)
        data_e = jnp.broadcast_to(mu_hat_e, (size,) + mu_hat_e.shape)
        if data_dependent:
            data_l = data_l.at[:2].set(m["mu_l"][size:])
            data_e = data_e.at[:2].set(m["mu_e"][size:])
        alpha = self.config.temperature
        return LowerLevelEvaluation(m["upper_objective"][:size], (m["mu_e"][:size] - data_e) / alpha,  # Lemma 1
                                    (m["mu_l"][:size] - data_l) / alpha)  # Lemma 3

    # ----------------------------------------------------------------- helpers
    def initial_parameters(self, key):
        key_l, key_e = jax.random.split(key)
        r = self.config.radius
        return (random_in_ball(key_l, self.game.learner_feature_size, r),
                random_in_ball(key_e, self.game.expert_feature_size, r))

    def evaluation(self, key, state) -> dict:
        """Reported metrics of a joint policy (greedy by default) with the TRUE rewards."""
        m = self._evaluate(key, state.actor)
        return {k: float(v) for k, v in m.items() if k not in ("mu_l", "mu_e", "upper_objective", "data")}

    def sample_trajectory(self, key, state) -> Rollout:
        """One greedy episode of the joint policy (for Figure 3 (e)/(f))."""
        return rollout(key, self.game, make_policy(self.game, state.actor, greedy=True), 1)

    def _inner_update(self, theta_e, mu_e, mu_hat_e):
        """One projected gradient step of the inner loop (Algorithm 1 line 7, Lemma 1)."""
        c = self.config
        gradient = (mu_e - mu_hat_e) / c.temperature + c.regularization * theta_e
        return project_to_ball(theta_e - c.inner_step_size * gradient, c.radius)

    # ----------------------------------------------------------------- methods
    def run(self, method: str, key: jax.Array, iterations: int,
            callback: Callable[[int, dict], None] | None = None):
        """Run one method for one seed. Returns (per-iteration metric dicts, final joint MADDPG state).

        ``callback(k, metrics)`` is called after every outer iteration k (0-based).
        """
        if method not in METHODS:
            raise ValueError(f"method: expected one of {list(METHODS)}, got {method!r}")
        if int(iterations) < 1:
            raise ValueError(f"iterations: expected a positive integer, got {iterations}")
        callback = callback or (lambda k, m: None)
        return {"gsiirl": self._run_gsiirl, "ma-irl": self._run_ma_irl, "marl": self._run_marl}[method](
            key, int(iterations), callback)

    def _warm_states(self, key, params_batch: RewardParams):
        size = params_batch.theta_l.shape[0]
        init_key, train_key = jax.random.split(key)
        states = jax.vmap(lambda k: init_state(k, self.game, self.config.maddpg))(
            jax.random.split(init_key, size))
        for i in range(self.config.warmup_iterations // self.config.maddpg.iterations):
            states, _ = self._step(jax.random.fold_in(train_key, i), states, params_batch)
        return states

    def _train_fixed(self, key, params: RewardParams, iterations: int):
        """MADDPG from scratch on one fixed reward pair ([1]-batched ``params``): warm-up + ``iterations``
        fine-tunes. Returns (states [1], last measurement [1])."""
        warm_key, key = jax.random.split(key)
        states = self._warm_states(warm_key, params)
        measured = None
        for k in range(iterations):
            states, measured = self._step(jax.random.fold_in(key, k), states, params)
        return states, measured

    def _train_true(self, key, iterations: int):
        """MADDPG on both true rewards: warm-up + ``iterations`` fine-tunes (the MARL policy), B = 1."""
        return self._train_fixed(key, _params(jnp.zeros((1, self.game.learner_feature_size)),
                                              jnp.zeros((1, self.game.expert_feature_size)), 1.0, 1.0), iterations)

    def retrained_evaluation(self, key: jax.Array, theta_l: jax.Array, theta_e: jax.Array, iterations: int, *,
                             true_learner_reward: bool = False, true_expert_reward: bool = False) -> dict:
        """Reward transfer: a joint policy trained FROM SCRATCH on the learned pair (r_li + r_ld^θl, r_e^θe)
        with the MARL baseline's budget (warm-up + ``iterations`` fine-tunes), scored with the TRUE rewards.

        With the key of the MARL unit of the same seed (``run("marl", key, iterations)``) the training
        randomness is identical to MARL's, so per-seed differences isolate the rewards: the in-run
        policy of GSIIRL/MA-IRL has followed the rewards along the outer loop, this one has not.
        ``true_learner_reward`` / ``true_expert_reward`` swap one learned reward for the true one (both:
        exactly the MARL unit), which splits a gap between the two learned rewards.
        theta_l [n_l], theta_e [n_e]. Returns the same metrics as :meth:`evaluation`.
        """
        theta_l, theta_e = jnp.asarray(theta_l, jnp.float32), jnp.asarray(theta_e, jnp.float32)
        if theta_l.shape != (self.game.learner_feature_size,) or theta_e.shape != (self.game.expert_feature_size,):
            raise ValueError(f"theta_l, theta_e: expected shapes ({self.game.learner_feature_size},) and "
                             f"({self.game.expert_feature_size},), got {theta_l.shape} and {theta_e.shape}")
        if int(iterations) < 1:
            raise ValueError(f"iterations: expected a positive integer, got {iterations}")
        train_key, eval_key = jax.random.split(key)  # the same split as _run_marl
        params = _params(theta_l[None], theta_e[None], float(true_learner_reward), float(true_expert_reward))
        states, _ = self._train_fixed(train_key, params, int(iterations))
        return self.evaluation(eval_key, _index(states, 0))

    def _run_marl(self, key, iterations, callback):
        start = time.perf_counter()
        train_key, eval_key = jax.random.split(key)
        states, _ = self._train_true(train_key, iterations)
        state = _index(states, 0)
        metrics = self.evaluation(eval_key, state)
        metrics["wall_time"] = time.perf_counter() - start
        callback(iterations - 1, metrics)
        return [metrics], state

    def _run_ma_irl(self, key, iterations, callback):
        """Passive MA-IRL: demonstrations with both TRUE rewards, then ML descent on both θ's."""
        c, start = self.config, time.perf_counter()
        demo_key, init_key, warm_key, loop_key = jax.random.split(key, 4)
        _, demos = self._train_true(demo_key, iterations)  # last measurement = the demonstrations
        demos = _index(demos, 0)
        theta_l, theta_e = self.initial_parameters(init_key)
        states = self._warm_states(warm_key, _params(theta_l[None], theta_e[None], 0.0, 0.0))
        history = []
        for k in range(iterations):
            k_train, k_eval = jax.random.split(jax.random.fold_in(loop_key, k))
            states, m = self._step(k_train, states, _params(theta_l[None], theta_e[None], 0.0, 0.0))
            state, m = _index(states, 0), _index(m, 0)
            metrics = self.evaluation(k_eval, state)
            metrics.update(wall_time=time.perf_counter() - start,
                           expert_loss=float(self._nll(state.actor, demos["data"])),
                           **self._theta_metrics(theta_l, theta_e))
            theta_e = self._inner_update(theta_e, m["mu_e"], demos["mu_e"])  # Lemma 1
            grad_l = (m["mu_l"] - demos["mu_l"]) / c.temperature + c.regularization * theta_l  # Lemma 3
            theta_l = project_to_ball(theta_l - c.inner_step_size * grad_l, c.radius)
            history.append(metrics)
            callback(k, metrics)
        return history, state

    def _theta_metrics(self, theta_l, theta_e) -> dict:
        return {f"theta_l_{i}": float(v) for i, v in enumerate(theta_l)} | {
            f"theta_e_{i}": float(v) for i, v in enumerate(theta_e)}

    def _pair(self, theta_l, theta_e) -> RewardParams:
        """(interaction policy: θl with the TRUE r_e, model policy: θl with θe) as a batch of two."""
        pair = _params(jnp.stack([theta_l, theta_l]), jnp.stack([theta_e, theta_e]), 0.0, 0.0)
        return pair._replace(use_true_e=jnp.asarray([1.0, 0.0], jnp.float32))

    def _run_gsiirl(self, key, iterations, callback):
        """Algorithm 1: interaction, t_k inner steps, SPSA hypergradient, projected ascent on θl."""
        c, start = self.config, time.perf_counter()
        init_key, warm_key, loop_key = jax.random.split(key, 3)
        theta_l, theta_e = self.initial_parameters(init_key)
        step = c.outer_step_size or schedules.outer_step_size(iterations, c.lipschitz)
        # Two warm-started policies trained as one batch: the interaction policy (the learner plays
        # r_ld^θl + r_li, the simulated expert best-responds with its TRUE r_e) and the model policy
        # π^{θl,θe}. Both are fine-tuned at every step (the data policy's extra tuning is free in time).
        states = self._warm_states(warm_key, self._pair(theta_l, theta_e))
        history = []
        for k in range(iterations):
            keys = jax.random.split(jax.random.fold_in(loop_key, k), 4)
            data = None
            # Lines 3-8: interact once (D(θl) fixed for the iteration), then t_k projected gradient
            # steps on θe with Lemma 1's Monte-Carlo gradient μ_e(π^{θl,θe(t)}) − μ̂_e(D).
            for t in range(schedules.inner_steps(k)):
                states, m = self._step(jax.random.fold_in(keys[0], t), states, self._pair(theta_l, theta_e))
                if data is None:
                    data = _index(m, 0)
                model = _index(m, 1)
                theta_e_used = theta_e
                theta_e = self._inner_update(theta_e, model["mu_e"], data["mu_e"])
            interaction_state, model_state = _index(states, 0), _index(states, 1)
            # Lines 10-14: SPSA hypergradient; the 2 + 2n perturbed pairs trained as one vmapped batch
            # warm-started from the model policy, with common random numbers.
            perturbation = max(schedules.perturbation_size(k + 1, c.perturbation_scale), c.perturbation_floor)

            def evaluate(thetas_l, thetas_e, states=(model_state, interaction_state), spsa_key=keys[1], data=data):
                return self._spsa_batch(spsa_key, *states, thetas_l, thetas_e, data["mu_l"], data["mu_e"])

            estimate = spsa_hypergradient(
                keys[2], evaluate, theta_l, theta_e, perturbation=perturbation, num_samples=c.spsa_samples,
                regularization=c.regularization,
                cross_term="learner_perturbation" if c.cross_term == "data_dependent" else "expert_perturbation")
            metrics = self.evaluation(keys[3], model_state)
            metrics.update(
                wall_time=time.perf_counter() - start,
                hypergradient_norm=float(jnp.linalg.norm(estimate.hypergradient)),
                direct_gradient_norm=float(jnp.linalg.norm(estimate.learner_objective_gradient)),
                upper_objective=float(model["upper_objective"]),
                expert_loss=float(self._nll(model_state.actor, data["data"])),
                **self._theta_metrics(theta_l, theta_e_used),
            )
            direction = estimate.hypergradient
            if c.hypergradient_terms == "direct":
                direction = estimate.learner_objective_gradient
            if c.max_hypergradient_norm is not None:
                direction = direction * jnp.minimum(1.0, c.max_hypergradient_norm / jnp.maximum(
                    jnp.linalg.norm(direction), 1e-12))
            theta_l = project_to_ball(theta_l + step * direction, c.radius)  # line 15 (ascent)
            history.append(metrics)
            callback(k, metrics)
        return history, model_state
