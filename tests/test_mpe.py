"""MPE physical-deception adapter: the JAX port against Farama's mpe2 package, shapes, rewards."""

from __future__ import annotations

import numpy as np
import pytest

# both come with the test extra (pip install -e ".[test]"); a missing one is a failure, not a skip
import jaxmarl  # noqa: E402,F401
from mpe2 import simple_adversary_v3  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from gsiirl.games import continuous, mpe  # noqa: E402

AGENT_ORDER = ("adversary_0", "agent_0", "agent_1")


def _mpe2_env(seed: int):
    """A reset mpe2 parallel env and its raw world."""
    env = simple_adversary_v3.parallel_env(N=2, max_cycles=mpe.EPISODE_LENGTH)
    env.reset(seed=seed)
    return env, env.unwrapped.world, env.unwrapped.scenario


def _jax_state_of(world):
    """The JaxMARL state with exactly the mpe2 world's physics."""
    entities = list(world.agents) + list(world.landmarks)
    positions = np.stack([e.state.p_pos for e in entities])
    velocities = np.stack([e.state.p_vel for e in entities])
    goal = [i for i, lm in enumerate(world.landmarks) if lm is world.agents[0].goal_a][0]
    return mpe.make_state(positions, velocities, goal), goal


def test_port_matches_mpe2_step_for_step():
    """Same start state, same actions: observations and rewards agree at every one of 25 steps."""
    step = jax.jit(mpe.step)
    rng = np.random.default_rng(0)
    for seed in range(3):
        env, world, _ = _mpe2_env(seed)
        state, _ = _jax_state_of(world)
        key = jax.random.PRNGKey(seed)
        for t in range(mpe.EPISODE_LENGTH):
            actions = rng.integers(0, mpe.NUM_ACTIONS, size=3)
            observations, rewards, terminations, truncations, _ = env.step(
                {name: int(a) for name, a in zip(AGENT_ORDER, actions)}
            )
            state, observation, reward = step(key, state, jnp.int32(actions[0]), jnp.asarray(actions[1:]))
            np.testing.assert_allclose(observation.expert, observations["adversary_0"], atol=2e-5)
            np.testing.assert_allclose(observation.learner[0], observations["agent_0"], atol=2e-5)
            np.testing.assert_allclose(observation.learner[1], observations["agent_1"], atol=2e-5)
            np.testing.assert_allclose(reward.expert, rewards["adversary_0"], atol=2e-5)
            good = reward.learner_independent + reward.learner_dependent
            np.testing.assert_allclose(good, rewards["agent_0"], atol=2e-5)
            np.testing.assert_allclose(good, rewards["agent_1"], atol=2e-5)
            assert all(truncations.values()) == (t == mpe.EPISODE_LENGTH - 1)


def test_reward_components_against_package_reward_functions():
    """r_li + r_ld is the scenario's agent_reward, r_e its adversary_reward, r_li by hand."""
    for seed in range(5):
        _, world, scenario = _mpe2_env(seed)
        state, goal = _jax_state_of(world)
        components = mpe.reward_components(state)
        target = world.landmarks[goal].state.p_pos
        adversary, good0, good1 = world.agents
        by_hand_li = -min(np.hypot(*(good0.state.p_pos - target)), np.hypot(*(good1.state.p_pos - target)))
        by_hand_ld = np.hypot(*(adversary.state.p_pos - target))
        np.testing.assert_allclose(components.learner_independent, by_hand_li, rtol=1e-5)
        np.testing.assert_allclose(components.learner_dependent, by_hand_ld, rtol=1e-5)
        np.testing.assert_allclose(components.expert, scenario.adversary_reward(adversary, world), rtol=1e-5)
        for agent in (good0, good1):
            np.testing.assert_allclose(
                components.learner_independent + components.learner_dependent,
                scenario.agent_reward(agent, world),
                rtol=1e-5,
                atol=1e-6,
            )


def test_observations_match_package_observation_function():
    for seed in range(3):
        _, world, scenario = _mpe2_env(seed)
        state, _ = _jax_state_of(world)
        observation = mpe.observe(state)
        assert observation.expert.shape == (mpe.EXPERT_OBSERVATION_DIM,)
        assert observation.learner.shape == (mpe.NUM_GOOD_AGENTS, mpe.LEARNER_OBSERVATION_DIM)
        np.testing.assert_allclose(observation.expert, scenario.observation(world.agents[0], world), atol=1e-6)
        for i in range(2):
            np.testing.assert_allclose(
                observation.learner[i], scenario.observation(world.agents[1 + i], world), atol=1e-6
            )


def test_reward_features_are_distances_from_positions():
    _, world, _ = _mpe2_env(7)
    state, goal = _jax_state_of(world)
    features = mpe.reward_features(mpe.observe(state))
    target = world.landmarks[goal].state.p_pos
    other = world.landmarks[1 - goal].state.p_pos
    expected = []
    for agent in world.agents:
        expected += [np.linalg.norm(agent.state.p_pos - target), np.linalg.norm(agent.state.p_pos - other)]
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-6)
    game = mpe.make_game(feature_scale=1.0, expert_features="adversary")
    own = game.expert_features(state, None, None, state)
    assert game.expert_feature_size == 2
    np.testing.assert_allclose(own, expected[:2], rtol=1e-5, atol=1e-6)
    # the true adversary reward is representable: r_e = scale · φ_e·(−1, 0)
    np.testing.assert_allclose(game.expert_reward(state, None, None, state), -own[0], rtol=1e-5, atol=1e-6)


def test_game_rollout_shapes_and_returns_replayed_in_mpe2():
    """The protocol rollout's returns equal mpe2's when its actions are replayed from the same start."""
    game = mpe.make_game()
    num_episodes, T = 3, mpe.EPISODE_LENGTH
    data = jax.jit(lambda k: continuous.rollout(k, game, mpe.uniform_random_policy, num_episodes))(
        jax.random.PRNGKey(3)
    )
    assert data.observations.shape == (num_episodes, T, 3, 10)
    assert data.global_observations.shape == (num_episodes, T, 28)
    assert data.actions.shape == (num_episodes, T, 3)
    assert data.learner_features.shape == (num_episodes, T, 6)
    assert data.expert_reward.shape == (num_episodes, T)
    np.testing.assert_allclose(data.alive, 1.0)  # MPE never terminates before the horizon
    np.testing.assert_allclose(data.observations[:, 1:], data.next_observations[:, :-1])
    np.testing.assert_allclose(data.observations[..., 2, 8:], 0.0)  # adversary's obs padded 8 -> 10
    # the true rewards are linear in the features: r_e = -φ_0, r_ld = +φ_0
    np.testing.assert_allclose(data.expert_reward, -data.expert_features[..., 0], atol=1e-5)
    np.testing.assert_allclose(data.learner_dependent_reward, data.learner_features[..., 0], atol=1e-5)
    learner_returns = (data.learner_independent_reward + data.learner_dependent_reward).sum(-1)
    expert_returns = data.expert_reward.sum(-1)
    for episode in range(num_episodes):
        # start physics from good agent 0's first observation, anchored at good agent 0 = origin
        # (rewards and observations are translation invariant; velocities start at zero)
        first = np.asarray(data.observations[episode, 0, 0], dtype=np.float64)
        env, world, _ = _mpe2_env(0)
        for agent, position in zip(world.agents, (first[6:8], np.zeros(2), first[8:10])):
            agent.state.p_pos, agent.state.p_vel = position.copy(), np.zeros(2)
        for landmark, position in zip(world.landmarks, (first[2:4], first[4:6])):
            landmark.state.p_pos = position.copy()
        goal = 0 if np.allclose(first[0:2], first[2:4]) else 1
        for agent in world.agents:
            agent.goal_a = world.landmarks[goal]
        learner_total, expert_total = 0.0, 0.0
        for t in range(T):
            good0, good1, adversary = (int(a) for a in data.actions[episode, t])
            _, rewards, _, _, _ = env.step(dict(zip(AGENT_ORDER, (adversary, good0, good1))))
            learner_total += rewards["agent_0"]
            expert_total += rewards["adversary_0"]
        np.testing.assert_allclose(learner_returns[episode], learner_total, atol=1e-3)
        np.testing.assert_allclose(expert_returns[episode], expert_total, atol=1e-3)


def test_bad_input_raises():
    with pytest.raises(ValueError, match="feature_scale"):
        mpe.make_game(feature_scale=0.0)
    with pytest.raises(ValueError, match="expert_features"):
        mpe.make_game(expert_features="good")
    with pytest.raises(ValueError, match="positions"):
        mpe.make_state(np.zeros((4, 2)), np.zeros((5, 2)), 0)


def test_experiment_options_are_validated():
    from gsiirl.experiments import mpe as experiment

    bad = dict(experiment.DEFAULT_OPTIONS, warmup_cycles=3, cycles_per_train=2)
    with pytest.raises(ValueError, match="warmup_cycles"):
        experiment.make_backend(bad)
    with pytest.raises(ValueError, match="discount"):
        experiment.make_backend(dict(experiment.DEFAULT_OPTIONS, discount=1.5))
    with pytest.raises(ValueError, match="initial_radius"):
        experiment.make_backend(dict(experiment.DEFAULT_OPTIONS, radius=1.0, initial_radius=1.2))
    # the unit runner takes overrides only (merged over the defaults) and names unknown keys
    with pytest.raises(ValueError, match="option hidden_units: unknown"):
        experiment.make_unit_runner({"hidden_units": 8})
    with pytest.raises(ValueError, match="option hidden: expected an integer"):
        experiment.make_unit_runner({"hidden": "wide"})
    with pytest.raises(ValueError, match="max_hypergradient_norm: expected a positive number"):
        experiment.make_unit_runner({"max_hypergradient_norm": "-1"})
    assert experiment.make_backend(experiment.DEFAULT_OPTIONS).config.max_hypergradient_norm is None
    clipped = experiment.make_backend(dict(experiment.DEFAULT_OPTIONS, max_hypergradient_norm=2))
    assert clipped.config.max_hypergradient_norm == 2.0
    with pytest.raises(ValueError, match="ma_irl_gradient: expected one of"):
        experiment.make_unit_runner({"ma_irl_gradient": "exact"})
    assert experiment.make_backend(experiment.DEFAULT_OPTIONS).config.ma_irl_gradient == "joint"
    best = experiment.make_backend(dict(experiment.DEFAULT_OPTIONS, ma_irl_gradient="best_response"))
    assert best.config.ma_irl_gradient == "best_response"
    with pytest.raises(ValueError, match="hessian_regularization: expected a positive number"):
        experiment.make_unit_runner({"hessian_regularization": 0})
    defaults = experiment.make_backend(experiment.DEFAULT_OPTIONS).config
    # λ = 0.1 since 0.6.0 (docs/mpe.md, "Session 42b"); the Hessian's ridge keeps λ's old value
    assert (defaults.regularization, defaults.hessian_regularization) == (0.1, 1.0)
    tied = experiment.make_backend(dict(experiment.DEFAULT_OPTIONS, regularization=1.0)).config
    assert (tied.regularization, tied.hessian_regularization) == (1.0, 1.0)
    flipped = not experiment.DEFAULT_OPTIONS["reset_worse_than_random"]
    backend = experiment.make_backend(dict(experiment.DEFAULT_OPTIONS, reset_worse_than_random=flipped))
    assert backend.config.reset_worse_than_random is flipped


def test_figure_from_results(tmp_path):
    """Figure 2 is drawn from a results dict: two panels, MARL as a line, GSIIRL as a band."""
    from gsiirl.experiments import mpe as experiment

    seeds = {str(s): {"learner_return": [1.0 + s, 2.0, 3.0], "expert_return": [-9.0, -8.0, -7.0 - s]}
             for s in range(2)}
    results = {"methods": {"gsiirl": {"seeds": seeds},
                           "marl": {"seeds": {"0": {"learner_return": [4.0], "expert_return": [-6.0]}}}}}
    (path,) = experiment.make_figure(results, tmp_path)
    assert path.exists() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_band_with_seed_lines_draws_every_seed_and_the_mean():
    import matplotlib.pyplot as plt
    import numpy as np

    from gsiirl.experiments.figures import plot_band

    curves = np.array([[1.0, 2.0, 3.0], [3.0, 4.0, 5.0], [-50.0, -50.0, -50.0]])  # one outlier seed
    fig, ax = plt.subplots()
    plot_band(ax, curves, label="GSIIRL", color="tab:blue", show_seeds=True)
    lines = [line.get_ydata() for line in ax.get_lines()]
    assert len(lines) == 4  # three seeds + the mean
    np.testing.assert_allclose(lines[2], [-50.0, -50.0, -50.0])
    np.testing.assert_allclose(lines[-1], curves.mean(axis=0))
    plt.close(fig)


def test_rate_bands_are_clipped_to_the_metric_range():
    """mean ± std of a rate near 0 or 1 leaves [0, 1]; with limits the drawn band stays inside it, and
    the mean line is unchanged."""
    import matplotlib.pyplot as plt
    import numpy as np

    from gsiirl.experiments.figures import plot_band, plot_reference_line

    curves = np.array([[0.0, 0.9, 1.0], [0.2, 1.0, 1.0], [0.0, 1.0, 0.6]])
    fig, ax = plt.subplots()
    plot_band(ax, curves, label="GSIIRL", color="tab:blue", limits=(0.0, 1.0))
    plot_reference_line(ax, np.array([0.0, 0.0, 0.1]), label="MARL", limits=(0.0, 1.0))
    band, span = ax.collections[0], ax.patches[0]
    ys = np.concatenate([path.vertices[:, 1] for path in band.get_paths()])
    assert ys.min() >= 0.0 and ys.max() <= 1.0
    assert ys.min() == 0.0 and ys.max() == 1.0  # unclipped, the band reaches below 0 and above 1
    assert span.get_path().transformed(span.get_patch_transform()).vertices[:, 1].min() >= 0.0
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), curves.mean(axis=0))
    plt.close(fig)


def test_importing_jaxmarl_through_gsiirl_keeps_output_redirection(tmp_path):
    """jaxmarl 0.2 resets sys.stdout to sys.__stdout__ on import; gsiirl's import restores the stream."""
    import subprocess
    import sys

    script = ("import contextlib, io, sys\n"
              "buffer = io.StringIO()\n"
              "with contextlib.redirect_stdout(buffer):\n"
              "    from gsiirl.games import mpe\n"
              "    mpe.import_jaxmarl()\n"
              "    print('still captured')\n"
              "sys.stderr.write('captured=' + repr(buffer.getvalue().strip().splitlines()[-1:]))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert "captured=['still captured']" in result.stderr, result.stderr[-2000:]


def test_unit_runners_share_one_compiled_backend_per_option_set():
    """A worker process that runs several units builds (and compiles) the back-end once per option set;
    ``retrain_evaluation`` is read by the unit runner only, so it does not force a rebuild."""
    from gsiirl.experiments import mpe as experiment

    experiment._cached_backend.cache_clear()
    experiment.make_unit_runner({"hidden": 8})
    experiment.make_unit_runner({"hidden": 8, "retrain_evaluation": False})
    assert experiment._cached_backend.cache_info()[:2] == (1, 1)  # (hits, misses)
    experiment.make_unit_runner({"hidden": 16})
    assert experiment._cached_backend.cache_info().misses == 2




def _resume_marl(path, options: dict | None = None) -> dict:
    from gsiirl.experiments.runner import run_experiment

    return run_experiment("mpe", out_dir=path, methods=["marl"], seeds=1, iterations=1, resume=True, options=options)


def test_results_made_before_the_minibatch_option_resume_as_256(tmp_path, write_one_seed_results):
    """A results file from before `minibatch_size` existed was made with MADDPG's minibatch 256: resuming it
    under the new default (128) is refused naming the option; with --option minibatch_size=256 it resumes
    and, all its seeds being stored, computes nothing."""
    from gsiirl.experiments import mpe as experiment
    from gsiirl.experiments.results_file import ResultsFileError

    stored = {"learner_return": [4.0], "expert_return": [-17.0]}
    write_one_seed_results(tmp_path, "mpe", "marl", {k: v for k, v in experiment.DEFAULT_OPTIONS.items()
                                                     if k not in ("minibatch_size", "seed_batch")}, stored)
    with pytest.raises(ResultsFileError, match="minibatch_size"):
        _resume_marl(tmp_path)
    assert _resume_marl(tmp_path, {"minibatch_size": 256})["methods"]["marl"]["seeds"]["0"] == stored


@pytest.mark.parametrize("option, base, old_value", [
    ("initial_radius", "radius", 2.0),  # before the option the initial draws used the ball's radius
    ("hessian_regularization", "regularization", 0.5),  # before the option the Hessian's ridge was λ
])
def test_results_made_before_an_option_resume_with_the_value_they_derive(tmp_path, write_one_seed_results,
                                                                          option, base, old_value):
    """A results file without ``option`` was made with its ``base`` option's value (the radius, λ): a file made
    with ``base`` = old_value resumes only with ``option`` = old_value (the default is refused, naming the option)."""
    from gsiirl.experiments import mpe as experiment
    from gsiirl.experiments.results_file import ResultsFileError

    assert experiment.DEFAULT_OPTIONS[option] != old_value
    old_options = {k: v for k, v in experiment.DEFAULT_OPTIONS.items() if k != option}
    stored = {"learner_return": [4.0], "expert_return": [-17.0]}
    write_one_seed_results(tmp_path, "mpe", "marl", {**old_options, base: old_value}, stored)
    with pytest.raises(ResultsFileError, match=option):
        _resume_marl(tmp_path, {base: old_value})
    resumed = _resume_marl(tmp_path, {base: old_value, option: old_value})
    assert resumed["methods"]["marl"]["seeds"]["0"] == stored


@pytest.mark.parametrize("option, other", [("max_hypergradient_norm", 2), ("ma_irl_gradient", "best_response")])
def test_results_made_before_an_option_resume_with_its_old_value(tmp_path, write_one_seed_results, option, other):
    """A results file from before `max_hypergradient_norm` (no clipping) or `ma_irl_gradient` ("joint") existed
    was made with the option's default: it resumes under the defaults and computes nothing; asking for another
    value is refused naming the option."""
    from gsiirl.experiments import mpe as experiment
    from gsiirl.experiments.results_file import ResultsFileError

    stored = {"learner_return": [4.0], "expert_return": [-17.0]}
    write_one_seed_results(tmp_path, "mpe", "marl", {k: v for k, v in experiment.DEFAULT_OPTIONS.items()
                                                     if k != option}, stored)
    assert _resume_marl(tmp_path)["methods"]["marl"]["seeds"]["0"] == stored
    with pytest.raises(ResultsFileError, match=option):
        _resume_marl(tmp_path, {option: other})
