"""The per-iteration metrics of a tabular run against an independent NumPy policy evaluation."""

import jax
import numpy as np

import gsiirl
from gsiirl.algorithms.lower_level import LowerLevelProblem
from gsiirl.algorithms.tabular_metrics import iteration_metrics


def policy_value(game, learner_policy, expert_policy, reward):
    """Σ_s ρ0(s) V_0(s) by backward induction with explicit loops (float64), V_T = 0."""
    transitions = np.asarray(game.dynamics.transitions, float)
    value = np.zeros(game.num_states)
    for t in reversed(range(game.horizon)):
        new = np.zeros(game.num_states)
        for s in range(game.num_states):
            for al in range(game.num_learner_actions):
                for ae in range(game.num_expert_actions):
                    weight = learner_policy[t, s, al] * expert_policy[t, s, ae]
                    new[s] += weight * (reward[s, al, ae] + game.discount * transitions[s, al, ae] @ value)
        value = new
    return float(np.asarray(game.initial, float) @ value)


def test_interaction_and_model_returns_match_a_loop_evaluation():
    game = gsiirl.random_tabular_game(2, num_states=4, num_learner_actions=2, num_expert_actions=3, horizon=3)
    model = gsiirl.LinearReward(gsiirl.one_hot_features(game.joint_shape))
    problem = LowerLevelProblem(game, model, model, iterations=20)
    expert = gsiirl.SimulatedExpert(game, iterations=20)
    key_l, key_e = jax.random.split(jax.random.PRNGKey(0))
    theta_l, theta_e = model.init(key_l, 1.0), model.init(key_e, 1.0)
    data = jax.numpy.zeros((game.horizon,) + game.joint_shape)
    record = iteration_metrics(problem, game, expert, theta_l, theta_e, data)

    truth_l, truth_e = np.asarray(game.learner_true_reward, float), np.asarray(game.expert_reward, float)
    # the interaction: the learner's policy met by the true expert's response to the announced reward
    played = expert.joint_policy(problem.learner_reward_table(theta_l))
    played_l, played_e = np.asarray(played.learner, float), np.asarray(played.expert, float)
    assert abs(record["interaction_learner_return"] - policy_value(game, played_l, played_e, truth_l)) < 1e-4
    assert abs(record["interaction_expert_return"] - policy_value(game, played_l, played_e, truth_e)) < 1e-4
    # the model: both players follow the learned rewards
    modelled = problem.policy(theta_l, theta_e)
    model_l, model_e = np.asarray(modelled.learner, float), np.asarray(modelled.expert, float)
    assert abs(record["learner_return"] - policy_value(game, model_l, model_e, truth_l)) < 1e-4
    assert abs(record["expert_return"] - policy_value(game, model_l, model_e, truth_e)) < 1e-4
    # a random θe is a poor model of the expert, so the two pairs of returns differ
    assert abs(record["expert_return"] - record["interaction_expert_return"]) > 1e-3


def test_expert_recovery_metrics_are_zero_at_the_true_expert_reward_under_both_models():
    """θe = the true r_e (one-hot features) reproduces the expert: KL and EVD are 0 under soft_nash AND
    joint_soft (under joint_soft the learned policy is the model's joint policy, not a best response to
    the learner's marginal), while a wrong θe is detected under both."""
    game = gsiirl.random_tabular_game(0, num_states=5, num_learner_actions=2, num_expert_actions=2, horizon=4)
    model = gsiirl.LinearReward(gsiirl.one_hot_features(game.joint_shape))
    theta_l = jax.numpy.asarray(game.learner_oracle).reshape(-1)
    true_theta_e = jax.numpy.asarray(game.expert_reward).reshape(-1)
    for equilibrium in ("soft_nash", "joint_soft"):
        problem = LowerLevelProblem(game, model, model, equilibrium=equilibrium, iterations=60)
        expert = gsiirl.SimulatedExpert(game, equilibrium=equilibrium, iterations=60)
        data = expert.expected_data(problem.learner_reward_table(theta_l))
        exact = iteration_metrics(problem, game, expert, theta_l, true_theta_e, data)
        assert abs(exact["expert_policy_kl"]) < 1e-6 and abs(exact["expert_value_difference"]) < 1e-5, equilibrium
        wrong = iteration_metrics(problem, game, expert, theta_l, -true_theta_e, data)
        assert wrong["expert_policy_kl"] > 1e-3, equilibrium


def test_return_correlations_match_scipy_on_the_sampled_data():
    """DESIGN §5's MA-AIRL correlations: per player, Pearson / Spearman over the data's trajectories of
    the discounted return under the learned and under the true reward, against returns summed in a
    Python loop and scipy.stats; the true expert reward (one-hot model) correlates perfectly."""
    from scipy import stats

    game = gsiirl.random_tabular_game(4, num_states=6, num_learner_actions=2, num_expert_actions=3, horizon=5)
    model = gsiirl.LinearReward(gsiirl.one_hot_features(game.joint_shape))
    problem = LowerLevelProblem(game, model, model, iterations=30)
    expert = gsiirl.SimulatedExpert(game, iterations=30)
    key_l, key_e, key_data = jax.random.split(jax.random.PRNGKey(1), 3)
    theta_l, theta_e = model.init(key_l, 1.0), model.init(key_e, 1.0)
    learner_reward = problem.learner_reward_table(theta_l)
    trajectories = expert.interact(key_data, learner_reward, None, 64)
    data = gsiirl.solvers.sampling.empirical_occupancy(trajectories, game.joint_shape, game.horizon)
    record = iteration_metrics(problem, game, expert, theta_l, theta_e, data, trajectories)

    def returns(table):
        table = np.asarray(table, float)
        states, learner_actions, expert_actions = (np.asarray(a) for a in trajectories)
        return np.array([sum(game.discount ** t * table[states[n, t], learner_actions[n, t], expert_actions[n, t]]
                             for t in range(game.horizon)) for n in range(states.shape[0])])

    for player, learned, true in (("learner", learner_reward, game.learner_true_reward),
                                  ("expert", model.table(theta_e), game.expert_reward)):
        learned_returns, true_returns = returns(learned), returns(true)
        assert abs(record[f"{player}_return_correlation"]
                   - stats.pearsonr(learned_returns, true_returns)[0]) < 1e-5, player
        assert abs(record[f"{player}_return_rank_correlation"]
                   - stats.spearmanr(learned_returns, true_returns)[0]) < 1e-5, player
    assert abs(record["expert_return_correlation"]) < 0.9  # a random θe is not the truth
    true_theta_e = jax.numpy.asarray(game.expert_reward).reshape(-1)
    exact = iteration_metrics(problem, game, expert, theta_l, true_theta_e, data, trajectories)
    assert exact["expert_return_correlation"] > 1 - 1e-5 and exact["expert_return_rank_correlation"] > 1 - 1e-5
    # without trajectories (data="expected") there is nothing to correlate over
    assert not any("correlation" in name for name in iteration_metrics(problem, game, expert, theta_l, theta_e, data))


def test_fit_records_the_return_correlations_of_its_data_every_iteration():
    game = gsiirl.random_tabular_game(2, num_states=4, num_learner_actions=2, num_expert_actions=2, horizon=3)
    names = ("learner_return_correlation", "learner_return_rank_correlation",
             "expert_return_correlation", "expert_return_rank_correlation")
    for method in ("gsiirl", "ma-irl"):
        history = gsiirl.fit(game, method=method, outer_iters=2, seed=0, num_trajectories=16, iterations=20).history
        for name in names:
            assert len(history[name]) == 2 and all(-1 <= v <= 1 for v in history[name]), (method, name)
    expected = gsiirl.fit(game, outer_iters=1, seed=0, data="expected", iterations=20).history
    assert not any(name in expected for name in names)
