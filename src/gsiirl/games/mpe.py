"""MPE physical deception (``simple_adversary``) as a learner/expert game (paper §8, A.10.1).

The environment is the real MPE ``simple_adversary`` scenario, stepped through JaxMARL's JAX port
(``jaxmarl.make("MPE_simple_adversary_v3")``) so that thousands of episodes run as one jitted,
vmapped ``lax.scan``. ``tests/test_mpe.py`` checks the port against Farama's ``mpe2`` package step for
step (same state, same actions -> same observations and rewards); docs/mpe.md records the measured
choice. No physics is re-implemented here: every transition is the package's ``step_env``.

Roles (DESIGN §6): the two good agents together are the *learner* (one shared return), the adversary is
the *expert*. States are the observations: expert ``[8]``, learner ``[2, 10]`` (one row per good agent).
Rewards, all functions of the state *after* a step (as in MPE):

* ``r_li  = -min_i ||p_target - p_good_i||``   known to the learner (expert-independent)
* ``r_ld  = +||p_target - p_adversary||``      the *queried* value (oracle), unknown as a function
* ``r_e   = -||p_target - p_adversary||``      hidden expert reward

``r_li + r_ld`` is the package's good-agent reward and ``r_e`` its adversary reward.

One episode is ``EPISODE_LENGTH = 25`` steps, as mpe2's ``max_cycles=25`` (JaxMARL's own auto-reset
``step`` would run 26; we scan ``step_env`` exactly 25 times instead).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

EPISODE_LENGTH = 25
NUM_GOOD_AGENTS = 2
NUM_LANDMARKS = 2
NUM_ACTIONS = 5  # [no_action, left, right, down, up]
EXPERT_OBSERVATION_DIM = 8
LEARNER_OBSERVATION_DIM = 10
NUM_REWARD_FEATURES = 6
ENVIRONMENT_NAME = "MPE_simple_adversary_v3"
ADVERSARY_NAMES = ("adversary_0",)
GOOD_AGENT_NAMES = ("agent_0", "agent_1")


def import_jaxmarl():
    """``import jaxmarl`` without letting it clobber the process's output streams.

    jaxmarl 0.2's multi-agent Brax module resets ``sys.stdout``/``sys.stderr`` to ``sys.__stdout__`` /
    ``sys.__stderr__`` when imported, which silently breaks any redirection in place (pytest's capture,
    Jupyter cells, ``contextlib.redirect_stdout``). The streams are restored after the import.
    """
    import sys

    streams = sys.stdout, sys.stderr
    try:
        import jaxmarl
    except ImportError as error:  # pragma: no cover - depends on the installation
        raise ImportError(
            "The MPE experiment needs the 'jaxmarl' package (JAX port of MPE): pip install jaxmarl"
        ) from error
    finally:
        sys.stdout, sys.stderr = streams
    return jaxmarl


@functools.lru_cache(maxsize=1)
def make_environment():
    """The JaxMARL ``simple_adversary`` environment (N=2 good agents, 2 landmarks, discrete actions)."""
    jaxmarl = import_jaxmarl()
    with jax.ensure_compile_time_eval():  # constants stay concrete even if first called under jit
        return jaxmarl.make(ENVIRONMENT_NAME)


class MPEObservation(NamedTuple):
    """Per-player observations (the game's state).

    expert: [..., 8]     adversary: landmarks and good agents relative to itself.
    learner: [..., 2, 10] good agent i: target, landmarks, other agents relative to itself.
    """

    expert: jax.Array
    learner: jax.Array


class MPERewards(NamedTuple):
    """Reward components after one step (each [...])."""

    learner_independent: jax.Array  # r_li = -min_i ||p_target - p_good_i||
    learner_dependent: jax.Array  # queried r_ld = ||p_target - p_adversary||
    expert: jax.Array  # hidden r_e = -||p_target - p_adversary||


def _observation_from_dict(observations: dict) -> MPEObservation:
    expert = observations[ADVERSARY_NAMES[0]]
    learner = jnp.stack([observations[name] for name in GOOD_AGENT_NAMES], axis=0)
    return MPEObservation(expert=expert, learner=learner)


def target_position(state) -> jax.Array:
    """Position of the target (goal) landmark [2] of a JaxMARL state."""
    num_agents = 1 + NUM_GOOD_AGENTS
    return state.p_pos[num_agents + state.goal]


def reward_components(state) -> MPERewards:
    """The three reward components (A.10.1) from a single (unbatched) JaxMARL state."""
    target = target_position(state)
    adversary_distance = jnp.linalg.norm(state.p_pos[0] - target)
    good_distances = jnp.linalg.norm(state.p_pos[1 : 1 + NUM_GOOD_AGENTS] - target, axis=-1)
    return MPERewards(
        learner_independent=-jnp.min(good_distances),
        learner_dependent=adversary_distance,
        expert=-adversary_distance,
    )


def make_state(positions: jax.Array, velocities: jax.Array, goal: int | jax.Array, step_count: int = 0):
    """A JaxMARL state from explicit physics.

    Args:
        positions: [5, 2] adversary, good 0, good 1, landmark 0, landmark 1.
        velocities: [5, 2] same order (landmarks do not move).
        goal: index of the target landmark, 0 or 1.
        step_count: steps already played in the episode.
    """
    import_jaxmarl()  # first import with the output streams protected
    from jaxmarl.environments.mpe.simple import State

    dtype = jnp.result_type(float)  # float32, or float64 under jax_enable_x64 (the package needs one dtype)
    positions = jnp.asarray(positions, dtype)
    velocities = jnp.asarray(velocities, dtype)
    num_entities = 1 + NUM_GOOD_AGENTS + NUM_LANDMARKS
    for name, array in (("positions", positions), ("velocities", velocities)):
        if array.shape != (num_entities, 2):
            raise ValueError(f"{name}: expected shape ({num_entities}, 2), got {array.shape}")
    return State(
        p_pos=positions,
        p_vel=velocities,
        c=jnp.zeros((1 + NUM_GOOD_AGENTS, 2), dtype),
        done=jnp.array(False),
        step=jnp.asarray(step_count, jnp.int32),
        goal=jnp.asarray(goal, jnp.int32),
    )


def observe(state) -> MPEObservation:
    """The players' observations of a JaxMARL state (the package's ``get_obs``)."""
    return _observation_from_dict(make_environment().get_obs(state))


def reset(key: jax.Array):
    """Start an episode. Returns (state, MPEObservation with expert [8], learner [2, 10])."""
    observations, state = make_environment().reset(key)
    return state, _observation_from_dict(observations)


def step(key: jax.Array, state, expert_action: jax.Array, learner_actions: jax.Array):
    """One joint step of the package's dynamics.

    Args:
        key: PRNG key (the scenario has no action noise, kept for the package's signature).
        state: JaxMARL state.
        expert_action: int scalar in [0, 5).
        learner_actions: int [2], one action per good agent.
    Returns:
        (next_state, MPEObservation of next_state, MPERewards of next_state)
    """
    actions = {ADVERSARY_NAMES[0]: expert_action}
    for index, name in enumerate(GOOD_AGENT_NAMES):
        actions[name] = learner_actions[index]
    observations, next_state, _, _, _ = make_environment().step_env(key, state, actions)
    return next_state, _observation_from_dict(observations), reward_components(next_state)


def reward_features(observation: MPEObservation) -> jax.Array:
    """Distance features φ(s) [..., 6] computed from the observations alone.

    From good agent 0's observation ``[p_t - p_g0, p_l0 - p_g0, p_l1 - p_g0, p_a - p_g0, p_g1 - p_g0]``
    (all relative to itself) we get every position up to a translation; the non-target landmark is
    ``p_l0 + p_l1 - p_t`` (two landmarks). Features, in order, for (adversary, good 0, good 1):
    distance to the target landmark, distance to the non-target landmark. The true rewards are linear
    in them: r_e = -φ_0, r_ld = +φ_0, and r_li = -min(φ_2, φ_4).
    """
    own = observation.learner[..., 0, :]
    target = own[..., 0:2]
    non_target = own[..., 2:4] + own[..., 4:6] - target
    agents = jnp.stack(
        [own[..., 6:8], jnp.zeros_like(target), own[..., 8:10]], axis=-2
    )  # [..., 3, 2]: adversary, good 0, good 1 (relative to good 0)
    to_target = jnp.linalg.norm(target[..., None, :] - agents, axis=-1)
    to_non_target = jnp.linalg.norm(non_target[..., None, :] - agents, axis=-1)
    return jnp.stack([to_target, to_non_target], axis=-1).reshape(target.shape[:-1] + (6,))


def _step_for_protocol(state, learner_actions: jax.Array, expert_actions: jax.Array):
    """ContinuousGame.step: the package's deterministic step (no action noise in this scenario)."""
    next_state, _, _ = step(jax.random.PRNGKey(0), state, expert_actions[0], learner_actions)
    return next_state, jnp.array(False)  # MPE never terminates; the horizon truncates


def _observations_for_protocol(state) -> tuple[jax.Array, ...]:
    observation = observe(state)
    return (observation.learner[0], observation.learner[1], observation.expert)


def _global_observation(state) -> jax.Array:
    """[28]: both good agents' observations then the adversary's (what centralised critics see)."""
    return jnp.concatenate(_observations_for_protocol(state))


def _features(state, learner_actions, expert_actions, next_state) -> jax.Array:
    return reward_features(observe(next_state))


def _adversary_features(state, learner_actions, expert_actions, next_state) -> jax.Array:
    """[2]: the adversary's own distances to the target and non-target landmarks (φ_0, φ_1)."""
    return reward_features(observe(next_state))[..., 0:2]


EXPERT_FEATURE_SETS = ("all", "adversary")


def _reward_component(name: str):
    def reward(state, learner_actions, expert_actions, next_state) -> jax.Array:
        return getattr(reward_components(next_state), name)

    reward.__name__ = name
    return reward


def make_game(feature_scale: float = 2.0, discount: float = 0.95, expert_features: str = "all"):
    """simple_adversary as a :class:`gsiirl.games.continuous.ContinuousGame`.

    Agents: good 0, good 1 (learner team), adversary (expert). Horizon 25, 5 actions each,
    observations (10, 10, 8), global observation [28]. Both reward models are linear in the six
    distance features of :func:`reward_features` (``r^θ = feature_scale φ·θ``, θ in the unit ball);
    with ``feature_scale = 2`` the true r_ld and r_e are θ = ±(0.5, 0, 0, 0, 0, 0), inside the ball.
    ``discount`` is the training discount (0.95 as in MADDPG's MPE runs: the critics do not see the
    time step, and with γ = 1 their bootstrapped targets past the 25-step horizon drift without bound;
    measured: adversary ≈ −26 with γ = 1 against ≈ −14 with γ = 0.95 after the same training).
    Reported returns are undiscounted sums over the 25 steps, as MPE reports them.
    ``expert_features``: "all" (the six features) or "adversary" (only the adversary's own two
    distances; the true r_e is θe = (−1/scale, 0)): the expert's reward model then has no weights on
    the good agents' distances, which the adversary barely controls (docs/mpe.md).
    """
    from gsiirl.games.continuous import ContinuousGame, validate_game

    if not feature_scale > 0:
        raise ValueError(f"feature_scale: expected a positive number, got {feature_scale!r}")
    if not 0.0 < discount <= 1.0:
        raise ValueError(f"discount: expected 0 < γ <= 1, got {discount!r}")
    if expert_features not in EXPERT_FEATURE_SETS:
        raise ValueError(f"expert_features: expected one of {list(EXPERT_FEATURE_SETS)}, got {expert_features!r}")
    own_only = expert_features == "adversary"
    make_environment()
    return validate_game(
        ContinuousGame(
            num_learner_agents=NUM_GOOD_AGENTS,
            num_expert_agents=1,
            num_actions=(NUM_ACTIONS,) * 3,
            observation_sizes=(LEARNER_OBSERVATION_DIM, LEARNER_OBSERVATION_DIM, EXPERT_OBSERVATION_DIM),
            state_size=2 * LEARNER_OBSERVATION_DIM + EXPERT_OBSERVATION_DIM,
            horizon=EPISODE_LENGTH,
            discount=float(discount),
            learner_feature_size=NUM_REWARD_FEATURES,
            expert_feature_size=2 if own_only else NUM_REWARD_FEATURES,
            reset=lambda key: reset(key)[0],
            step=_step_for_protocol,
            observations=_observations_for_protocol,
            global_observation=_global_observation,
            learner_independent_reward=_reward_component("learner_independent"),
            learner_dependent_reward=_reward_component("learner_dependent"),
            expert_reward=_reward_component("expert"),
            learner_features=_features,
            expert_features=_adversary_features if own_only else _features,
            learner_reward_scale=float(feature_scale),
            expert_reward_scale=float(feature_scale),
        )
    )


def uniform_random_policy(key: jax.Array, observations: jax.Array) -> jax.Array:
    """Uniform random joint action [3] (a policy for :func:`gsiirl.games.continuous.rollout`)."""
    return jax.random.randint(key, (observations.shape[0],), 0, NUM_ACTIONS)
