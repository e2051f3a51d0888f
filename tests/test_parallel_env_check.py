"""compare_with_parallel_env: a faithful JAX port passes, wrong ports are caught at the right step and
agent, bad arguments name their field, and gsiirl's MPE game agrees with Farama's mpe2 env."""

from __future__ import annotations

import re

import jax.numpy as jnp
import numpy as np
import pytest

# both come with the test extra (pip install -e ".[test]"); a missing one is a failure, not a skip
import jaxmarl  # noqa: F401
from mpe2 import simple_adversary_v3
from gymnasium import spaces
from pettingzoo import ParallelEnv

from gsiirl.games import mpe
from gsiirl.games.continuous import ContinuousGame, validate_game
from gsiirl.games.parallel_env_check import ParallelEnvComparison, compare_with_parallel_env, describe_mismatch

HORIZON = 4


# ---------------------------------------------------------------- a JAX game and its NumPy twin
def _discomfort(state):
    return jnp.maximum(0.0, 0.5 - jnp.abs(state[0] - state[1]))


def _corridor_step(state, learner_actions, expert_actions):
    moves = jnp.concatenate([learner_actions, expert_actions]) - 1
    return jnp.clip(state + 0.25 * moves, -1.0, 1.0), jnp.array(False)


def _corridor_game() -> ContinuousGame:
    """Robot (learner) and human (expert) on [-1, 1]; actions 0 left, 1 stay, 2 right."""
    return validate_game(ContinuousGame(
        num_learner_agents=1, num_expert_agents=1, num_actions=(3, 3), observation_sizes=(2, 2),
        state_size=2, horizon=HORIZON, discount=0.9, learner_feature_size=1, expert_feature_size=1,
        reset=lambda key: jnp.array([-0.75, 0.75]),
        step=_corridor_step,
        observations=lambda s: (jnp.stack([s[0], s[1] - s[0]]), jnp.stack([s[1], s[0] - s[1]])),
        global_observation=lambda s: s,
        learner_independent_reward=lambda s, la, ea, n: -jnp.abs(n[0] - 0.75),
        learner_dependent_reward=lambda s, la, ea, n: -_discomfort(n),
        expert_reward=lambda s, la, ea, n: -jnp.abs(n[1] + 0.75),
        learner_features=lambda s, la, ea, n: _discomfort(n)[None],
        expert_features=lambda s, la, ea, n: jnp.abs(n[1] + 0.75)[None],
    ))


class CorridorTwin(ParallelEnv):
    """The same corridor in NumPy float64, agents named as a third-party env would."""

    metadata = {"name": "corridor_twin"}

    def __init__(self, max_cycles: int = HORIZON):
        self.possible_agents = ["robot", "human"]
        self.agents: list[str] = []
        self.max_cycles = max_cycles

    def observation_space(self, agent):
        return spaces.Box(-2.0, 2.0, (2,), np.float64)

    def action_space(self, agent):
        return spaces.Discrete(3)

    def reset(self, seed=None, options=None):
        rng = np.random.default_rng(seed)
        self.positions = np.array([rng.uniform(-1.0, -0.5), rng.uniform(0.5, 1.0)])
        self.agents, self.cycles = list(self.possible_agents), 0
        return self._observe(), {a: {} for a in self.agents}

    def _observe(self):
        robot, human = self.positions
        return {"robot": np.array([robot, human - robot]), "human": np.array([human, robot - human])}

    def step(self, actions):
        self.positions = np.clip(self.positions + 0.25 * (np.array([actions["robot"], actions["human"]]) - 1), -1, 1)
        self.cycles += 1
        robot, human = self.positions
        rewards = {"robot": -abs(robot - 0.75) - max(0.0, 0.5 - abs(robot - human)), "human": -abs(human + 0.75)}
        over = self.cycles >= self.max_cycles
        out = (self._observe(), rewards, {a: False for a in self.agents}, {a: over for a in self.agents},
               {a: {} for a in self.agents})
        if over:
            self.agents = []
        return out


def _twin_state(env):
    return jnp.asarray(env.positions, jnp.float32)


def _compare(game, env=None, **overrides):
    arguments = dict(state_from_env=_twin_state, learner_agents=["robot"], expert_agents=["human"],
                     actions=np.array([[2, 0]] * HORIZON), seed=0)  # robot right, human left: they meet
    arguments.update(overrides)
    return compare_with_parallel_env(game, env if env is not None else CorridorTwin(), **arguments)


# ---------------------------------------------------------------- agreement and detection
def test_faithful_port_matches_on_random_actions():
    game, rng = _corridor_game(), np.random.default_rng(0)
    for seed in range(3):
        report = _compare(game, actions=rng.integers(0, 3, size=(HORIZON, 2)), seed=seed)
        assert isinstance(report, ParallelEnvComparison)
        assert report.ok and report.first_failing_step is None and report.steps == HORIZON
        assert report.agents == ("robot", "human")
        assert report.observation_differences.shape == (HORIZON + 1, 2)
        assert report.reward_differences.shape == report.termination_differences.shape == (HORIZON, 2)
        assert report.max_observation_difference < 1e-6 and report.max_reward_difference < 1e-6
        assert str(report).startswith("match: 4 steps, 2 agents")


def test_discomfort_is_exercised_by_the_meeting_actions():
    """Ground truth for the next test: with these actions the robot's pay includes r_ld from step 2 on."""
    env = CorridorTwin()
    env.reset(seed=0)
    robot, human = env.positions
    discomforts = []
    for _ in range(HORIZON):
        _, rewards, _, _, _ = env.step({"robot": 2, "human": 0})
        robot, human = min(robot + 0.25, 1.0), max(human - 0.25, -1.0)
        discomforts.append(max(0.0, 0.5 - abs(robot - human)))
        assert rewards["robot"] == pytest.approx(-abs(robot - 0.75) - discomforts[-1])
    assert discomforts[0] == 0.0 and discomforts[1] > 1e-3  # they come close at step 2


def test_missing_learner_dependent_term_is_caught_at_its_step():
    wrong = _corridor_game()._replace(learner_dependent_reward=lambda s, la, ea, n: jnp.float32(0.0))
    report = _compare(wrong)
    assert not report.ok
    mismatch = report.first_mismatch
    assert (mismatch.step, mismatch.agent, mismatch.quantity) == (2, "robot", "reward")
    assert mismatch.difference == pytest.approx(abs(float(mismatch.game_value[0] - mismatch.env_value[0])))
    np.testing.assert_allclose(report.reward_differences[0], 0.0, atol=1e-6)  # step 1: still far apart
    assert report.reward_differences[1, 0] > 1e-3 and report.reward_differences[:, 1].max() < 1e-6
    assert str(report).startswith("MISMATCH (step 2, agent 'robot', reward")


def test_flipped_expert_reward_sign_is_caught_at_step_one_strictly():
    correct = _corridor_game()
    wrong = correct._replace(expert_reward=lambda s, la, ea, n: -correct.expert_reward(s, la, ea, n))
    report = _compare(wrong)
    mismatch = report.first_mismatch
    assert (mismatch.step, mismatch.agent, mismatch.quantity) == (1, "human", "reward")
    np.testing.assert_allclose(mismatch.game_value, -mismatch.env_value, rtol=1e-6)
    with pytest.raises(ValueError, match=r"step 1, agent 'human', reward"):
        _compare(wrong, strict=True)


def test_wrong_observation_is_caught_right_after_reset():
    swapped = _corridor_game()._replace(observations=lambda s: (jnp.stack([s[1], s[0] - s[1]]),
                                                                jnp.stack([s[0], s[1] - s[0]])))
    mismatch = _compare(swapped).first_mismatch
    assert (mismatch.step, mismatch.agent, mismatch.quantity) == (0, "robot", "observation")
    short = _corridor_game()._replace(observations=lambda s: (s[:1], jnp.stack([s[1], s[0] - s[1]])))
    report = _compare(short)
    mismatch = report.first_mismatch
    assert (mismatch.step, mismatch.agent, mismatch.difference) == (0, "robot", float("inf"))
    assert "(observation sizes differ (game 1 vs env 2): learner_agents/expert_agents order?)" in str(report)
    assert "|diff|" not in str(report)


class _FixedStart(CorridorTwin):
    """The twin started at (-0.75, 0.75) whatever the seed."""

    def reset(self, seed=None, options=None):
        out = super().reset(seed=seed, options=options)
        self.positions = np.array([-0.75, 0.75])
        return self._observe(), out[1]


def test_nan_on_either_side_is_reported_as_nan():
    game = _corridor_game()
    # the robot's observation turns NaN once it has moved right twice (-0.75 -> -0.25, at step 2)
    nan_game = game._replace(observations=lambda s: (
        jnp.where(s[0] > -0.4, jnp.nan, 1.0) * game.observations(s)[0], game.observations(s)[1]))
    report = _compare(nan_game, _FixedStart())
    mismatch = report.first_mismatch
    assert (mismatch.step, mismatch.agent, mismatch.quantity) == (2, "robot", "observation")
    assert np.isnan(mismatch.difference) and np.isnan(report.max_observation_difference)
    assert str(report).startswith("MISMATCH (step 2, agent 'robot', observation: game [nan nan] vs env")
    assert "(game has NaN)" in str(report) and "|diff|" not in str(report)
    with pytest.raises(ValueError, match=r"step 2, agent 'robot', observation: .*\(game has NaN\)"):
        _compare(nan_game, _FixedStart(), strict=True)

    class NanRewards(CorridorTwin):
        def step(self, actions):
            observations, rewards, terminations, truncations, infos = super().step(actions)
            return observations, {**rewards, "human": float("nan")}, terminations, truncations, infos

    mismatch = _compare(game, NanRewards()).first_mismatch
    assert (mismatch.step, mismatch.agent, mismatch.quantity) == (1, "human", "reward")
    assert describe_mismatch(mismatch).endswith("(env has NaN)")


def test_termination_flags_are_compared_and_a_joint_termination_ends_the_check():
    game = _corridor_game()
    ending = game._replace(step=lambda s, la, ea: (_corridor_step(s, la, ea)[0], jnp.array(True)))
    mismatch = _compare(ending).first_mismatch
    assert (mismatch.step, mismatch.agent, mismatch.quantity) == (1, "robot", "termination")

    class EndsAtOnce(CorridorTwin):
        def step(self, actions):
            observations, rewards, terminations, truncations, infos = super().step(actions)
            self.agents = []
            return observations, rewards, {a: True for a in terminations}, truncations, infos

    report = _compare(ending, EndsAtOnce())
    assert report.ok and report.steps == 1 and report.observation_differences.shape == (2, 2)


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("overrides, field", [
    (dict(actions=np.zeros((HORIZON, 3), int)), "actions"),
    (dict(actions=np.zeros(HORIZON, int)), "actions"),
    (dict(actions=np.zeros((HORIZON + 1, 2), int)), "actions"),
    (dict(actions=np.full((HORIZON, 2), 0.5)), "actions"),
    (dict(actions=np.array([[0, 3]] * HORIZON)), "actions"),
    (dict(learner_agents=["walker"]), "learner_agents"),
    (dict(learner_agents=["robot", "human"]), "learner_agents"),
    (dict(learner_agents="robot"), "learner_agents"),
    (dict(expert_agents=["robot"]), "expert_agents"),
    (dict(state_from_env=None), "state_from_env"),
    (dict(atol=-1.0), "atol"),
    (dict(seed="zero"), "seed"),
])
def test_bad_arguments_name_their_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        _compare(_corridor_game(), **overrides)


def test_bad_env_and_early_truncation_name_their_field():
    with pytest.raises(ValueError, match="env"):
        _compare(_corridor_game(), env=object())
    assert _compare(_corridor_game()).ok  # the twin (Discrete(3) for both agents) passes the checks


class _ActionSpace(CorridorTwin):
    def __init__(self, space):
        super().__init__()
        self.space = space

    def action_space(self, agent):
        return self.space if agent == "human" else spaces.Discrete(3)


@pytest.mark.parametrize("space, expected", [
    (spaces.Box(0.0, 1.0, (3,), np.float32), "Box(0.0, 1.0, (3,), float32)"),
    (spaces.Discrete(4), "Discrete(4)"),
    (spaces.Discrete(3, start=-1), "Discrete(3, start=-1)"),
])
def test_env_whose_action_spaces_differ_from_the_game_is_named(space, expected):
    message = f"env: agent 'human' has action space {expected}, the game expects Discrete(3) (num_actions[1])"
    with pytest.raises(ValueError, match=re.escape(message)):
        _compare(_corridor_game(), env=_ActionSpace(space))


def test_aec_env_is_rejected_naming_env():
    env = simple_adversary_v3.env(max_cycles=mpe.EPISODE_LENGTH, continuous_actions=False)
    with pytest.raises(ValueError, match=re.escape("env: expected a PettingZoo ParallelEnv (e.g. the scenario's "
                                                   "parallel_env(), or pettingzoo.utils.conversions.aec_to_parallel"
                                                   "(env)), got the AEC env OrderEnforcingWrapper")):
        compare_with_parallel_env(mpe.make_game(), env, state_from_env=_mpe_state_from_env,
                                  learner_agents=list(mpe.GOOD_AGENT_NAMES), expert_agents=list(mpe.ADVERSARY_NAMES),
                                  actions=np.zeros((2, 3), int))
    with pytest.raises(ValueError, match="actions: the env truncated after 2 steps"):
        _compare(_corridor_game(), env=CorridorTwin(max_cycles=2))


# ---------------------------------------------------------------- the real thing: MPE simple_adversary
def _mpe_state_from_env(env):
    """JaxMARL state with the mpe2 world's positions, velocities and target landmark."""
    world = env.unwrapped.world
    entities = list(world.agents) + list(world.landmarks)
    goal = [i for i, landmark in enumerate(world.landmarks) if landmark is world.agents[0].goal_a][0]
    return mpe.make_state(np.stack([e.state.p_pos for e in entities]),
                          np.stack([e.state.p_vel for e in entities]), goal)


def test_mpe_game_matches_mpe2_simple_adversary():
    game, rng = mpe.make_game(), np.random.default_rng(1)
    for seed in range(2):
        env = simple_adversary_v3.parallel_env(max_cycles=mpe.EPISODE_LENGTH, continuous_actions=False)
        report = compare_with_parallel_env(
            game, env, state_from_env=_mpe_state_from_env, learner_agents=list(mpe.GOOD_AGENT_NAMES),
            expert_agents=list(mpe.ADVERSARY_NAMES), actions=rng.integers(0, mpe.NUM_ACTIONS, size=(5, 3)),
            seed=seed, atol=2e-5, strict=True)
        assert report.ok and report.steps == 5
        assert report.agents == ("agent_0", "agent_1", "adversary_0")
    # and a port with the adversary's reward sign flipped is caught at once, on the adversary
    flipped = game._replace(expert_reward=lambda s, la, ea, n: -game.expert_reward(s, la, ea, n))
    env = simple_adversary_v3.parallel_env(max_cycles=mpe.EPISODE_LENGTH, continuous_actions=False)
    report = compare_with_parallel_env(
        flipped, env, state_from_env=_mpe_state_from_env, learner_agents=list(mpe.GOOD_AGENT_NAMES),
        expert_agents=list(mpe.ADVERSARY_NAMES), actions=np.zeros((2, 3), int), seed=0)
    assert (report.first_mismatch.step, report.first_mismatch.agent) == (1, "adversary_0")
