"""Human–robot interaction game (paper §3, §8.2, A.10.2; DESIGN §6) as pure JAX functions.

Robot (learner, agent 0) and human (expert, agent 1) move in the plane: ``p' = p + v``. Each picks a
velocity from a discretised set: ``velocity_levels`` values per axis evenly spaced in
``[-max_speed, max_speed]`` (default 5 → 25 actions; 5 levels make every point of the plane reachable
to within 0.035 < goal radius, 3 levels would not). An agent that enters its goal disc has *arrived*
and parks there (its velocity is zero from then on); the episode terminates when both have arrived.

Rewards are functions of ``(s, a_r, a_h, s')`` and use the post-step positions ``p'``:

* ``r_li = -||g_r - p_r'||``                                          (known, robot only)
* ``r_e  = -||g_h - p_h'|| - expert_collision_penalty · c``          (hidden; A.10.2: both penalised)
* ``r_ld = -collision_penalty · c - slowness_weight · slow``         (queried oracle "emotion" h)

Positions are confined to the arena ``[-arena_half_width, arena_half_width]²`` (a room: a velocity
that would leave it is clipped at the wall), so a policy learned from a random reward cannot drift
arbitrarily far away.

with ``c = 1[min distance between the two agents during the step < safe_distance]`` (the minimum over
the straight-line motion of the step, so agents cannot tunnel through each other) and
``slow = max(0, 1 - ||v_h|| / max_speed)`` while the human has not arrived (a slow human is unhappy).

Linear reward-model features (smooth, C^∞ as Assumption 1 asks; signs chosen so the true weights
are positive):

* learner ``φ_l = [-σ((d_safe - d_min)/τ), -slow, -exp(-d'^2 / (2 ρ^2))]`` (soft collision, human
  slowness, proximity); the true r_ld ≈ φ_l · (collision_penalty, slowness_weight, 0).
* expert ``φ_e = [-||g_h - p_h'||, -σ((d_safe - d_min)/τ), -||v_h|| / max_speed]``; the true
  r_e ≈ φ_e · (1, expert_collision_penalty, 0).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from gsiirl.games.continuous import ContinuousGame, validate_game

NUM_FEATURES = 3  # φ_l and φ_e each have 3 entries (see above)

HRI_DEFAULTS = dict(
    horizon=25,
    discount=0.95,
    max_speed=0.1,
    velocity_levels=5,
    robot_start_low=(-0.25, -0.4),
    robot_start_high=(0.25, 0.5),
    robot_goal=(0.0, 0.5),
    human_start_low=(0.4, -0.25),
    human_start_high=(0.5, 0.25),
    human_goal=(-0.5, 0.0),
    goal_radius=0.05,
    arena_half_width=1.0,
    safe_distance=0.15,
    collision_penalty=1.0,
    slowness_weight=0.2,
    expert_collision_penalty=0.5,
    collision_softness=0.02,
    proximity_scale=0.25,
    learner_reward_scale=1.0,
    expert_reward_scale=1.0,
)


class HRIState(NamedTuple):
    """robot [2], human [2] positions; arrived flags (bool scalars)."""

    robot: jax.Array
    human: jax.Array
    robot_arrived: jax.Array
    human_arrived: jax.Array


def velocity_table(max_speed: float, levels: int) -> jax.Array:
    """Discretised velocity set [levels², 2]; action a = i·levels + j ↦ (v[i], v[j])."""
    values = jnp.linspace(-max_speed, max_speed, levels)
    vx, vy = jnp.meshgrid(values, values, indexing="ij")
    return jnp.stack([vx.ravel(), vy.ravel()], axis=-1).astype(jnp.float32)


def closest_approach(p0: jax.Array, q0: jax.Array, p1: jax.Array, q1: jax.Array):
    """Two points moving linearly p0→p1 and q0→q1 over one step ([2] each): (offset p0 − q0 [2], relative
    velocity [2], the fraction s ∈ [0, 1] of the step at which they are closest [])."""
    offset = p0 - q0
    relative_velocity = (p1 - p0) - (q1 - q0)
    speed_sq = jnp.sum(relative_velocity**2)
    s = jnp.clip(-jnp.dot(offset, relative_velocity) / jnp.maximum(speed_sq, 1e-12), 0.0, 1.0)
    return offset, relative_velocity, s


def segment_min_distance(p0: jax.Array, q0: jax.Array, p1: jax.Array, q1: jax.Array) -> jax.Array:
    """Minimum distance between two points moving linearly p0→p1 and q0→q1 over one step."""
    offset, relative_velocity, s = closest_approach(p0, q0, p1, q1)
    return jnp.linalg.norm(offset + s * relative_velocity)


def _check_options(options: dict) -> dict:
    unknown = set(options) - set(HRI_DEFAULTS)
    if unknown:
        raise ValueError(f"HRI options: unknown keys {sorted(unknown)}; expected a subset of {sorted(HRI_DEFAULTS)}")
    opts = {**HRI_DEFAULTS, **options}
    for name in ("max_speed", "goal_radius", "safe_distance", "collision_softness", "proximity_scale",
                 "arena_half_width"):
        if not float(opts[name]) > 0:
            raise ValueError(f"{name}: expected a positive number, got {opts[name]}")
    if int(opts["velocity_levels"]) < 2:
        raise ValueError(f"velocity_levels: expected >= 2, got {opts['velocity_levels']}")
    for name in ("robot_start", "human_start"):
        low, high = opts[name + "_low"], opts[name + "_high"]
        if any(lo > hi for lo, hi in zip(low, high)):
            raise ValueError(f"{name}_low/{name}_high: expected low <= high, got {low}, {high}")
    return opts


def make_hri_game(options: dict | None = None) -> ContinuousGame:
    """Build the HRI :class:`ContinuousGame`; ``options`` override :data:`HRI_DEFAULTS`."""
    opts = _check_options(dict(options or {}))
    velocities = velocity_table(float(opts["max_speed"]), int(opts["velocity_levels"]))
    num_actions = int(velocities.shape[0])
    max_speed = float(opts["max_speed"])
    robot_goal = jnp.asarray(opts["robot_goal"], jnp.float32)
    human_goal = jnp.asarray(opts["human_goal"], jnp.float32)
    radius = float(opts["goal_radius"])
    safe = float(opts["safe_distance"])
    softness = float(opts["collision_softness"])
    proximity_scale = float(opts["proximity_scale"])
    arena = float(opts["arena_half_width"])
    robot_low, robot_high = (jnp.asarray(opts[k], jnp.float32) for k in ("robot_start_low", "robot_start_high"))
    human_low, human_high = (jnp.asarray(opts[k], jnp.float32) for k in ("human_start_low", "human_start_high"))

    def reset(key: jax.Array) -> HRIState:
        robot_key, human_key = jax.random.split(key)
        robot = jax.random.uniform(robot_key, (2,), minval=robot_low, maxval=robot_high)
        human = jax.random.uniform(human_key, (2,), minval=human_low, maxval=human_high)
        return HRIState(
            robot,
            human,
            jnp.linalg.norm(robot - robot_goal) <= radius,
            jnp.linalg.norm(human - human_goal) <= radius,
        )

    def applied_velocities(state: HRIState, learner_actions, expert_actions):
        """Velocities actually applied: 0 after arrival, and clipped so nobody leaves the arena."""
        v_r = jnp.where(state.robot_arrived, 0.0, velocities[learner_actions[0]])
        v_h = jnp.where(state.human_arrived, 0.0, velocities[expert_actions[0]])
        v_r = jnp.clip(state.robot + v_r, -arena, arena) - state.robot
        v_h = jnp.clip(state.human + v_h, -arena, arena) - state.human
        return v_r, v_h

    def step(state: HRIState, learner_actions, expert_actions):
        v_r, v_h = applied_velocities(state, learner_actions, expert_actions)
        robot, human = state.robot + v_r, state.human + v_h
        robot_arrived = state.robot_arrived | (jnp.linalg.norm(robot - robot_goal) <= radius)
        human_arrived = state.human_arrived | (jnp.linalg.norm(human - human_goal) <= radius)
        return HRIState(robot, human, robot_arrived, human_arrived), robot_arrived & human_arrived

    def observations(state: HRIState):
        robot = jnp.concatenate([state.robot, state.human, robot_goal - state.robot, state.human - state.robot])
        human = jnp.concatenate([state.human, state.robot, human_goal - state.human, state.robot - state.human])
        return robot, human

    def global_observation(state: HRIState) -> jax.Array:
        flags = jnp.stack([state.robot_arrived, state.human_arrived]).astype(jnp.float32)
        return jnp.concatenate([state.robot, state.human, flags])

    def quantities(state, la, ea, next_state):
        v_r, v_h = applied_velocities(state, la, ea)
        d_min = segment_min_distance(state.robot, state.human, next_state.robot, next_state.human)
        distance = jnp.linalg.norm(next_state.robot - next_state.human)
        speed = jnp.linalg.norm(v_h) / max_speed
        slow = jnp.maximum(0.0, 1.0 - speed) * (1.0 - state.human_arrived.astype(jnp.float32))
        return dict(
            collision=(d_min < safe).astype(jnp.float32),
            soft_collision=jax.nn.sigmoid((safe - d_min) / softness),
            proximity=jnp.exp(-(distance**2) / (2 * proximity_scale**2)),
            slow=slow,
            speed=speed,
            human_goal_distance=jnp.linalg.norm(human_goal - next_state.human),
        )

    def learner_independent_reward(state, la, ea, next_state):
        return -jnp.linalg.norm(robot_goal - next_state.robot)

    def learner_dependent_reward(state, la, ea, next_state):
        q = quantities(state, la, ea, next_state)
        return -opts["collision_penalty"] * q["collision"] - opts["slowness_weight"] * q["slow"]

    def expert_reward(state, la, ea, next_state):
        q = quantities(state, la, ea, next_state)
        return -q["human_goal_distance"] - opts["expert_collision_penalty"] * q["collision"]

    def learner_features(state, la, ea, next_state):
        q = quantities(state, la, ea, next_state)
        return -jnp.stack([q["soft_collision"], q["slow"], q["proximity"]])

    def expert_features(state, la, ea, next_state):
        q = quantities(state, la, ea, next_state)
        return -jnp.stack([q["human_goal_distance"], q["soft_collision"], q["speed"]])

    return validate_game(
        ContinuousGame(
            num_learner_agents=1,
            num_expert_agents=1,
            num_actions=(num_actions, num_actions),
            observation_sizes=(8, 8),
            state_size=6,
            horizon=int(opts["horizon"]),
            discount=float(opts["discount"]),
            learner_feature_size=NUM_FEATURES,
            expert_feature_size=NUM_FEATURES,
            reset=reset,
            step=step,
            observations=observations,
            global_observation=global_observation,
            learner_independent_reward=learner_independent_reward,
            learner_dependent_reward=learner_dependent_reward,
            expert_reward=expert_reward,
            learner_features=learner_features,
            expert_features=expert_features,
            learner_reward_scale=float(opts["learner_reward_scale"]),
            expert_reward_scale=float(opts["expert_reward_scale"]),
        )
    )


def true_parameters(options: dict | None = None) -> tuple[jax.Array, jax.Array]:
    """The linear-model weights that (up to the soft collision) reproduce r_ld and r_e: (θl*, θe*)."""
    opts = _check_options(dict(options or {}))
    theta_l = jnp.asarray([opts["collision_penalty"], opts["slowness_weight"], 0.0]) / opts["learner_reward_scale"]
    theta_e = jnp.asarray([1.0, opts["expert_collision_penalty"], 0.0]) / opts["expert_reward_scale"]
    return theta_l.astype(jnp.float32), theta_e.astype(jnp.float32)


def trajectory_positions(global_trajectory: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Split global observations [..., T+1, 6] into robot and human positions [..., T+1, 2] each."""
    return global_trajectory[..., 0:2], global_trajectory[..., 2:4]
