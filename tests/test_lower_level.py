"""Lower level (eq. 1): Lemma 1/3 against autodiff, and the classic-IRL special case."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gsiirl.algorithms.lower_level import LowerLevelProblem, inner_loop
from gsiirl.algorithms.metrics import expert_policy_kl
from gsiirl.games.random import random_tabular_game
from gsiirl.rewards import LinearReward, MLPReward, project_to_ball
from gsiirl.solvers.equilibrium import expert_soft_best_response
from gsiirl.solvers.occupancy import occupancy
from gsiirl.solvers.sampling import empirical_occupancy, sample_trajectories


def _features(game, dim, seed):
    rng = np.random.default_rng(seed)
    return rng.normal(size=game.joint_shape + (dim,))


def _problem(seed, model="joint_soft", temperature=1.0, mlp=False):
    game = random_tabular_game(seed, num_states=5, num_learner_actions=2, num_expert_actions=3, horizon=4)
    if mlp:
        learner_model = MLPReward(_features(game, 3, seed + 1), hidden=4)
        expert_model = MLPReward(_features(game, 3, seed + 2), hidden=4)
    else:
        learner_model = LinearReward(_features(game, 4, seed + 1))
        expert_model = LinearReward(_features(game, 6, seed + 2))
    return LowerLevelProblem(game, learner_model, expert_model, equilibrium=model, temperature=temperature,
                             regularization=0.05, iterations=100)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("temperature", [1.0, 0.5])
@pytest.mark.parametrize("mlp", [False, True])
def test_lemma1_and_lemma3_equal_autodiff_for_joint_soft(seed, temperature, mlp):
    problem = _problem(seed, temperature=temperature, mlp=mlp)
    key = jax.random.PRNGKey(seed)
    k1, k2, k3, k4 = jax.random.split(key, 4)
    theta_l = problem.learner_model.init(k1)
    theta_e = problem.expert_model.init(k2)
    # exact expectations: data are the occupancy of a different ("true") parameter pair's play
    true_policy = problem.policy(problem.learner_model.init(k3), problem.expert_model.init(k4))
    data = occupancy(problem.game, true_policy)
    autodiff_l, autodiff_e = jax.grad(problem.loss, argnums=(0, 1))(theta_l, theta_e, data)
    lemma_l, lemma_e = problem.lemma_gradients(theta_l, theta_e, data)
    np.testing.assert_allclose(np.asarray(lemma_e + problem.regularization * theta_e), np.asarray(autodiff_e),
                               rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(np.asarray(lemma_l), np.asarray(autodiff_l), rtol=1e-8, atol=1e-10)
    assert float(jnp.linalg.norm(autodiff_e)) > 1e-3


def test_lemma1_is_exact_for_the_expert_likelihood_under_soft_nash_with_learner_fixed():
    """DESIGN §3: with the learner's policy held fixed, Lemma 1 is the gradient of the expert's NLL."""
    problem = _problem(3, model="soft_nash")
    game = problem.game
    theta_l = problem.learner_model.init(jax.random.PRNGKey(0))
    theta_e = problem.expert_model.init(jax.random.PRNGKey(1))
    learner_policy = problem.policy(theta_l, theta_e).learner
    weights = game.discount ** jnp.arange(game.horizon)
    # Lemma 1 with the model occupancy of (fixed learner, expert best response)
    expert_policy = expert_soft_best_response(game.dynamics, learner_policy, problem.expert_model.table(theta_e),
                                              game.discount, problem.temperature, game.horizon)
    from gsiirl.solvers.equilibrium import JointPolicy
    model_occ = occupancy(game, JointPolicy(learner_policy, expert_policy))
    # the data's learner actions must follow the same fixed learner policy for the telescoping to hold
    data_fixed = occupancy(game, JointPolicy(learner_policy, problem.policy(theta_l, problem.expert_model.init(
        jax.random.PRNGKey(2))).expert))
    autodiff = jax.grad(lambda te: -jnp.sum(weights[:, None, None, None] * data_fixed * jnp.log(
        expert_soft_best_response(game.dynamics, learner_policy, problem.expert_model.table(te), game.discount,
                                  problem.temperature, game.horizon))[:, :, None, :]))(theta_e)
    difference = jnp.tensordot(weights, model_occ - data_fixed, 1)
    lemma = problem.feature_expectations(theta_l, theta_e, difference)[1] / problem.temperature
    np.testing.assert_allclose(np.asarray(lemma), np.asarray(autodiff), rtol=1e-8, atol=1e-10)


def _learner_independent_game(seed):
    """The learner's action changes neither the transitions nor the expert's reward (paper §4)."""
    base = random_tabular_game(seed, num_states=4, num_learner_actions=3, num_expert_actions=3, horizon=3,
                               discount=0.9)
    transitions = np.repeat(np.asarray(base.dynamics.transitions)[:, :1], 3, axis=1)
    expert_reward = np.repeat(np.asarray(base.expert_reward)[:, :1], 3, axis=1) * 2.0
    return base.with_rewards(expert_reward=expert_reward)._replace_dynamics(transitions=transitions)


def test_learner_independent_game_reduces_to_single_agent_maxent_irl():
    game = _learner_independent_game(0)
    num_s, num_l, num_e = game.joint_shape
    # expert features: one-hot over (s, a_e), shared across learner actions (single-agent MaxEnt IRL)
    expert_features = np.zeros(game.joint_shape + (num_s * num_e,))
    for s in range(num_s):
        for ae in range(num_e):
            expert_features[s, :, ae, s * num_e + ae] = 1.0
    learner_features = np.random.default_rng(0).normal(size=game.joint_shape + (3,))
    problem = LowerLevelProblem(game, LinearReward(learner_features), LinearReward(expert_features),
                                regularization=1e-4, iterations=100)
    theta_l = 0.5 * jnp.ones(3)
    # 1) soft_nash's expert policy IS the single-agent MaxEnt policy, whatever the learner does
    true_equilibrium = problem.solve(problem.learner_reward_table(theta_l), game.expert_reward).policy
    single_agent = expert_soft_best_response(game.dynamics, jnp.full((3, num_s, num_l), 1.0 / num_l),
                                             game.expert_reward, game.discount, 1.0, game.horizon)
    np.testing.assert_allclose(np.asarray(true_equilibrium.expert), np.asarray(single_agent), atol=1e-10)
    # 2) the inner loop is MaxEnt IRL: its policy's KL to the true expert policy -> 0 as data grow
    visitation = occupancy(game, true_equilibrium).sum(axis=(2, 3))
    kls = []
    for num in (30, 300, 30000):
        trajectories = sample_trajectories(jax.random.PRNGKey(num), game, true_equilibrium, num)
        data = empirical_occupancy(trajectories, game.joint_shape, game.horizon)
        theta_e = inner_loop(problem, theta_l, jnp.zeros(num_s * num_e), data, steps=3000, step_size=0.5,
                             radius=100.0, method="lemma1")
        learned = problem.policy(theta_l, theta_e)
        kls.append(float(expert_policy_kl(visitation, true_equilibrium.expert, learned.expert)))
    assert kls[0] > kls[1] > kls[2]
    assert kls[2] < 2e-3


def test_inner_loop_stays_in_the_ball():
    problem = _problem(1, model="soft_nash")
    data = occupancy(problem.game, problem.policy(jnp.ones(4), jnp.ones(6)))
    theta = inner_loop(problem, jnp.zeros(4), jnp.zeros(6), data, steps=50, step_size=5.0, radius=0.3)
    assert float(jnp.linalg.norm(theta)) <= 0.3 + 1e-9
    np.testing.assert_allclose(np.asarray(project_to_ball(jnp.array([3.0, 4.0]), 1.0)), [0.6, 0.8])
