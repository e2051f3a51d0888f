"""Bring-your-own-simulator scaling: how compilation and an outer iteration of the sample-based GSIIRL
grow with a user's game (horizon T, state / observation size, actions per player, reward features),
and the cost of the SPSA step's conjugate gradient called eagerly (the single-seed outer loop).

The game is a small 2-D chase written the way docs/simulators.md §1 describes: a learner and an expert
move on a grid of m×m velocities, the state is both positions plus static "landmark" coordinates that
pad it to the chosen size, every agent sees the whole state. One quantity is varied at a time from
(T 25, state 4, 25 actions, 3 features); every variant runs in this process twice (forward, then reverse
order) with tiny MADDPG settings, and the table gives ratios to the first variant (2 shared cores make
absolute times noisy; the minimum of the two runs is reported).

    python benchmarks/bench_simulator_scaling.py               # the CG part only (≈ 10 s)
    python benchmarks/bench_simulator_scaling.py --sweep       # + all four sweeps (≈ 15-25 min on 2 cores)
    python benchmarks/bench_simulator_scaling.py --sweep horizon

What to expect: compilation does not grow with T (rollouts and MADDPG are lax.scan loops) nor,
beyond noise, with the sizes; an iteration grows far less than T (a fine-tune's minibatch updates
do not depend on T). Before session 32 every outer iteration of a single-seed run also compiled the
SPSA step's conjugate gradient again (jax's cg builds a new while loop at every eager call): "eager CG
/ jitted CG" was ≈ 5,400 (46 ms a call; 0.24 s on a loaded machine, as much as a whole tiny iteration);
now ≈ 56 (0.5 ms: op-by-op dispatch, nothing compiled after the first call of a shape), with the
numbers unchanged bit for bit.
"""

from __future__ import annotations

import argparse
import collections
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from _timing import median_seconds, print_table
from gsiirl.algorithms.sample_based import SampleBasedConfig, SampleBasedGSIIRL
from gsiirl.games.continuous import ContinuousGame, validate_game
from gsiirl.hypergradients.cg import conjugate_gradient, lift_to_positive_definite
from gsiirl.solvers.maddpg import MADDPGConfig

BASE = dict(horizon=25, state_size=4, num_actions=25, num_features=3)
SWEEPS = {"horizon": (25, 100, 400), "state_size": (4, 32, 128), "num_actions": (9, 25, 81), "num_features": (3, 16)}
COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


def chase_game(horizon=25, state_size=4, num_actions=25, num_features=3) -> ContinuousGame:
    """The benchmark's game (module docstring); ``num_actions`` must be a square (m×m velocities)."""
    side = math.isqrt(num_actions)
    if side * side != num_actions or state_size < 4:
        raise ValueError("chase_game: num_actions must be a square and state_size >= 4")
    axis = jnp.linspace(-1.0, 1.0, side)
    velocities = 0.1 * jnp.stack(jnp.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    learner_goal, expert_goal = jnp.array([0.7, 0.7]), jnp.array([-0.7, -0.7])
    centres = jnp.linspace(0.0, 2.0, max(num_features - 2, 1))
    norm = lambda v: jnp.sqrt(jnp.sum(v ** 2) + 1e-12)
    gap = lambda s: norm(s[0:2] - s[2:4])
    crowding = lambda s: jnp.maximum(0.0, 0.3 - gap(s))

    def step(state, learner_actions, expert_actions):
        learner = jnp.clip(state[0:2] + velocities[learner_actions[0]], -1.0, 1.0)
        expert = jnp.clip(state[2:4] + velocities[expert_actions[0]], -1.0, 1.0)
        return jnp.concatenate([learner, expert, state[4:]]), jnp.array(False)

    def observations(state):
        return (jnp.concatenate([state[0:2], state[2:4] - state[0:2], state[4:]]),
                jnp.concatenate([state[2:4], state[0:2] - state[2:4], state[4:]]))

    def features(first):
        def phi(state, learner_actions, expert_actions, next_state):
            bumps = jnp.exp(-((gap(next_state) - centres) ** 2) / 0.1)
            return jnp.concatenate([jnp.stack([first(next_state), crowding(next_state)]), bumps])[:num_features]
        return phi

    return validate_game(ContinuousGame(
        num_learner_agents=1, num_expert_agents=1, num_actions=(num_actions, num_actions),
        observation_sizes=(state_size, state_size), state_size=state_size, horizon=horizon, discount=0.95,
        learner_feature_size=num_features, expert_feature_size=num_features,
        reset=lambda key: jax.random.uniform(key, (state_size,), minval=-1.0, maxval=1.0),
        step=step, observations=observations, global_observation=lambda state: state,
        learner_independent_reward=lambda s, la, ea, ns: -norm(ns[0:2] - learner_goal),
        learner_dependent_reward=lambda s, la, ea, ns: -crowding(ns),
        expert_reward=lambda s, la, ea, ns: -norm(ns[2:4] - expert_goal),
        learner_features=features(gap), expert_features=features(lambda s: norm(s[2:4] - expert_goal)),
    ))


def tiny_config() -> SampleBasedConfig:
    maddpg = MADDPGConfig(hidden=32, num_envs=8, iterations=2, updates_per_iteration=8, buffer_iterations=2,
                          minibatch_size=64)
    return SampleBasedConfig(maddpg=maddpg, warmup_iterations=4, data_episodes=16, evaluation_episodes=16,
                             spsa_samples=1, radius=1.0)


_COMPILED = collections.defaultdict(float)  # XLA compilations of this process: seconds and count


def _on_event_duration(event, duration, **kw):
    if event == COMPILE_EVENT:
        _COMPILED["seconds"] += duration
        _COMPILED["count"] += 1


def one_run(game: ContinuousGame, iterations: int = 3) -> dict:
    """Compile seconds (XLA backend), the fastest later iteration, compilations after iteration 0, NaN?"""
    if not _COMPILED["registered"]:  # once per process (jax 0.5 has no public way to remove a listener)
        jax.monitoring.register_event_duration_secs_listener(_on_event_duration)
        _COMPILED["registered"] = 1
    seconds_before, stamps, later = _COMPILED["seconds"], [], []
    algorithm = SampleBasedGSIIRL(game, tiny_config())

    def callback(k, metrics):
        stamps.append(time.perf_counter())
        later.append(_COMPILED["count"])

    history, _ = algorithm.run("gsiirl", jax.random.PRNGKey(0), iterations, callback)
    return dict(compile=_COMPILED["seconds"] - seconds_before, iteration=min(np.diff(stamps)),
                recompiles=later[-1] - later[0],
                nan=any(not math.isfinite(v) for row in history for v in row.values()))


def sweep(name: str) -> list[list]:
    values = SWEEPS[name]
    runs = collections.defaultdict(list)
    for value in values + values[::-1]:
        runs[value].append(one_run(chase_game(**{**BASE, name: value})))
    best = {v: {k: min(r[k] for r in runs[v]) for k in ("compile", "iteration")} for v in values}
    first = best[values[0]]
    return [[f"{name} = {v}", best[v]["compile"], best[v]["compile"] / first["compile"], best[v]["iteration"],
             best[v]["iteration"] / first["iteration"], max(r["recompiles"] for r in runs[v]),
             any(r["nan"] for r in runs[v])] for v in values]


def conjugate_gradient_cost(size: int = 8) -> list[list]:
    """Eager conjugate_gradient (a new matrix of one shape every call, as the outer loop does) vs jitted."""
    rng = np.random.default_rng(0)
    matrix = lift_to_positive_definite(jnp.asarray(rng.normal(size=(size, size)), jnp.float32) + jnp.eye(size), 0.5)
    rhs = jnp.asarray(rng.normal(size=size), jnp.float32)
    jitted = jax.jit(conjugate_gradient)
    eager = median_seconds(lambda m, b: conjugate_gradient(m * 1.0, b), matrix, rhs, repeats=5)
    reference = median_seconds(jitted, matrix, rhs, repeats=50)
    return [[f"eager CG, d = {size}", eager, eager / reference], [f"jitted CG, d = {size}", reference, 1.0]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", nargs="*", choices=list(SWEEPS), default=None,
                        help="run these sweeps (no name: all four)")
    args = parser.parse_args()
    print_table(["call", "seconds", "ratio to jitted"], conjugate_gradient_cost())
    if args.sweep is not None:
        rows = [row for name in (args.sweep or list(SWEEPS)) for row in sweep(name)]
        print_table(["variant", "compile s", "compile ratio", "s / iteration", "iteration ratio",
                     "compilations after iteration 0", "NaN"], rows)


if __name__ == "__main__":
    main()
