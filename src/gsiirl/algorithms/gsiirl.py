"""GSIIRL (Algorithm 1) on tabular games, the passive MA-IRL baseline, and ``fit``.

Outer iteration k (paper lines 2–15):
  3. warm start θe from the previous iteration;
  4. interact: the learner announces r_ld^θl + r_li and plays its policy; the expert returns data D(θl);
  5–8. t_k projected gradient steps on θe for L(θl, ·; D) (the inner loop);
  10–14. hypergradient ∇F(θl) by ``spsa`` (paper), ``exact`` (implicit differentiation) or
        ``finite_difference``;
  15. θl ← Proj(θl + α_k ∇F): projected gradient ASCENT, because f is a return to maximise.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from functools import partial
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from gsiirl.algorithms import schedules
from gsiirl.algorithms.checkpoint import (CALLER, COMPLETED, GAME_DIGEST, VERSIONS, game_digest, load_checkpoint,
                                         strip_marker, write_checkpoint)
from gsiirl.algorithms.config import FitConfig, FitResult
from gsiirl.algorithms.run_state import as_run_state
from gsiirl.algorithms.interaction import (Expert, Oracle, RecordedDemonstrations, SimulatedExpert, TableOracle,
                                           check_trajectories, query_full_table)
from gsiirl.algorithms.lower_level import LowerLevelProblem, _is_pytree, inner_loop
from gsiirl.algorithms.tabular_metrics import iteration_metrics
from gsiirl.games.tabular import TabularGame
from gsiirl.io.versions import checkpoint_versions
from gsiirl.hypergradients.exact import exact_hypergradient
from gsiirl.hypergradients.finite_difference import finite_difference_hypergradient
from gsiirl.hypergradients.spsa import spsa_hypergradient
from gsiirl.rewards import LinearReward, one_hot_features, project_to_ball
from gsiirl.solvers.equilibrium import solve_equilibrium
from gsiirl.solvers.occupancy import _forward
from gsiirl.solvers.sampling import empirical_occupancy
from gsiirl.validation import is_integer

METHODS = ("gsiirl", "ma-irl", "marl")
HYPERGRADIENTS = ("spsa", "exact", "finite_difference")


@partial(jax.jit, static_argnames=("method", "sequential"))
def batched_evaluation(problem: LowerLevelProblem, method: str, thetas_l, thetas_e, data_occupancy,
                       sequential: bool = False, leading_data=None):
    """The tabular back-end of the SPSA contract: (f, ∇θe L data part, ∇θl L) over [B] pairs.

    ``sequential=False`` vmaps the B solves (fast); ``True`` runs them one after another with
    ``lax.map`` (memory of one solve, for very large games). ``leading_data`` [2, T, S, A_l, A_e], if
    given, replaces ``data_occupancy`` in rows 0 and 1 (the data re-collected at θl ± pΔl for the
    data-dependent cross term).
    """
    from gsiirl.hypergradients.types import LowerLevelEvaluation

    size = thetas_l.shape[0]
    if leading_data is None:
        datasets, index = data_occupancy[None], jnp.zeros(size, jnp.int32)
    else:
        datasets = jnp.concatenate([data_occupancy[None], leading_data])
        index = jnp.zeros(size, jnp.int32).at[0].set(1).at[1].set(2)

    def one(pair):
        return problem.evaluate_pair(pair[0], pair[1], datasets[pair[2]], method)

    upper, grad_l, grad_e = (jax.lax.map(one, (thetas_l, thetas_e, index)) if sequential
                             else jax.vmap(one)((thetas_l, thetas_e, index)))
    return LowerLevelEvaluation(upper, grad_e, grad_l)


def collect_data(expert, problem: LowerLevelProblem, theta_l, theta_e, key, data: str, num_trajectories: int):
    """D(θl) as a per-stage occupancy [T, S, A_l, A_e] from a traceable expert (inside jit)."""
    learner_reward = problem.learner_reward_table(theta_l)
    if data == "expected":
        return expert.expected_data(learner_reward)
    trajectories = expert.interact(key, learner_reward, problem.policy(theta_l, theta_e).learner, num_trajectories)
    return empirical_occupancy(trajectories, problem.game.joint_shape, problem.game.horizon)


@partial(jax.jit, static_argnames=("method", "num_samples", "sequential", "data", "num_trajectories"))
def _spsa_step(problem, method, num_samples, key, theta_l, theta_e, data_occupancy, perturbation,
               sequential: bool = False, expert=None, data: str = "sampled", num_trajectories: int = 1):
    """One SPSA hypergradient. With ``expert`` (traceable, e.g. SimulatedExpert) the cross term is the
    data-dependent one: D is re-collected at θl ± pΔl with common random numbers."""
    spsa_key, data_key = jax.random.split(key)

    def evaluate(thetas_l, thetas_e):
        leading = None
        if expert is not None:
            leading = jax.vmap(lambda tl, te: collect_data(expert, problem, tl, te, data_key, data,
                                                           num_trajectories))(thetas_l[:2], thetas_e[:2])
        return batched_evaluation(problem, method, thetas_l, thetas_e, data_occupancy, sequential, leading)

    return spsa_hypergradient(spsa_key, evaluate, theta_l, theta_e, perturbation=perturbation,
                              num_samples=num_samples, regularization=problem.regularization,
                              cross_term="expert_perturbation" if expert is None else "learner_perturbation")


@partial(jax.jit, static_argnames=("method",))
def _joint_descent_gradient(problem: LowerLevelProblem, method: str, theta_l, theta_e, data_occupancy):
    """Gradients of the passive MA-IRL likelihood w.r.t. both parameters (+ λθ each)."""
    _, grad_l, grad_e = problem.evaluate_pair(theta_l, theta_e, data_occupancy, method)
    lam = problem.regularization
    return grad_l + lam * theta_l, grad_e + lam * theta_e


def _default_model(game: TabularGame) -> LinearReward:
    return LinearReward(one_hot_features(game.joint_shape))


def _check_inputs(game, seed, expert, oracle) -> None:
    """Errors that name the argument, before anything reaches JAX."""
    if not isinstance(game, TabularGame):
        raise TypeError(f"game: expected a gsiirl.TabularGame, got {type(game).__name__}")
    if not is_integer(seed):
        raise TypeError(f"seed: expected an integer, got {seed!r}")
    if expert is not None and not callable(getattr(expert, "interact", None)):
        raise TypeError(f"expert: expected an object with interact(key, learner_reward, learner_policy, "
                        f"num_trajectories) (gsiirl.Expert), got {type(expert).__name__}")
    if oracle is not None and not callable(getattr(oracle, "query", None)):
        raise TypeError(f"oracle: expected an object with query(states, learner_actions, expert_actions) "
                        f"(gsiirl.Oracle), got {type(oracle).__name__}")


def _warn_about_placeholders(game: TabularGame, method: str, expert, oracle) -> None:
    """Warn where a real study's placeholder tables (user guide §2) would silently become the answer."""
    if expert is None or isinstance(expert, SimulatedExpert):
        return
    if method == "marl":
        warnings.warn("fit: method='marl' computes both policies from the game's own expert_reward and "
                      "learner_oracle tables and never asks the expert you passed; with placeholder tables its "
                      "numbers mean nothing", stacklevel=3)
    elif method == "gsiirl" and oracle is None and not np.any(np.asarray(game.learner_oracle)):
        warnings.warn("fit: an expert was passed but no oracle, and game.learner_oracle is all zeros, so the "
                      "learner's r_ld is 0 everywhere; pass oracle=... (docs/user_guide.md, section 2)",
                      stacklevel=3)


def _check_options(method: str, hypergradient: str, outer_iters: int, expert, config: FitConfig) -> None:
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    if hypergradient not in HYPERGRADIENTS:
        raise ValueError(f"hypergradient: expected one of {HYPERGRADIENTS}, got {hypergradient!r}")
    if not is_integer(outer_iters) or outer_iters < 1:
        raise ValueError(f"outer_iters: expected a positive integer, got {outer_iters!r}")
    if method == "gsiirl" and isinstance(expert, RecordedDemonstrations):
        raise ValueError("expert: RecordedDemonstrations replay fixed data, but GSIIRL's data must come from "
                         "playing the learner's current policy; use method='ma-irl' for recorded demonstrations")
    if config.cross_term == "data_dependent" and hypergradient == "spsa" and not _is_pytree(expert):
        raise ValueError("cross_term: 'data_dependent' re-collects data inside the SPSA step and needs a "
                         "traceable (pytree) expert such as SimulatedExpert; use 'fixed_data' with a real expert")
    if hypergradient in ("exact", "finite_difference") and not hasattr(expert, "expected_data"):
        raise ValueError(f"hypergradient: {hypergradient!r} differentiates the interaction data and needs an "
                         "expert with `expected_data` (e.g. SimulatedExpert); use 'spsa' with a real expert")


def marl(game: TabularGame, *, equilibrium: str = "soft_nash", temperature: float = 1.0,
         iterations: int = 60) -> dict:
    """MARL baseline: both policies from the TRUE rewards. Returns policy and ground-truth returns."""
    result = solve_equilibrium(game, game.learner_true_reward, game.expert_reward, model=equilibrium,
                               temperature=temperature, iterations=iterations)
    weights = _forward(game.dynamics, game.initial, result.policy, game.discount, True)
    return {
        "policy": result.policy,
        "learner_return": float(jnp.sum(weights * game.learner_true_reward)),
        "expert_return": float(jnp.sum(weights * game.expert_reward)),
        "residual": float(jnp.max(result.residual)),
    }


def fit(game: TabularGame, method: str = "gsiirl", hypergradient: str = "spsa", outer_iters: int = 50,
        seed: int = 0, *, learner_model=None, expert_model=None, expert: Expert | None = None,
        oracle: Oracle | None = None, progress: Callable[[int], None] | None = None, checkpoint=None,
        **options) -> FitResult:
    """Learn the expert's reward and the learner's expert-dependent reward on a tabular game.

    Args:
        game: the Markov game. Its ``expert_reward`` is used only by the default simulated expert and
            for evaluation metrics; its ``learner_oracle`` only through ``oracle`` queries.
        method: "gsiirl" (Algorithm 1), "ma-irl" (passive maximum-likelihood multi-agent IRL on
            demonstrations made with both TRUE rewards) or "marl" (policies from the true rewards).
        hypergradient: "spsa" (paper), "exact" or "finite_difference" (GSIIRL only).
        outer_iters: K.
        seed: seeds the initial θ's, the interaction and SPSA; the same seed gives the same numbers.
        learner_model, expert_model: reward models (default: linear one-hot over the table).
        expert: the expert to interact with (default :class:`SimulatedExpert` of the game).
        oracle: r_ld oracle (default: a table oracle over ``game.learner_oracle``).
        progress: called with k after every outer iteration (not for iterations a checkpoint restored).
        checkpoint: optional path (as for :meth:`FitResult.save`). After every outer iteration the state
            is saved there atomically; calling ``fit`` again with the same path, game and settings
            resumes after the last finished iteration and gives the numbers of an uninterrupted run
            (if the expert and oracle behave the same), so a crashing expert or oracle loses nothing
            finished. A checkpoint from other settings or another game raises ValueError. At the end it
            holds the final result. A :class:`gsiirl.algorithms.run_state.RunState` works too: its
            path, plus its identity in the check, and a mismatch discarded if it says so.
        **options: fields of :class:`gsiirl.algorithms.config.FitConfig`.
    Returns:
        FitResult with theta_l, theta_e, the final policy and a per-iteration ``history``.
    """
    _check_inputs(game, seed, expert, oracle)
    _warn_about_placeholders(game, method, expert, oracle)
    config = FitConfig.from_options(**options)
    expert = expert if expert is not None else SimulatedExpert(
        game, equilibrium=config.equilibrium, temperature=config.temperature, iterations=config.iterations)
    if config.cross_term == "auto":
        config = dataclasses.replace(config, cross_term="data_dependent" if _is_pytree(expert) else "fixed_data")
    if config.lower_gradient == "lemma1" and hypergradient in ("exact", "finite_difference") and method == "gsiirl":
        raise ValueError(f"lower_gradient: hypergradient={hypergradient!r} differentiates the exact minimiser of "
                         "eq. 1, so its inner loop needs the likelihood's exact gradient; use 'autodiff' or 'auto'")
    if config.lower_gradient == "auto":  # the paper's Lemma 1 for GSIIRL with SPSA; the exact likelihood for
        # MA-IRL and for the exact / finite-difference hypergradients (the saved config says which was used)
        exact = method == "ma-irl" or (method == "gsiirl" and hypergradient != "spsa")
        config = dataclasses.replace(config, lower_gradient="autodiff" if exact else "lemma1")
    _check_options(method, hypergradient, outer_iters, expert, config)
    oracle = oracle if oracle is not None else TableOracle(game.learner_oracle)
    # The learner queries r_ld once everywhere; from here on it works with the queried table.
    queried_game = game.with_rewards(learner_oracle=query_full_table(oracle, game.joint_shape))
    _warn_if_large(game, (learner_model, expert_model), method, hypergradient)
    default = _default_model(game) if learner_model is None or expert_model is None else None
    problem = LowerLevelProblem(
        queried_game, learner_model if learner_model is not None else default,
        expert_model if expert_model is not None else default, equilibrium=config.equilibrium,
        temperature=config.temperature, regularization=config.regularization, iterations=config.iterations)

    identity = config.to_dict() | {"method": method, "hypergradient": hypergradient, "seed": int(seed),
                                   "outer_iters": int(outer_iters)}
    if checkpoint is not None:
        store = as_run_state(checkpoint)  # a path, or a RunState whose identity is checked too
        checkpoint = store.path
        identity[GAME_DIGEST] = game_digest(queried_game)
        identity[VERSIONS] = checkpoint_versions()
        if store.identity:
            identity[CALLER] = store.identity
        resumed = load_checkpoint(checkpoint, identity, store.discard_mismatched)
        if resumed is not None and resumed.config[COMPLETED] >= (1 if method == "marl" else outer_iters):
            return strip_marker(resumed)
    else:
        resumed = None

    if method == "marl":
        baseline = marl(queried_game, equilibrium=config.equilibrium, temperature=config.temperature,
                        iterations=config.iterations)
        history = {"learner_return": [baseline["learner_return"]], "expert_return": [baseline["expert_return"]],
                   "equilibrium_residual": [baseline["residual"]]}
        if progress is not None:
            progress(outer_iters - 1)
        result = FitResult(None, None, baseline["policy"], history, identity)
        if checkpoint is not None:
            write_checkpoint(checkpoint, result, 1)
        return strip_marker(result)

    key = jax.random.PRNGKey(seed)
    key_l, key_e, key_run = jax.random.split(key, 3)
    theta_l = project_to_ball(problem.learner_model.init(key_l, config.radius), config.radius)
    theta_e = project_to_ball(problem.expert_model.init(key_e, config.radius), config.radius)
    step_l = config.outer_step_size or schedules.outer_step_size(outer_iters, config.lipschitz)
    history: dict[str, list[float]] = {}
    first = 0
    if resumed is not None:
        theta_l, theta_e = _restored_parameters(resumed, theta_l, theta_e, checkpoint)
        history, first = {name: list(values) for name, values in resumed.history.items()}, resumed.config[COMPLETED]
    started = time.perf_counter() - (history["wall_time"][-1] if history.get("wall_time") else 0.0)

    demonstrations = demonstration_trajectories = None
    if method == "ma-irl":  # passive: demonstrations made once with both TRUE rewards, no interaction
        demonstrations, demonstration_trajectories = _collect(
            expert, queried_game, queried_game.learner_true_reward, None, config,
            jax.random.fold_in(key_run, 10_000_019))

    for k in range(first, outer_iters):
        key_k = jax.random.fold_in(key_run, k)
        key_data, key_spsa = jax.random.split(key_k)
        steps = config.inner_steps or schedules.inner_steps(k)
        if method == "ma-irl":
            data, trajectories = demonstrations, demonstration_trajectories
            for _ in range(steps):
                grad_l, grad_e = _joint_descent_gradient(problem, config.lower_gradient, theta_l, theta_e, data)
                theta_l = project_to_ball(theta_l - config.inner_step_size * grad_l, config.radius)
                theta_e = project_to_ball(theta_e - config.inner_step_size * grad_e, config.radius)
            direction_norm = float(jnp.linalg.norm(grad_l))
        else:
            learner_reward = problem.learner_reward_table(theta_l)
            learner_policy = problem.policy(theta_l, theta_e).learner
            data, trajectories = _collect(expert, queried_game, learner_reward, learner_policy, config, key_data)
            theta_e = inner_loop(problem, theta_l, theta_e, data, steps=steps, step_size=config.inner_step_size,
                                 radius=config.radius, method=config.lower_gradient)
            estimate = _hypergradient(hypergradient, problem, expert, config, key_spsa, theta_l, theta_e, data, k)
            direction_norm = float(jnp.linalg.norm(estimate.hypergradient))
        record = iteration_metrics(problem, game, expert, theta_l, theta_e, data, trajectories)
        _warn_if_not_converged(record, k, config)
        record["hypergradient_norm"] = direction_norm
        record["wall_time"] = time.perf_counter() - started
        for name, value in record.items():  # a metric first seen late (a checkpoint of older code) is NaN before
            history.setdefault(name, [float("nan")] * k).append(float(value))
        if method == "gsiirl":
            step = step_l if config.schedule == "theorem2" else schedules.spall_gains(
                k, a=config.outer_step_size or 0.1, c=config.perturbation_scale)[0]
            theta_l = project_to_ball(theta_l + step * estimate.hypergradient, config.radius)  # line 15
        if checkpoint is not None:
            write_checkpoint(checkpoint, FitResult(theta_l, theta_e, problem.policy(theta_l, theta_e), history,
                                                   identity), k + 1)
        if progress is not None:
            progress(k)

    policy = problem.policy(theta_l, theta_e)
    return strip_marker(FitResult(theta_l, theta_e, policy, history, identity))


LARGE_BYTES = 1 << 30
UNCONVERGED_RESIDUAL = 1e-3  # a policy probability still moving by 0.1 % in the stage solver's last iteration


def _warn_if_not_converged(record: dict, iteration: int, config: FitConfig) -> None:
    """Warn when the solve of π^{θl,θe} or the simulated expert's did not converge (DESIGN §3: detect and
    report it); both residuals are also in the history (``equilibrium_residual``,
    ``expert_equilibrium_residual``)."""
    for name, what in (("equilibrium_residual", "the learned rewards' equilibrium"),
                       ("expert_equilibrium_residual", "the simulated expert's equilibrium (the data)")):
        residual = record.get(name, 0.0)
        if residual > UNCONVERGED_RESIDUAL:
            warnings.warn(f"fit: iteration {iteration}: {what} did not converge (fixed-point residual "
                          f"{residual:.2g} > {UNCONVERGED_RESIDUAL:g}); the policies and metrics built on it are "
                          f"unreliable. Raise `iterations` (now {config.iterations}) or `temperature` (now "
                          f"{config.temperature}).{_float32_rounding_note()}", RuntimeWarning, stacklevel=3)


def _float32_rounding_note() -> str:
    """In float32 the residual cannot fall below rounding: ≈ 7e-8 · max|V| / temperature (measured, session
    32), so with long undiscounted horizons or large rewards (|V| ≈ 1e4) rounding alone passes the threshold
    and more iterations change nothing."""
    if jnp.dtype(jnp.result_type(float)) != jnp.float32:
        return ""
    return (" In float32 (JAX's default) rounding alone gives a residual of about 1e-7 · max|value| / "
            "temperature, so with large values (large rewards, long horizons with discount near 1) more "
            "iterations cannot lower it: run with jax.config.update('jax_enable_x64', True) to tell the two "
            "apart, or scale the rewards down.")


def _warn_if_large(game: TabularGame, models: tuple, method: str, hypergradient: str) -> None:
    """Warn, before anything is allocated, when the run's dense arrays pass 1 GiB: the reward models'
    arrays (the default one-hot features are [S, A_l, A_e, S·A_l·A_e], shared by both players) and
    SPSA's d_e×d_e Hessian and d_l×d_e cross-term."""
    if method == "marl":
        return
    itemsize = jnp.dtype(jnp.result_type(float)).itemsize
    table_size = game.num_states * game.num_learner_actions * game.num_expert_actions
    sizes, model_bytes = [], table_size * table_size * itemsize if None in models else 0
    for model in models:
        if model is None:
            sizes.append(table_size)
            continue
        sizes.append(int(getattr(model, "num_params", 0)))
        model_bytes += sum(int(np.prod(np.shape(leaf))) * itemsize for leaf in jax.tree_util.tree_leaves(model)
                           if hasattr(leaf, "shape"))  # a plain Python object is one opaque leaf
    d_l, d_e = sizes
    matrix_bytes = (d_e * d_e + d_l * d_e) * itemsize if hypergradient == "spsa" and method == "gsiirl" else 0
    total = model_bytes + matrix_bytes
    if total > LARGE_BYTES:
        warnings.warn(f"fit: this run holds about {total / 2**30:.1f} GiB of dense arrays (reward models "
                      f"{model_bytes / 2**30:.1f} GiB, SPSA matrices {matrix_bytes / 2**30:.1f} GiB for "
                      f"d_l = {d_l}, d_e = {d_e}); the default one-hot model has one parameter per "
                      f"(s, a_l, a_e). A model with fewer parameters (gsiirl.LinearReward with your own "
                      f"features [S, A_l, A_e, d]) is smaller and learns from less data.", stacklevel=3)


def _restored_parameters(resumed: FitResult, theta_l, theta_e, checkpoint):
    """θl, θe of a checkpoint, checked against the models' parameter shapes."""
    restored = []
    for name, fresh, saved in (("theta_l", theta_l, resumed.theta_l), ("theta_e", theta_e, resumed.theta_e)):
        if saved is None or jnp.shape(saved) != jnp.shape(fresh):
            raise ValueError(f"checkpoint: {checkpoint}: {name} has shape {None if saved is None else jnp.shape(saved)}, "
                             f"the reward model's parameters have shape {jnp.shape(fresh)}")
        restored.append(jnp.asarray(saved, dtype=jnp.asarray(fresh).dtype))
    return tuple(restored)


def _collect(expert, game: TabularGame, learner_reward, learner_policy, config: FitConfig, key):
    """(per-stage data occupancy [T, S, A_l, A_e], the sampled Trajectories or None): sampled trajectories
    or, with ``data="expected"``, the exact expectation (no trajectories)."""
    if config.data == "expected":
        if not hasattr(expert, "expected_data"):
            raise ValueError("data: 'expected' needs an expert with `expected_data` (a simulated expert)")
        return expert.expected_data(learner_reward), None
    if learner_policy is None:
        learner_policy = jnp.full((game.horizon, game.num_states, game.num_learner_actions),
                                  1.0 / game.num_learner_actions)
    trajectories = expert.interact(key, learner_reward, learner_policy, config.num_trajectories)
    trajectories = check_trajectories(trajectories, game)
    return empirical_occupancy(trajectories, game.joint_shape, game.horizon), trajectories


def _hypergradient(name, problem, expert, config: FitConfig, key, theta_l, theta_e, data, k):
    if name == "exact":
        return exact_hypergradient(problem, expert, theta_l, theta_e)
    if name == "finite_difference":
        return finite_difference_hypergradient(problem, expert, theta_l, theta_e,
                                               radius=config.radius)
    if config.schedule == "spall":
        perturbation = schedules.spall_gains(k, a=config.outer_step_size or 0.1, c=config.perturbation_scale)[1]
    else:
        perturbation = schedules.perturbation_size(k + 1, config.perturbation_scale)
    data_dependent = config.cross_term == "data_dependent"
    return _spsa_step(problem, config.lower_gradient, config.num_spsa_samples, key, theta_l, theta_e, data,
                      perturbation, config.sequential_evaluations, expert if data_dependent else None,
                      config.data, config.num_trajectories)
