"""MA-IRL's best-response gradients (``ma_irl_gradient="best_response"``) and the frozen teams they rest on.

Ground truths: a frozen team's actors are bit-for-bit what they were before training; freezing nothing is
bit-for-bit the unfrozen computation; with shared features the "joint" gradients are one vector for both θ's
(so θl − θe only shrinks by the ridge, (1 − βλ) per step: the degeneracy), and the best-response members break it;
those members hold the demonstrator's actors for the frozen team at every fine-tune."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gsiirl.algorithms.sample_based import SampleBasedConfig, SampleBasedGSIIRL
from gsiirl.algorithms.sample_based_passive import BEST_RESPONSE_FROZEN
from gsiirl.games.continuous import make_reward_params
from gsiirl.games.hri import make_hri_game
from gsiirl.solvers import maddpg_reset
from gsiirl.solvers.maddpg import MADDPGConfig, init_state, make_train, team_of_agent

MADDPG = MADDPGConfig(hidden=8, num_envs=4, iterations=2, updates_per_iteration=3, buffer_iterations=2,
                      minibatch_size=16)


@pytest.fixture(scope="module")
def game():
    return make_hri_game({"horizon": 5})


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


def _agent_rows(tree, agents):
    """Every leaf's rows of the given agents (leaves are stacked over agents on their leading axis)."""
    return [np.asarray(x)[list(agents)] for x in jax.tree_util.tree_leaves(tree)]


def _agents_of_team(game, team):
    return [i for i, t in enumerate(team_of_agent(game)) if t == team]


@pytest.mark.parametrize("frozen_team", [0, 1])
def test_a_frozen_team_keeps_its_actors_bit_for_bit_and_the_other_team_learns(game, frozen_team):
    train = jax.jit(make_train(game, MADDPG))
    state = init_state(jax.random.PRNGKey(0), game, MADDPG)
    flags = [0.0, 0.0]
    flags[frozen_team] = 1.0
    params = make_reward_params(jnp.full(3, 0.3), jnp.full(3, -0.2))._replace(frozen=jnp.asarray(flags))
    trained, _ = train(jax.random.PRNGKey(1), state, params)
    frozen, learning = _agents_of_team(game, frozen_team), _agents_of_team(game, 1 - frozen_team)
    for before, after in zip(_agent_rows(state.actor, frozen), _agent_rows(trained.actor, frozen)):
        np.testing.assert_array_equal(before, after)
    assert any(not np.array_equal(b, a) for b, a in zip(_agent_rows(state.actor, learning),
                                                        _agent_rows(trained.actor, learning)))
    # the critics are not frozen: a frozen team's critic still learns its (learned) reward
    assert any(not np.array_equal(b, a) for b, a in zip(_leaves(state.critic), _leaves(trained.critic)))


def test_freezing_no_team_is_the_unfrozen_computation_bit_for_bit(game):
    train = jax.jit(make_train(game, MADDPG))
    state = init_state(jax.random.PRNGKey(2), game, MADDPG)
    params = make_reward_params(jnp.full(3, 0.3), jnp.full(3, -0.2))
    plain, _ = train(jax.random.PRNGKey(3), state, params)
    none_frozen, _ = train(jax.random.PRNGKey(3), state, params._replace(frozen=jnp.zeros(2)))
    for a, b in zip(_leaves(plain), _leaves(none_frozen)):
        np.testing.assert_array_equal(a, b)


def test_a_frozen_team_is_never_restarted(game, monkeypatch):
    """Both teams made 'worse than random' (the check's advantage forced negative): only the unfrozen
    team restarts."""
    monkeypatch.setattr(maddpg_reset, "advantage_over_random",
                        lambda *args, **kwargs: (jnp.asarray([-10.0, -10.0]), jnp.asarray([1.0, 1.0])))
    state = init_state(jax.random.PRNGKey(4), game, MADDPG)
    params = make_reward_params(jnp.zeros(3), jnp.zeros(3))
    _, reset = maddpg_reset.reset_worse_than_random(jax.random.PRNGKey(5), game, MADDPG, state, params, 4)
    assert np.asarray(reset).tolist() == [True, True]
    for flags, expected in (([1.0, 0.0], [False, True]), ([0.0, 1.0], [True, False])):
        kept, reset = maddpg_reset.reset_worse_than_random(jax.random.PRNGKey(5), game, MADDPG, state,
                                                           params._replace(frozen=jnp.asarray(flags)), 4)
        assert np.asarray(reset).tolist() == expected
        frozen_agents = _agents_of_team(game, flags.index(1.0))
        for a, b in zip(_agent_rows(state.actor, frozen_agents), _agent_rows(kept.actor, frozen_agents)):
            np.testing.assert_array_equal(a, b)


def test_with_team_actors_replaces_only_the_flagged_teams_actors(game):
    state = init_state(jax.random.PRNGKey(6), game, MADDPG)
    source = init_state(jax.random.PRNGKey(7), game, MADDPG)
    spliced = maddpg_reset.with_team_actors(game, state, source, jnp.asarray([False, True]))
    learner, expert = _agents_of_team(game, 0), _agents_of_team(game, 1)
    for field in ("actor", "target_actor"):
        for a, b in zip(_agent_rows(getattr(spliced, field), expert), _agent_rows(getattr(source, field), expert)):
            np.testing.assert_array_equal(a, b)
        for a, b in zip(_agent_rows(getattr(spliced, field), learner), _agent_rows(getattr(state, field), learner)):
            np.testing.assert_array_equal(a, b)
    for field in ("critic", "target_critic", "actor_optimizer", "critic_optimizer"):
        for a, b in zip(_leaves(getattr(spliced, field)), _leaves(getattr(state, field))):
            np.testing.assert_array_equal(a, b)


def _shared_feature_backend(gradient: str):
    """The tiny HRI game with the expert's features replaced by the learner's (same features, same scale, as
    MPE's teams share theirs); a ball large enough that no step is projected."""
    game = make_hri_game({"horizon": 5})
    game = game._replace(expert_features=game.learner_features, expert_reward_scale=game.learner_reward_scale)
    config = SampleBasedConfig(maddpg=MADDPGConfig(hidden=8, num_envs=4, iterations=1, updates_per_iteration=2,
                                                   buffer_iterations=2, minibatch_size=16),
                               warmup_iterations=2, data_episodes=8, evaluation_episodes=8, regularization=0.5,
                               radius=50.0, initial_radius=1.0, inner_step_size=0.1, ma_irl_gradient=gradient)
    return SampleBasedGSIIRL(game, config)


def _theta_gap(row):
    size = sum(k.startswith("theta_l_") for k in row)
    return np.asarray([row[f"theta_l_{i}"] - row[f"theta_e_{i}"] for i in range(size)])


def test_joint_gradients_are_degenerate_with_shared_features_and_best_responses_are_not():
    """Joint: θl and θe take the same gradient step, so their difference only shrinks by the ridge,
    (1 − βλ) = 0.95 per iteration. Best response: the difference moves otherwise."""
    key = jax.random.PRNGKey(11)
    joint, _ = _shared_feature_backend("joint").run("ma-irl", key, 4)
    shrink = 1.0 - 0.1 * 0.5
    for k in range(1, 4):
        np.testing.assert_allclose(_theta_gap(joint[k]), shrink * _theta_gap(joint[k - 1]), rtol=1e-5, atol=1e-7)
    best, _ = _shared_feature_backend("best_response").run("ma-irl", key, 4)
    np.testing.assert_allclose(_theta_gap(best[0]), _theta_gap(joint[0]))  # the same random initial θ's
    moved = [np.max(np.abs(_theta_gap(best[k]) - shrink * _theta_gap(best[k - 1]))) for k in range(1, 4)]
    assert max(moved) > 1e-3, moved


def test_best_response_members_hold_the_demonstrators_actors_for_the_frozen_team(monkeypatch):
    """Every outer-loop fine-tune trains three members: the model pair, the learner against the
    demonstrator's expert actors, the expert against the demonstrator's learner actors — before and after."""
    backend = _shared_feature_backend("best_response")
    original, calls = SampleBasedGSIIRL._fine_tune, []

    def fine_tune(self, ops, keys, states, params):
        out = original(self, ops, keys, states, params)
        calls.append((states, params, out[0]))
        return out

    monkeypatch.setattr(SampleBasedGSIIRL, "_fine_tune", fine_tune)
    iterations = 2
    backend.run("ma-irl", jax.random.PRNGKey(12), iterations)
    demonstrations, outer = calls[:iterations], calls[iterations:]
    assert all(params.frozen is None and params.theta_l.shape[1] == 1 for _, params, _ in demonstrations)
    demonstrator = demonstrations[-1][2]  # the MADDPG pair trained on both true rewards
    game = backend.game
    assert len(outer) == iterations
    for before, params, after in outer:
        np.testing.assert_array_equal(np.asarray(params.frozen[0]), np.asarray(BEST_RESPONSE_FROZEN))
        for member, team in ((1, 1), (2, 0)):
            agents = _agents_of_team(game, team)
            expected = _agent_rows(jax.tree_util.tree_map(lambda x: x[0, 0], demonstrator.actor), agents)
            for states in (before, after):
                got = _agent_rows(jax.tree_util.tree_map(lambda x: x[0, member], states.actor), agents)
                for a, b in zip(expected, got):
                    np.testing.assert_array_equal(a, b)


def test_ma_irl_gradient_must_be_a_known_choice():
    with pytest.raises(ValueError, match="ma_irl_gradient: expected one of"):
        SampleBasedConfig(ma_irl_gradient="exact")


def test_both_sample_based_experiments_take_the_option_and_name_a_bad_value():
    from gsiirl.experiments import hri, mpe
    from gsiirl.experiments.runner import merge_options

    assert hri.DEFAULT_OPTIONS["ma_irl_gradient"] == "best_response"  # since 0.5.0 (docs/hri.md, "Session 38")
    assert mpe.DEFAULT_OPTIONS["ma_irl_gradient"] == "joint"  # MPE's test failed (docs/mpe.md, "Session 38")
    for module in (hri, mpe):
        with pytest.raises(ValueError, match="ma_irl_gradient"):
            module.check_options(merge_options(module.DEFAULT_OPTIONS, {"ma_irl_gradient": "exact"}))
    config = hri._sample_based_config(merge_options(hri.DEFAULT_OPTIONS, {"ma_irl_gradient": "best_response"}))
    assert config.ma_irl_gradient == "best_response"
