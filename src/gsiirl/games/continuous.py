"""Protocol for continuous (simulator) two-player games as pure JAX functions (DESIGN §2, §8).

A :class:`ContinuousGame` bundles pure functions; nothing is stateful, so every function can be
jitted and vmapped over thousands of copies (PureJaxRL pattern).

Players and agents. The *learner* may be a team of ``num_learner_agents`` agents (e.g. the two good
agents of MPE ``simple_adversary``) and the *expert* a team of ``num_expert_agents`` agents (e.g. the
one adversary). Agents are ordered learner agents first, then expert agents; every agent picks one
categorical action from its own discrete action set (``num_actions[i]`` values). A team shares one
reward: every learner agent is paid ``r_li + r_ld`` and every expert agent ``r_e``; the team's
log-likelihood of a joint action is the sum of its agents' log-probabilities.

Adapting a simulator (e.g. simple_adversary from JaxMARL/mpe2) to the protocol:
    * ``reset(key) -> state``: any pytree of arrays (e.g. the JaxMARL ``State``).
    * ``step(state, learner_actions[n_l] int32, expert_actions[n_e] int32) -> (next_state, done)``:
      deterministic given the state; randomness must live in ``reset`` or be carried in ``state``
      (e.g. a PRNG key field). ``done`` is a bool scalar (a Python bool works too) meaning *terminated*
      (the horizon is applied by the rollout, not by ``step``); the next state keeps reset's pytree
      structure, shapes and dtypes.
    * ``observations(state) -> tuple`` of per-agent 1-D arrays (sizes ``observation_sizes``);
      ``global_observation(state) -> [state_size]`` is what the centralised critics see.
    * rewards all take ``(state, learner_actions, expert_actions, next_state)`` and return a scalar:
      ``learner_independent_reward`` (known r_li; it must only use the learner's own part),
      ``learner_dependent_reward`` (the queried oracle r_ld: GSIIRL only ever reads its values),
      ``expert_reward`` (the hidden true r_e: used only to simulate the expert and for metrics).
    * ``learner_features`` -> [learner_feature_size] and ``expert_features`` -> [expert_feature_size]:
      the features φ of the reward models, linear by default (``r_ld^θl = scale_l φ_l·θl``,
      ``r_e^θe = scale_e φ_e·θe``); ``learner_reward_model`` / ``expert_reward_model`` replace them with any
      model of :mod:`gsiirl.rewards.feature_models` over the same features (e.g. an MLP).

:func:`validate_game` checks all of this by tracing each function once (abstractly: no compilation).

:func:`rollout` runs ``num_episodes`` vmapped episodes of ``horizon`` steps under any policy and
returns everything the solvers and estimators need (after termination, steps are masked out).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gsiirl.games.continuous_rewards import (  # noqa: F401  (re-exported: part of this module's API)
    FeatureSample, discounted_sum, expected_gradient, feature_expectations, gradient_statistics, modelled_rewards,
    reward_models, team_rewards,
)
from gsiirl.validation import check_count, is_finite_real_scalar, is_integer

State = Any
RewardFn = Callable[[State, jax.Array, jax.Array, State], jax.Array]


class ContinuousGame(NamedTuple):
    """A continuous two-team Markov game given by pure JAX functions (see the module docstring)."""

    num_learner_agents: int
    num_expert_agents: int
    num_actions: tuple[int, ...]
    observation_sizes: tuple[int, ...]
    state_size: int
    horizon: int
    discount: float
    learner_feature_size: int
    expert_feature_size: int
    reset: Callable[[jax.Array], State]
    step: Callable[[State, jax.Array, jax.Array], tuple[State, jax.Array]]
    observations: Callable[[State], tuple[jax.Array, ...]]
    global_observation: Callable[[State], jax.Array]
    learner_independent_reward: RewardFn
    learner_dependent_reward: RewardFn
    expert_reward: RewardFn
    learner_features: RewardFn
    expert_features: RewardFn
    learner_reward_scale: float = 1.0
    expert_reward_scale: float = 1.0
    # None: the linear model scale · φ·θ; else a gsiirl.rewards.feature_models model over the same φ
    learner_reward_model: Any = None
    expert_reward_model: Any = None

    @property
    def num_agents(self) -> int:
        return self.num_learner_agents + self.num_expert_agents

    @property
    def max_actions(self) -> int:
        return max(self.num_actions)

    @property
    def max_observation_size(self) -> int:
        return max(self.observation_sizes)


_FUNCTION_FIELDS = (
    "reset", "step", "observations", "global_observation", "learner_independent_reward",
    "learner_dependent_reward", "expert_reward", "learner_features", "expert_features",
)


def validate_game(game: ContinuousGame) -> ContinuousGame:
    """Check the constants, then trace every function once and check its output against the sizes.

    The functions are traced abstractly (``jax.eval_shape``: no compilation, no FLOPs) on
    ``reset(PRNGKey)``'s state and a valid joint action. Raises ValueError naming the bad field or
    function (TypeError when a field has the wrong type). Returns the game.
    """
    if not isinstance(game, ContinuousGame):
        raise TypeError(f"game: expected a ContinuousGame, got {type(game).__name__}")
    _check_constants(game)
    for name in _FUNCTION_FIELDS:
        if not callable(getattr(game, name)):
            raise TypeError(f"{name}: expected a callable, got {getattr(game, name)!r}")
    _check_functions(game)
    return game


def _check_constants(game: ContinuousGame) -> None:
    check_count("num_learner_agents", game.num_learner_agents, 1)
    check_count("num_expert_agents", game.num_expert_agents, 1)
    for name in ("num_actions", "observation_sizes"):
        sizes = getattr(game, name)
        if (not isinstance(sizes, (tuple, list)) or len(sizes) != game.num_agents
                or not all(is_integer(size) and size >= 1 for size in sizes)):
            raise ValueError(f"{name}: expected {game.num_agents} positive ints (learner agents first), "
                             f"got {sizes!r}")
    check_count("state_size", game.state_size, 1)
    if not is_integer(game.horizon) or game.horizon < 1:
        raise ValueError(f"horizon: expected T >= 1, got {game.horizon!r}")
    # a number, not a string: float("0.9") would pass here and fail later inside γ ** t
    if not (is_finite_real_scalar(game.discount) and 0.0 < float(game.discount) <= 1.0):
        raise ValueError(f"discount: expected 0 < γ <= 1, got {game.discount!r}")
    check_count("learner_feature_size", game.learner_feature_size, 1)
    check_count("expert_feature_size", game.expert_feature_size, 1)
    for name in ("learner_reward_scale", "expert_reward_scale"):
        scale = getattr(game, name)  # r^θ = scale · φ·θ: NaN, inf or 0 would make the model meaningless
        if not (is_finite_real_scalar(scale) and float(scale) != 0):
            raise ValueError(f"{name}: expected a finite nonzero number, got {scale!r}")
    for team in ("learner", "expert"):
        model = getattr(game, f"{team}_reward_model")
        if model is None:
            continue
        field = f"{team}_reward_model"
        if not (is_integer(getattr(model, "num_params", None)) and model.num_params >= 1):
            raise ValueError(f"{field}: expected a model with num_params (an integer >= 1), "
                             f"got {getattr(model, 'num_params', None)!r}")
        for method in ("reward", "init"):
            if not callable(getattr(model, method, None)):
                raise ValueError(f"{field}: expected a model with a {method}() method "
                                 f"(gsiirl.rewards.feature_models), got {type(model).__name__}")
        if float(getattr(game, f"{team}_reward_scale")) != 1.0:  # one scale, the model's own
            raise ValueError(f"{team}_reward_scale: expected 1.0 when {field} is set (the model carries its own "
                             f"scale), got {getattr(game, f'{team}_reward_scale')!r}")


def _trace(name: str, inputs: str, function: Callable, *args):
    """Abstract output of ``function(*args)``; an exception becomes a ValueError naming ``name``."""
    try:
        return jax.eval_shape(function, *args)
    except Exception as error:  # noqa: BLE001 - any failure of user code is reported under its field
        raise ValueError(f"{name}: failed when traced on {inputs} ({type(error).__name__}: {error})") from error


def _describe(value) -> str:
    if isinstance(value, jax.ShapeDtypeStruct):
        return f"{value.dtype}{list(value.shape)}"
    return type(value).__name__


def _check_array(where: str, value, shape: tuple[int, ...], source: str = "") -> None:
    """``value`` (abstract) must be a real-valued array of ``shape``; ``source`` names the size field."""
    if not isinstance(value, jax.ShapeDtypeStruct):
        raise ValueError(f"{where}: expected an array, got {_describe(value)}")
    if shape == () and value.shape != ():
        raise ValueError(f"{where}: expected a scalar, got shape {value.shape}")
    if value.shape != shape:
        raise ValueError(f"{where}: expected shape {shape}{source}, got {value.shape}")
    if value.dtype.kind not in "biuf":
        raise ValueError(f"{where}: expected real numbers, got dtype {value.dtype}")


def _check_functions(game: ContinuousGame) -> None:
    """Trace each function once on a state from ``reset`` and check shapes and dtypes by name."""
    n_l, n_e = game.num_learner_agents, game.num_expert_agents
    key = jax.ShapeDtypeStruct((2,), jnp.uint32)  # what jax.random.PRNGKey(seed) returns
    state = _trace("reset", "a PRNG key uint32[2]", game.reset, key)
    leaves, structure = jax.tree_util.tree_flatten_with_path(state)
    if not leaves:
        raise ValueError("reset: expected a state with at least one array, got an empty pytree")

    on_state = "reset's state"
    observations = _trace("observations", on_state, game.observations, state)
    if not isinstance(observations, (tuple, list)):
        raise ValueError(f"observations: expected a tuple of {game.num_agents} per-agent 1-D arrays "
                         f"(learner agents first), got {_describe(observations)}")
    if len(observations) != game.num_agents:
        raise ValueError(f"observations: expected {game.num_agents} per-agent arrays "
                         f"({n_l} learner then {n_e} expert), got {len(observations)}")
    for index, (observation, size) in enumerate(zip(observations, game.observation_sizes)):
        role = "learner" if index < n_l else "expert"
        _check_array(f"observations: agent {index} ({role})", observation, (size,),
                     f" from observation_sizes[{index}]")
    _check_array("global_observation", _trace("global_observation", on_state, game.global_observation, state),
                 (game.state_size,), " from state_size")

    learner_actions = jax.ShapeDtypeStruct((n_l,), jnp.int32)
    expert_actions = jax.ShapeDtypeStruct((n_e,), jnp.int32)
    joint = f"reset's state and a joint action (learner_actions int32[{n_l}], expert_actions int32[{n_e}])"
    stepped = _trace("step", joint, game.step, state, learner_actions, expert_actions)
    if not isinstance(stepped, (tuple, list)) or len(stepped) != 2:
        raise ValueError(f"step: expected a pair (next_state, done), got {_describe(stepped)}")
    next_state, done = stepped
    next_leaves, next_structure = jax.tree_util.tree_flatten_with_path(next_state)
    if next_structure != structure:
        raise ValueError(f"step: the next state's structure differs from reset's "
                         f"(reset: {structure}, step: {next_structure})")
    for (path, before), (_, after) in zip(leaves, next_leaves):
        if before.shape != after.shape or before.dtype != after.dtype:
            where = jax.tree_util.keystr(path) or "state"
            raise ValueError(f"step: the next state's {where} is {_describe(after)}, reset's is {_describe(before)} "
                             f"(a state leaf must keep its shape and dtype)")
    if not isinstance(done, jax.ShapeDtypeStruct) or done.shape != () or done.dtype != jnp.bool_:
        got = f"shape {done.shape}" if isinstance(done, jax.ShapeDtypeStruct) and done.shape != () else _describe(done)
        raise ValueError(f"step: done: expected a scalar bool, got {got}")

    arguments = (state, learner_actions, expert_actions, next_state)
    on_transition = "(state, learner_actions, expert_actions, next_state) from reset and step"
    for name in ("learner_independent_reward", "learner_dependent_reward", "expert_reward"):
        _check_array(name, _trace(name, on_transition, getattr(game, name), *arguments), ())
    for name, size in (("learner_features", game.learner_feature_size),
                       ("expert_features", game.expert_feature_size)):
        _check_array(name, _trace(name, on_transition, getattr(game, name), *arguments), (size,),
                     f" from {name[:-len('features')]}feature_size")
    for team, model, size in zip(("learner", "expert"), reward_models(game),
                                 (game.learner_feature_size, game.expert_feature_size)):
        theta = jax.ShapeDtypeStruct((model.num_params,), jnp.float32)
        # one step and, as the back-end calls it, episodes of steps [N, T, d] -> [N, T] (T != d: a model
        # written for one step only, e.g. jnp.dot(theta, features), must not pass by coincidence)
        for batch in ((), (2, size + 1)):
            features = jax.ShapeDtypeStruct(batch + (size,), jnp.float32)
            where = f"{team}_reward_model: reward"
            _check_array(where, _trace(where, f"(theta float32[{model.num_params}], {team}_features "
                                              f"float32{list(batch + (size,))})", model.reward, theta, features),
                         batch, " (one modelled reward per step: features [..., d] -> [...])")
        where = f"{team}_reward_model: init"
        _check_array(where, _trace(where, "(a PRNG key uint32[2], radius 1.0)",
                                   lambda k: model.init(k, 1.0), key),
                     (model.num_params,), " from num_params")


class RewardParams(NamedTuple):
    """Which rewards the two teams are trained on (a pytree, vmappable over a batch).

    learner reward = r_li + use_true_ld * r_ld + (1 - use_true_ld) * r_ld^θl(φ_l)
    expert  reward = use_true_e * r_e + (1 - use_true_e) * r_e^θe(φ_e)
    (linear models by default: r^θ(φ) = scale · φ·θ; :func:`reward_models`)

    ``frozen`` (optional, [2] float in {0, 1}: learner, expert): a team flagged 1 keeps its actors as they are
    during training (its critics still learn) — a best response of the other team to a fixed policy, as
    MA-IRL's ``ma_irl_gradient="best_response"`` trains it. None (the default) freezes nothing.
    """

    theta_l: jax.Array  # [P_l] (P = the model's num_params; the feature size for the linear default)
    theta_e: jax.Array  # [P_e]
    use_true_ld: jax.Array  # [] float in {0, 1}
    use_true_e: jax.Array  # [] float in {0, 1}
    frozen: jax.Array | None = None  # [2] float in {0, 1} (learner, expert); None: both teams learn


def make_reward_params(theta_l, theta_e, use_true_ld: bool = False, use_true_e: bool = False):
    """Build :class:`RewardParams` from parameter vectors and two flags."""
    return RewardParams(
        jnp.asarray(theta_l, jnp.float32),
        jnp.asarray(theta_e, jnp.float32),
        jnp.asarray(float(use_true_ld), jnp.float32),
        jnp.asarray(float(use_true_e), jnp.float32),
    )


class Rollout(NamedTuple):
    """``num_episodes`` (N) episodes of ``horizon`` (T) steps; A agents, O = max observation size."""

    observations: jax.Array  # [N, T, A, O] zero-padded per-agent observations
    global_observations: jax.Array  # [N, T, state_size]
    next_observations: jax.Array  # [N, T, A, O]
    next_global_observations: jax.Array  # [N, T, state_size]
    actions: jax.Array  # [N, T, A] int32 (learner agents first)
    alive: jax.Array  # [N, T] 1.0 while the episode runs (before termination)
    terminal: jax.Array  # [N, T] 1.0 at the step where the episode terminates
    learner_independent_reward: jax.Array  # [N, T] r_li
    learner_dependent_reward: jax.Array  # [N, T] queried r_ld values
    expert_reward: jax.Array  # [N, T] hidden true r_e (metrics / simulated expert only)
    learner_features: jax.Array  # [N, T, d_l]
    expert_features: jax.Array  # [N, T, d_e]
    global_trajectory: jax.Array  # [N, T+1, state_size] global observations incl. the final state


# Rollout fields that come straight from the game's functions, and what the user calls them.
GAME_OUTPUTS = {"observations": "observations (observe)", "global_observations": "global_observation",
                "learner_independent_reward": "r_li", "learner_dependent_reward": "the queried r_ld",
                "expert_reward": "r_e", "learner_features": "learner_features", "expert_features": "expert_features"}


def non_finite_outputs(key: jax.Array, game: ContinuousGame, num_episodes: int = 16) -> list[str]:
    """Which of the game's functions return NaN or inf in ``num_episodes`` episodes of uniformly random
    play, e.g. ``["the queried r_ld (first at episode 0, step 3)"]``; [] when all are finite there.

    A diagnosis for a run that produced a NaN (it compiles one rollout): it names the function that made
    it when random play reaches the bad states, and says nothing when only a learned policy does.
    """
    data = jax.device_get(random_play(key, game, num_episodes))
    found = []
    for field, name in GAME_OUTPUTS.items():
        values = np.asarray(getattr(data, field))
        bad = ~np.isfinite(values.reshape(values.shape[0], values.shape[1], -1)).all(axis=-1)  # [N, T]
        if bad.any():
            episode, step = (int(i) for i in np.argwhere(bad)[0])
            found.append(f"{name} (first at episode {episode}, step {step})")
    return found


def pad_observations(game: ContinuousGame, state: State) -> jax.Array:
    """Per-agent observations zero-padded and stacked: [A, max_observation_size]."""
    width = game.max_observation_size
    rows = [jnp.pad(o, (0, width - o.shape[0])) for o in game.observations(state)]
    return jnp.stack(rows)


def rollout(
    key: jax.Array,
    game: ContinuousGame,
    policy: Callable[[jax.Array, jax.Array], jax.Array],
    num_episodes: int,
) -> Rollout:
    """Run ``num_episodes`` vmapped episodes of ``game.horizon`` steps.

    Args:
        key: PRNG key.
        game: the game.
        policy: ``policy(key, observations[A, O]) -> actions[A] int32`` (decentralised execution).
        num_episodes: N.
    Returns a :class:`Rollout`; once an episode terminates the state is frozen, ``alive`` is 0 and
    rewards/features are masked to 0.
    """
    n_l = game.num_learner_agents

    def one_episode(episode_key):
        reset_key, step_key = jax.random.split(episode_key)
        state0 = game.reset(reset_key)

        def body(carry, step_key_t):
            state, alive = carry
            obs = pad_observations(game, state)
            actions = policy(step_key_t, obs).astype(jnp.int32)
            la, ea = actions[:n_l], actions[n_l:]
            next_state, done = game.step(state, la, ea)
            done = jnp.asarray(done)  # a Python or NumPy bool is a valid `done` too
            out = dict(
                observations=obs,
                global_observations=game.global_observation(state),
                next_observations=pad_observations(game, next_state),
                next_global_observations=game.global_observation(next_state),
                actions=actions,
                alive=alive,
                terminal=alive * done.astype(jnp.float32),
                learner_independent_reward=game.learner_independent_reward(state, la, ea, next_state),
                learner_dependent_reward=game.learner_dependent_reward(state, la, ea, next_state),
                expert_reward=game.expert_reward(state, la, ea, next_state),
                learner_features=game.learner_features(state, la, ea, next_state),
                expert_features=game.expert_features(state, la, ea, next_state),
            )
            new_alive = alive * (1.0 - done.astype(jnp.float32))
            # Freeze the state after termination so that positions stay put.
            frozen = jax.tree_util.tree_map(
                lambda new, old: jnp.where(alive > 0, new, old), next_state, state
            )
            return (frozen, new_alive), out

        keys = jax.random.split(step_key, game.horizon)
        (final_state, _), outs = jax.lax.scan(body, (state0, jnp.float32(1.0)), keys)
        trajectory = jnp.concatenate(
            [outs["global_observations"], game.global_observation(final_state)[None]], axis=0
        )
        return outs, trajectory

    outs, trajectory = jax.vmap(one_episode)(jax.random.split(key, num_episodes))
    mask = outs["alive"]
    masked = {k: v for k, v in outs.items()}
    for name in ("learner_independent_reward", "learner_dependent_reward", "expert_reward"):
        masked[name] = outs[name] * mask
    for name in ("learner_features", "expert_features"):
        masked[name] = outs[name] * mask[..., None]
    return Rollout(global_trajectory=trajectory, **masked)


def random_play(key: jax.Array, game: ContinuousGame, num_episodes: int) -> Rollout:
    """:func:`rollout` of ``num_episodes`` episodes of uniformly random play (each agent draws each of its
    ``num_actions[i]`` actions with equal probability at every step), compiled."""
    limits = jnp.asarray(game.num_actions)

    def uniform(step_key, observations):
        return jax.random.randint(step_key, (observations.shape[0],), 0, limits).astype(jnp.int32)

    return jax.jit(lambda k: rollout(k, game, uniform, num_episodes))(key)
