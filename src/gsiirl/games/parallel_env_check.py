"""Check a JAX port of a simulator against a PettingZoo parallel env, step for step (DESIGN §2, §8).

GSIIRL trains many MADDPG policies per outer iteration, so a simulator stepped in Python is too slow
to train on; the supported route is a JAX port of its step function (a
:class:`~gsiirl.games.continuous.ContinuousGame`). :func:`compare_with_parallel_env` is the check that
the port is faithful: it puts the JAX game into the PettingZoo env's state after ``env.reset(seed=...)``,
plays the same joint actions in both, and compares at every step

* each agent's observation (``game.observations`` against the env's observation, flattened);
* each agent's reward: a learner agent is paid ``r_li + r_ld``, an expert agent ``r_e`` (the protocol's
  team rewards, read from the game's three reward functions);
* each agent's termination flag against the game's ``done``.

Step 0 is the state right after the reset (observations only); step k is after k joint actions.
Only the two sides' conversions are NumPy; the game's step, observations and rewards run as one jitted
JAX function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gsiirl.games.continuous import ContinuousGame


class Mismatch(NamedTuple):
    """The first place where the game and the env disagree by more than ``atol``."""

    step: int  # 0 = right after the reset, k = after k joint actions
    agent: str  # the env's agent name
    quantity: str  # "observation", "reward" or "termination"
    game_value: np.ndarray
    env_value: np.ndarray
    difference: float  # max absolute difference (inf if the sizes differ, nan if either side has NaN)


@dataclass(frozen=True)
class ParallelEnvComparison:
    """Result of :func:`compare_with_parallel_env` (A = number of agents, K = joint actions played).

    Agents are in the game's order: learner agents first, then expert agents (``agents`` names them).
    """

    agents: tuple[str, ...]
    steps: int  # K
    atol: float
    # [K+1, A] max |game − env| per step and agent (row 0: reset); inf: sizes differ, nan: a NaN on a side
    observation_differences: np.ndarray
    reward_differences: np.ndarray  # [K, A]
    termination_differences: np.ndarray  # [K, A] 0 or 1
    first_mismatch: Mismatch | None

    @property
    def ok(self) -> bool:
        """True when every compared quantity agreed within ``atol``."""
        return self.first_mismatch is None

    @property
    def first_failing_step(self) -> int | None:
        return None if self.first_mismatch is None else self.first_mismatch.step

    @property
    def max_observation_difference(self) -> float:
        return float(np.max(self.observation_differences))

    @property
    def max_reward_difference(self) -> float:
        return float(np.max(self.reward_differences)) if self.steps else 0.0

    def __str__(self) -> str:
        verdict = "match" if self.ok else f"MISMATCH ({describe_mismatch(self.first_mismatch)})"
        return (f"{verdict}: {self.steps} steps, {len(self.agents)} agents, "
                f"max |Δ observation| = {self.max_observation_difference:.2e}, "
                f"max |Δ reward| = {self.max_reward_difference:.2e} (atol {self.atol:g})")


def describe_mismatch(mismatch: Mismatch) -> str:
    """One line naming the step, agent, quantity, both values and how they differ."""
    return (f"step {mismatch.step}, agent {mismatch.agent!r}, {mismatch.quantity}: "
            f"game {np.array2string(np.asarray(mismatch.game_value), precision=6)} vs "
            f"env {np.array2string(np.asarray(mismatch.env_value), precision=6)} "
            f"({_how_they_differ(mismatch)})")


def _how_they_differ(mismatch: Mismatch) -> str:
    game_value, env_value = np.asarray(mismatch.game_value), np.asarray(mismatch.env_value)
    if game_value.shape != env_value.shape:
        sizes = f"game {game_value.size} vs env {env_value.size}"
        if mismatch.quantity == "observation":
            return f"observation sizes differ ({sizes}): learner_agents/expert_agents order?"
        return f"{mismatch.quantity} sizes differ ({sizes})"
    with_nan = [side for side, value in (("game", game_value), ("env", env_value)) if np.isnan(value).any()]
    if with_nan:
        return f"{' and '.join(with_nan)} {'has' if len(with_nan) == 1 else 'have'} NaN"
    return f"|diff| {mismatch.difference:.3g}"


def _check_agent_names(field: str, names, expected_count: int, possible: list) -> tuple[str, ...]:
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise ValueError(f"{field}: expected a sequence of agent names, got {names!r}")
    names = tuple(names)
    if len(names) != expected_count:
        raise ValueError(f"{field}: expected {expected_count} agent names (the game's count), got {len(names)}")
    unknown = [name for name in names if name not in possible]
    if unknown:
        raise ValueError(f"{field}: {unknown} are not in env.possible_agents {possible}")
    return names


def _check_actions(actions, game: ContinuousGame) -> np.ndarray:
    array = np.asarray(actions)
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] != game.num_agents:
        raise ValueError(f"actions: expected shape [T, {game.num_agents}] with T >= 1 "
                         f"(one row per step, learner agents first), got {array.shape}")
    if array.shape[0] > game.horizon:
        raise ValueError(f"actions: {array.shape[0]} steps exceed the game's horizon {game.horizon}")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"actions: expected integers, got dtype {array.dtype}")
    limits = np.asarray(game.num_actions)
    bad = (array < 0) | (array >= limits[None, :])
    if bad.any():
        step, agent = np.argwhere(bad)[0]
        raise ValueError(f"actions: row {step}, column {agent} is {array[step, agent]}, "
                         f"expected 0 <= a < {limits[agent]}")
    return array.astype(np.int64)


def _check_env(env: Any) -> list:
    """``env`` must be a PettingZoo parallel env (not an AEC env); returns its possible_agents."""
    try:
        from pettingzoo import AECEnv
    except ImportError:  # pettingzoo is optional: recognise an AEC env by its API instead
        AECEnv = None
    is_aec = (AECEnv is not None and isinstance(env, AECEnv)) or (
        callable(getattr(env, "agent_iter", None)) and callable(getattr(env, "last", None)))
    if is_aec:
        raise ValueError(f"env: expected a PettingZoo ParallelEnv (e.g. the scenario's parallel_env(), or "
                         f"pettingzoo.utils.conversions.aec_to_parallel(env)), got the AEC env {type(env).__name__}")
    for method in ("reset", "step", "action_space"):
        if not callable(getattr(env, method, None)):
            raise ValueError(f"env: expected a PettingZoo ParallelEnv with {method}(), got {type(env).__name__}")
    possible = getattr(env, "possible_agents", None)
    if isinstance(possible, str) or not isinstance(possible, Sequence) or not possible:
        raise ValueError(f"env: expected a non-empty list of possible_agents, got {possible!r}")
    return list(possible)


def _check_action_spaces(env: Any, agents: tuple[str, ...], game: ContinuousGame) -> None:
    """Every agent's action space must be ``Discrete(num_actions[i])`` starting at 0."""
    for index, (name, count) in enumerate(zip(agents, game.num_actions)):
        try:
            space = env.action_space(name)
        except Exception as error:  # noqa: BLE001 - a broken env is reported under ``env``
            raise ValueError(f"env: action_space({name!r}) failed ({type(error).__name__}: {error})") from error
        discrete = (type(space).__name__ == "Discrete" and getattr(space, "n", None) == count
                    and getattr(space, "start", 0) == 0)
        if not discrete:
            raise ValueError(f"env: agent {name!r} has action space {space!r}, the game expects "
                             f"Discrete({count}) (num_actions[{index}])")


def _make_transition(game: ContinuousGame):
    """Jitted (state, learner_actions, expert_actions) -> (next_state, done, observations, [A] rewards)."""
    n_l, n_e = game.num_learner_agents, game.num_expert_agents

    def transition(state, learner_actions, expert_actions):
        next_state, done = game.step(state, learner_actions, expert_actions)
        args = (state, learner_actions, expert_actions, next_state)
        learner = game.learner_independent_reward(*args) + game.learner_dependent_reward(*args)
        expert = game.expert_reward(*args)
        rewards = jnp.concatenate([jnp.full((n_l,), learner), jnp.full((n_e,), expert)])
        return next_state, done, game.observations(next_state), rewards

    return jax.jit(transition)


def _difference(game_value: np.ndarray, env_value: np.ndarray) -> float:
    """max |game − env|: inf if the sizes differ or an infinity disagrees, nan if either side has NaN."""
    if game_value.shape != env_value.shape:
        return float("inf")
    if game_value.size == 0:
        return 0.0
    if np.isnan(game_value).any() or np.isnan(env_value).any():
        return float("nan")
    difference = np.abs(game_value - env_value)
    return float("inf") if not np.all(np.isfinite(difference)) else float(difference.max())


def compare_with_parallel_env(
    game: ContinuousGame,
    env: Any,
    *,
    state_from_env: Callable[[Any], Any],
    learner_agents: Sequence[str],
    expert_agents: Sequence[str],
    actions,
    seed: int = 0,
    atol: float = 1e-5,
    strict: bool = False,
) -> ParallelEnvComparison:
    """Step a :class:`ContinuousGame` and a PettingZoo parallel env side by side and compare them.

    Args:
        game: the JAX port.
        env: a PettingZoo ``ParallelEnv`` (``possible_agents``, ``reset(seed=...)``, ``step(dict)``
            returning observations, rewards, terminations, truncations, infos), not an AEC env; agent i
            (game order) must have the action space ``Discrete(game.num_actions[i])``.
        state_from_env: ``state_from_env(env) -> state``: the game state equal to the env's current
            (just reset) state; only the user knows this mapping (e.g. read ``env.unwrapped``).
        learner_agents: the env's names of the game's learner agents, in the game's order.
        expert_agents: the env's names of the game's expert agents, in the game's order.
            Together they must name every agent of ``env.possible_agents`` once.
        actions: [T, A] ints, the joint actions to play (game order: learner agents first),
            1 <= T <= game.horizon.
        seed: passed to ``env.reset(seed=seed)``.
        atol: largest absolute difference accepted (float32 ports of float64 envs: ~1e-5).
        strict: raise ValueError at the first mismatch instead of reporting it.

    Returns a :class:`ParallelEnvComparison`; stops early if the env ends (terminated) before T.
    """
    possible = _check_env(env)
    if not callable(state_from_env):
        raise ValueError(f"state_from_env: expected a callable env -> state, got {state_from_env!r}")
    learner_agents = _check_agent_names("learner_agents", learner_agents, game.num_learner_agents, possible)
    expert_agents = _check_agent_names("expert_agents", expert_agents, game.num_expert_agents, possible)
    agents = learner_agents + expert_agents
    if len(set(agents)) != len(agents) or set(agents) != set(possible):
        raise ValueError(f"learner_agents/expert_agents: together they must name each of env.possible_agents "
                         f"{possible} exactly once, got {list(agents)}")
    _check_action_spaces(env, agents, game)
    actions = _check_actions(actions, game)
    if not (isinstance(atol, (int, float, np.floating)) and atol >= 0 and np.isfinite(atol)):
        raise ValueError(f"atol: expected a finite number >= 0, got {atol!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed: expected an integer, got {seed!r}")

    reset_out = env.reset(seed=int(seed))
    env_observations = reset_out[0] if isinstance(reset_out, tuple) else reset_out
    state = state_from_env(env)
    transition = _make_transition(game)
    n_l = game.num_learner_agents
    num_agents = len(agents)

    observation_rows, reward_rows, termination_rows = [], [], []
    mismatches: list[Mismatch] = []

    def compare_row(step: int, quantity: str, game_values, env_values: dict) -> np.ndarray:
        row = np.zeros(num_agents)
        for index, name in enumerate(agents):
            if name not in env_values:
                raise ValueError(f"env: step {step} returned no {quantity} for agent {name!r}")
            game_value = np.asarray(game_values[index], dtype=np.float64).reshape(-1)
            env_value = np.asarray(env_values[name], dtype=np.float64).reshape(-1)
            row[index] = _difference(game_value, env_value)
            if not row[index] <= atol and not mismatches:  # nan (a NaN on either side) is a mismatch
                mismatches.append(Mismatch(step, name, quantity, game_value, env_value, row[index]))
                if strict:
                    raise ValueError(f"game and env differ beyond atol={atol:g} at "
                                     f"{describe_mismatch(mismatches[0])}")
        return row

    observation_rows.append(compare_row(0, "observation", game.observations(state), env_observations))
    for step, joint in enumerate(actions, start=1):
        env_step = env.step({name: int(action) for name, action in zip(agents, joint)})
        env_observations, env_rewards, env_terminations, env_truncations, _ = env_step
        state, done, game_observations, game_rewards = transition(
            state, jnp.asarray(joint[:n_l], jnp.int32), jnp.asarray(joint[n_l:], jnp.int32))
        game_done = np.full(num_agents, float(bool(done)))
        termination_rows.append(compare_row(step, "termination", game_done, env_terminations))
        reward_rows.append(compare_row(step, "reward", np.asarray(game_rewards), env_rewards))
        observation_rows.append(compare_row(step, "observation", game_observations, env_observations))
        ended = all(bool(env_terminations.get(a, False)) or bool(env_truncations.get(a, False)) for a in agents)
        if ended and step < len(actions):
            if all(bool(env_terminations.get(a, False)) for a in agents):
                break  # both sides terminated: nothing left to compare
            raise ValueError(f"actions: the env truncated after {step} steps; pass at most {step} rows "
                             f"(got {len(actions)})")

    steps = len(reward_rows)
    return ParallelEnvComparison(
        agents=agents,
        steps=steps,
        atol=float(atol),
        observation_differences=np.stack(observation_rows),
        reward_differences=np.stack(reward_rows) if steps else np.zeros((0, num_agents)),
        termination_differences=np.stack(termination_rows) if steps else np.zeros((0, num_agents)),
        first_mismatch=mismatches[0] if mismatches else None,
    )
