"""Restarting a MADDPG team that is worse than random play (gsiirl.solvers.maddpg_reset), against an
exact expectation on the line game of test_maddpg; per-team re-initialisation; the back-end option."""

import itertools
from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_maddpg import STEPS, line_game, pair_line_game

from gsiirl.algorithms.sample_based import SampleBasedConfig, SampleBasedGSIIRL
from gsiirl.games.continuous import make_reward_params
from gsiirl.solvers.maddpg import MADDPGConfig, init_state, make_train
from gsiirl.solvers.maddpg_reset import advantage_over_random, reinitialise_teams, reset_worse_than_random

TRUE = make_reward_params(jnp.zeros(1), jnp.zeros(1), use_true_ld=True, use_true_e=True)


def always_right(state):
    """The learner's actor replaced by one that always steps +0.1 (away from the goal for x > 0)."""
    *hidden, (w, b) = state.actor
    actor = hidden + [(w.at[0].set(0.0), b.at[0].set(jnp.asarray([0.0, 0.0, 30.0])))]
    return state._replace(actor=actor)


def exact_expected_returns(horizon: int, discount: float) -> tuple[float, float]:
    """E[Σ_t γ^t (−|x_{t+1}|)], x_0 ~ U(−0.5, 0.5), for 'always +0.1' and for uniform steps (all 3^H paths)."""
    x0 = np.linspace(-0.5, 0.5, 2001)
    weights = discount ** np.arange(horizon)
    right = np.mean([-(weights * np.abs(x + 0.1 * np.arange(1, horizon + 1))).sum() for x in x0[::20]])
    paths = np.cumsum(np.asarray(list(itertools.product(np.asarray(STEPS), repeat=horizon))), axis=1)  # [3^H, H]
    random_play = np.mean([-(weights * np.abs(x + paths)).sum(axis=1).mean() for x in x0[::20]])
    return float(right), float(random_play)


def test_advantage_over_random_matches_the_exact_expectation_and_resets_a_bad_team():
    game = line_game(horizon=6)
    config = MADDPGConfig(hidden=8)
    state = always_right(init_state(jax.random.PRNGKey(0), game, config))
    difference, standard_error = advantage_over_random(jax.random.PRNGKey(1), game, state.actor, TRUE, 4096)
    right, random_play = exact_expected_returns(game.horizon, game.discount)
    assert right - random_play < -0.3  # the bad policy is clearly worse than random play
    assert abs(float(difference[0]) - (right - random_play)) < 4 * float(standard_error[0]), (difference, right, random_play)
    # the expert has one action and a zero reward: no difference, no noise
    assert float(difference[1]) == 0.0 and float(standard_error[1]) == 0.0

    new, reset = reset_worse_than_random(jax.random.PRNGKey(2), game, config, state, TRUE, 256)
    assert reset.tolist() == [True, False]
    fresh = init_state(jax.random.split(jax.random.PRNGKey(2))[1], game, config)
    for got, want in zip(jax.tree_util.tree_leaves(new.actor), jax.tree_util.tree_leaves(fresh.actor)):
        np.testing.assert_array_equal(got[0], want[0])  # the learner restarts from fresh weights


def test_a_policy_better_than_random_play_is_kept_bit_for_bit():
    game = line_game()
    config = MADDPGConfig(hidden=32, num_envs=32, iterations=40, updates_per_iteration=8, minibatch_size=128)
    state, _ = jax.jit(make_train(game, config))(jax.random.PRNGKey(1), init_state(jax.random.PRNGKey(0), game, config),
                                                 TRUE)
    difference, standard_error = advantage_over_random(jax.random.PRNGKey(3), game, state.actor, TRUE, 256)
    assert float(difference[0]) > 2 * float(standard_error[0])
    kept, reset = reset_worse_than_random(jax.random.PRNGKey(3), game, config, state, TRUE, 256)
    assert reset.tolist() == [False, False]
    for got, want in zip(jax.tree_util.tree_leaves(kept), jax.tree_util.tree_leaves(state)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("critics, reset_critics", [("agent", [True, True, False]), ("team", [True, False])])
def test_reinitialise_teams_replaces_only_the_flagged_teams(critics, reset_critics):
    game = pair_line_game()  # two learner agents, one expert
    config = MADDPGConfig(hidden=4, num_envs=4, iterations=1, updates_per_iteration=2, minibatch_size=8, critics=critics)
    trained, _ = make_train(game, config)(jax.random.PRNGKey(1), init_state(jax.random.PRNGKey(0), game, config), TRUE)
    fresh = init_state(jax.random.PRNGKey(9), game, config)
    new = reinitialise_teams(game, config, trained, fresh, jnp.asarray([True, False]))
    for part, rows in (("actor", [True, True, False]), ("target_actor", [True, True, False]),
                       ("critic", reset_critics), ("target_critic", reset_critics)):
        for got, old, young in zip(*(jax.tree_util.tree_leaves(getattr(s, part)) for s in (new, trained, fresh))):
            for row, is_reset in enumerate(rows):
                np.testing.assert_array_equal(got[row], young[row] if is_reset else old[row])
    adam_new, adam_old = new.actor_optimizer[1][0], trained.actor_optimizer[1][0]
    # one Adam step count per agent: the restarted agents start again from 0, the expert keeps its 2 steps
    assert np.asarray(adam_old.count).tolist() == [2, 2, 2] and np.asarray(adam_new.count).tolist() == [0, 0, 2]
    critic_counts = np.asarray(new.critic_optimizer[1][0].count).tolist()
    assert critic_counts == [0 if is_reset else 2 for is_reset in reset_critics]
    assert not np.any(np.asarray(adam_new.mu[0][0][0])) and np.array_equal(adam_new.mu[0][0][2], adam_old.mu[0][0][2])
    unchanged = reinitialise_teams(game, config, trained, fresh, jnp.asarray([False, False]))
    for got, want in zip(jax.tree_util.tree_leaves(unchanged), jax.tree_util.tree_leaves(trained)):
        np.testing.assert_array_equal(got, want)


def test_back_end_option_records_resets_and_keeps_a_good_policy_unchanged():
    """With ``reset_worse_than_random`` a MARL policy that beats random play is never restarted, so the
    run equals the run without the check bit for bit, and the rows count the (zero) restarts."""
    maddpg = MADDPGConfig(hidden=32, num_envs=32, iterations=10, updates_per_iteration=8, minibatch_size=128)
    config = SampleBasedConfig(maddpg=maddpg, warmup_iterations=30, data_episodes=64, evaluation_episodes=64)
    game = line_game()
    (plain,), _ = SampleBasedGSIIRL(game, config).run("marl", jax.random.PRNGKey(4), 2)
    (checked,), _ = SampleBasedGSIIRL(game, replace(config, reset_worse_than_random=True)).run(
        "marl", jax.random.PRNGKey(4), 2)
    assert checked.pop("learner_team_resets") == 0.0 and checked.pop("expert_team_resets") == 0.0
    assert {k: v for k, v in checked.items() if k != "wall_time"} == {k: v for k, v in plain.items() if k != "wall_time"}
