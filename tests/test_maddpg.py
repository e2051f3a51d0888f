"""MADDPG: learns an easy single-goal task; batching over reward parameters; likelihoods; validation."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gsiirl.games.continuous import ContinuousGame, make_reward_params, rollout
from gsiirl.solvers.maddpg import MADDPGConfig, init_state, log_likelihood, make_policy, make_train

STEPS = jnp.asarray([-0.1, 0.0, 0.1])


class LineState(NamedTuple):
    x: jax.Array  # [] learner position on a line; the goal is 0


def line_game(horizon: int = 8) -> ContinuousGame:
    """One learner on a line (actions -0.1, 0, +0.1), a passive expert with one action; r_li = -|x'|."""
    zero = lambda s, la, ea, n: jnp.float32(0.0)
    return ContinuousGame(
        num_learner_agents=1, num_expert_agents=1, num_actions=(3, 1), observation_sizes=(1, 1),
        state_size=1, horizon=horizon, discount=0.9, learner_feature_size=1, expert_feature_size=1,
        reset=lambda key: LineState(jax.random.uniform(key, (), minval=-0.5, maxval=0.5)),
        step=lambda s, la, ea: (LineState(s.x + STEPS[la[0]]), jnp.asarray(False)),
        observations=lambda s: (s.x[None], s.x[None]),
        global_observation=lambda s: s.x[None],
        learner_independent_reward=lambda s, la, ea, n: -jnp.abs(n.x),
        learner_dependent_reward=zero, expert_reward=zero,
        learner_features=lambda s, la, ea, n: n.x[None], expert_features=lambda s, la, ea, n: jnp.zeros(1),
    )


def optimal_return(x0: np.ndarray, horizon: int) -> np.ndarray:
    """Hand-derived optimum: step 0.1 towards the goal while |x| > 0.05, then stay (undiscounted)."""
    x, total = x0.copy(), np.zeros_like(x0)
    for _ in range(horizon):
        x = np.where(np.abs(x) > 0.05, x - 0.1 * np.sign(x), x)
        total -= np.abs(x)
    return total


@pytest.mark.parametrize("critic_input, actor_gradient", [("joint", "boltzmann"), ("others", "boltzmann"),
                                                           ("others", "gumbel")])
def test_maddpg_learns_single_goal_task(critic_input, actor_gradient):
    game = line_game()
    config = MADDPGConfig(hidden=32, num_envs=32, iterations=60, updates_per_iteration=8, minibatch_size=128,
                          critic_input=critic_input, actor_gradient=actor_gradient)
    state = init_state(jax.random.PRNGKey(0), game, config)
    params = make_reward_params(jnp.zeros(1), jnp.zeros(1), use_true_ld=True, use_true_e=True)
    evaluate = jax.jit(lambda actor: rollout(jax.random.PRNGKey(5), game, make_policy(game, actor, greedy=True), 512))
    before = evaluate(state.actor)
    state, metrics = jax.jit(make_train(game, config))(jax.random.PRNGKey(1), state, params)
    after = evaluate(state.actor)
    x0 = np.asarray(after.global_trajectory[:, 0, 0])
    best = optimal_return(x0, game.horizon).mean()
    learned = float(after.learner_independent_reward.sum(axis=1).mean())
    untrained = float(before.learner_independent_reward.sum(axis=1).mean())
    assert learned >= best - 0.1 * abs(best), (learned, best, untrained)
    assert learned > untrained + 0.5
    assert metrics["team_return"].shape == (60, 2)


class PairState(NamedTuple):
    x: jax.Array  # [2] positions of two learner agents on a line; both goals are 0


def pair_line_game(horizon: int = 8) -> ContinuousGame:
    """Two learner agents (one shared return r_li = -|x0'| - |x1'|), each observing both positions; a
    passive expert with one action."""
    zero = lambda s, la, ea, n: jnp.float32(0.0)
    return ContinuousGame(
        num_learner_agents=2, num_expert_agents=1, num_actions=(3, 3, 1), observation_sizes=(2, 2, 1),
        state_size=2, horizon=horizon, discount=0.9, learner_feature_size=1, expert_feature_size=1,
        reset=lambda key: PairState(jax.random.uniform(key, (2,), minval=-0.5, maxval=0.5)),
        step=lambda s, la, ea: (PairState(s.x + STEPS[la]), jnp.asarray(False)),
        observations=lambda s: (s.x, s.x[::-1], jnp.zeros(1)),
        global_observation=lambda s: s.x,
        learner_independent_reward=lambda s, la, ea, n: -jnp.sum(jnp.abs(n.x)),
        learner_dependent_reward=zero, expert_reward=zero,
        learner_features=lambda s, la, ea, n: jnp.zeros(1), expert_features=lambda s, la, ea, n: jnp.zeros(1),
    )


@pytest.mark.parametrize("critics, critic_input", [("team", "joint"), ("agent", "others")])
def test_centralised_critic_variants_learn_a_two_agent_task(critics, critic_input):
    """critics="team": one critic for the two learner agents (their shared return) and one for the
    expert; critic_input="others": Q_i(s, a_-i) -> own-action values. Both agents still learn their own
    part of the team optimum (an actor that followed the other agent's critic or action would not)."""
    game = pair_line_game()
    config = MADDPGConfig(hidden=32, num_envs=32, iterations=60, updates_per_iteration=8, minibatch_size=128,
                          critics=critics, critic_input=critic_input)
    state = init_state(jax.random.PRNGKey(0), game, config)
    first_layer, last_layer = state.critic[0][0], state.critic[-1][0]
    if critics == "team":
        assert first_layer.shape[0] == 2  # critics stacked over teams, not over the 3 agents
        assert init_state(jax.random.PRNGKey(0), game, config._replace(critics="agent")).critic[0][0].shape[0] == 3
    else:  # 3 critics; input: state (2) + the two other agents' one-hot actions; one output per own action
        assert first_layer.shape == (3, 2 + 2 * 3, 32) and last_layer.shape == (3, 32, 3)
    params = make_reward_params(jnp.zeros(1), jnp.zeros(1), use_true_ld=True, use_true_e=True)
    state, _ = jax.jit(make_train(game, config))(jax.random.PRNGKey(1), state, params)
    after = rollout(jax.random.PRNGKey(5), game, make_policy(game, state.actor, greedy=True), 512)
    x0 = np.asarray(after.global_trajectory[:, 0, :])
    best = (optimal_return(x0[:, 0], game.horizon) + optimal_return(x0[:, 1], game.horizon)).mean()
    learned = float(after.learner_independent_reward.sum(axis=1).mean())
    assert learned >= best - 0.1 * abs(best), (learned, best)


def test_team_critics_equal_agent_critics_with_one_agent_per_team():
    game = line_game(horizon=4)
    params = make_reward_params(jnp.asarray([0.5]), jnp.zeros(1))
    results = []
    for critics in ("agent", "team"):
        config = MADDPGConfig(hidden=8, num_envs=4, iterations=2, updates_per_iteration=2, minibatch_size=16,
                              critics=critics)
        state = init_state(jax.random.PRNGKey(0), game, config)
        results.append(jax.jit(make_train(game, config))(jax.random.PRNGKey(2), state, params))
    for got, want in zip(jax.tree_util.tree_leaves(results[1]), jax.tree_util.tree_leaves(results[0])):
        np.testing.assert_array_equal(got, want)


def test_batched_training_matches_individual_training():
    game = line_game(horizon=4)
    config = MADDPGConfig(hidden=8, num_envs=4, iterations=2, updates_per_iteration=2, minibatch_size=16)
    state = init_state(jax.random.PRNGKey(0), game, config)
    thetas = jnp.asarray([[0.5], [-0.5], [0.0]])
    batch = make_reward_params(thetas, jnp.zeros((3, 1)))
    batch = batch._replace(use_true_ld=jnp.zeros(3), use_true_e=jnp.zeros(3))
    train = jax.jit(jax.vmap(make_train(game, config), in_axes=(None, None, 0)))
    batched, _ = train(jax.random.PRNGKey(2), state, batch)
    # member 1 trained inside a batch of different rewards == member 0 of a batch where all are equal
    same = jax.tree_util.tree_map(lambda x: jnp.stack([x[1]] * 3), batch)
    alone, _ = train(jax.random.PRNGKey(2), state, same)
    for got, want in zip(jax.tree_util.tree_leaves(batched.actor), jax.tree_util.tree_leaves(alone.actor)):
        np.testing.assert_allclose(got[1], want[0], rtol=1e-5, atol=1e-6)
    different = [not np.allclose(x[0], x[1]) for x in jax.tree_util.tree_leaves(batched.critic)]
    assert any(different)  # the reward parameters do change the training
    again, _ = train(jax.random.PRNGKey(2), state, same)  # same key, same numbers
    for got, want in zip(jax.tree_util.tree_leaves(again), jax.tree_util.tree_leaves(alone)):
        np.testing.assert_array_equal(got, want)


def test_log_likelihood_is_normalised_over_valid_actions():
    game = line_game()
    state = init_state(jax.random.PRNGKey(4), game)
    obs = jnp.asarray([[[0.3], [0.3]], [[-0.2], [-0.2]]])  # [2, A=2, O=1]
    totals = sum(jnp.exp(log_likelihood(game, state.actor, obs, jnp.asarray([[a, 0], [a, 0]]))) for a in range(3))
    np.testing.assert_allclose(totals[:, 0], 1.0, atol=1e-5)
    np.testing.assert_allclose(totals[:, 1], 3.0, atol=1e-5)  # the expert's only action, counted 3 times
    sampled = make_policy(game, state.actor)(jax.random.PRNGKey(0), obs[0])
    assert int(sampled[1]) == 0 and 0 <= int(sampled[0]) < 3


def test_config_validation():
    game = line_game()
    with pytest.raises(ValueError, match="actor_gradient"):
        init_state(jax.random.PRNGKey(0), game, MADDPGConfig(actor_gradient="reinforce"))
    with pytest.raises(ValueError, match="exploration"):
        make_train(game, MADDPGConfig(exploration=1.5))
    with pytest.raises(ValueError, match="critics"):
        init_state(jax.random.PRNGKey(0), game, MADDPGConfig(critics="shared"))
    with pytest.raises(ValueError, match="critic_input"):
        init_state(jax.random.PRNGKey(0), game, MADDPGConfig(critic_input="all"))
    with pytest.raises(ValueError, match="critic_input: 'others' needs critics='agent'"):
        make_train(game, MADDPGConfig(critic_input="others", critics="team"))
    for field, bad in (("gumbel_temperature", 0.0), ("gumbel_temperature", -1.0), ("max_gradient_norm", 0.0),
                       ("max_gradient_norm", -10.0), ("max_gradient_norm", float("inf")),
                       ("temperature", float("nan")), ("temperature", float("inf")),
                       ("actor_learning_rate", float("inf")), ("critic_learning_rate", float("nan"))):
        with pytest.raises(ValueError, match=f"^{field}: "):
            make_train(game, MADDPGConfig(**{field: bad}))
