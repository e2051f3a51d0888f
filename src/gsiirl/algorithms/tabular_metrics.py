"""Per-iteration evaluation of a tabular GSIIRL / MA-IRL run (DESIGN §5).

Uses the hidden truth (true r_e, the simulated expert's policy) for EVALUATION only; nothing here
feeds back into learning.
"""

from __future__ import annotations


import jax
import jax.numpy as jnp

from gsiirl.algorithms.lower_level import LowerLevelProblem
from gsiirl.algorithms.metrics import (discounted_trajectory_returns, epic_distance, expert_policy_kl,
                                       return_correlations)
from gsiirl.solvers.equilibrium import expert_soft_best_response
from gsiirl.solvers.occupancy import _forward


@jax.jit
def _learned_metrics(problem: LowerLevelProblem, true_expert_reward, theta_l, theta_e, data_occupancy):
    """(metrics of π^{θl,θe}, π^{θl,θe} itself)."""
    game = problem.game
    solution = problem.solution(theta_l, theta_e)
    policy = solution.policy
    weights = _forward(game.dynamics, game.initial, policy, game.discount, True)
    loss = problem.negative_log_likelihood(policy, data_occupancy) + 0.5 * problem.regularization * jnp.sum(theta_e ** 2)
    return policy, {
        "learner_return": jnp.sum(weights * game.learner_true_reward),
        "expert_return": jnp.sum(weights * true_expert_reward),
        "lower_level_loss": loss,
        "epic_distance": epic_distance(problem.expert_model.table(theta_e), true_expert_reward, game.discount),
        # the model solve's fixed-point residual (largest last change of a policy probability, over stages)
        "equilibrium_residual": jnp.max(solution.residual),
    }


@jax.jit
def _expert_recovery(problem: LowerLevelProblem, true_expert_reward, data_policy, model_policy, theta_e):
    """EVD and KL of the learned expert against the data-generating policy ``data_policy``.

    ``soft_nash``: the learned expert is θe's soft best response to the data's learner policy, held fixed
    (DESIGN §5). ``joint_soft``: the players are one team with one joint policy, so there is no expert
    policy apart from the learner's: the learned policy is the model's joint policy π^{θl,θe}
    (``model_policy``: the data's with r_e^θe in place of r_e), the KL compares the two expert marginals and
    the EVD the two joint policies' true-r_e returns."""
    game = problem.game
    true_joint = data_policy
    if problem.equilibrium == "joint_soft":
        learned_joint = model_policy
        learned_expert = learned_joint.expert
    else:  # the learned expert's soft best response to the data-generating learner policy (DESIGN §5)
        learned_expert = expert_soft_best_response(game.dynamics, data_policy.learner,
                                                   problem.expert_model.table(theta_e), game.discount,
                                                   problem.temperature, game.horizon)
        learned_joint = true_joint._replace(expert=learned_expert, joint=None)
    true_weights = _forward(game.dynamics, game.initial, true_joint, game.discount, True)
    learned_weights = _forward(game.dynamics, game.initial, learned_joint, game.discount, True)
    visitation = _forward(game.dynamics, game.initial, true_joint, game.discount, False).sum(axis=(2, 3))
    return {
        # what the interaction itself gave: the learner's policy met by the TRUE expert's response
        "interaction_learner_return": jnp.sum(true_weights * game.learner_true_reward),
        "interaction_expert_return": jnp.sum(true_weights * true_expert_reward),
        "expert_value_difference": jnp.sum((true_weights - learned_weights) * true_expert_reward),
        "expert_policy_kl": expert_policy_kl(visitation, true_joint.expert, learned_expert),
    }


@jax.jit
def _return_correlations(problem: LowerLevelProblem, true_expert_reward, theta_l, theta_e, trajectories):
    """Pearson and Spearman correlations (DESIGN §5, as MA-AIRL reports them), over the N trajectories,
    between each player's discounted return under its LEARNED reward and under its TRUE reward: the
    learner's full reward r_li + r_ld^θl against r_li + r_ld (r_li is known and shared by both), the
    expert's r_e^θe against r_e."""
    game = problem.game
    pairs = {"learner": (problem.learner_reward_table(theta_l), game.learner_true_reward),
             "expert": (problem.expert_model.table(theta_e), true_expert_reward)}
    record = {}
    for player, tables in pairs.items():
        learned, true = (discounted_trajectory_returns(table, *trajectories, game.discount) for table in tables)
        pearson, spearman = return_correlations(learned, true)
        record[f"{player}_return_correlation"] = pearson
        record[f"{player}_return_rank_correlation"] = spearman
    return record


def iteration_metrics(problem: LowerLevelProblem, game, expert, theta_l, theta_e, data_occupancy,
                      trajectories=None) -> dict:
    """Metrics of the current (θl, θe): true returns under π^{θl,θe} (both players follow the LEARNED
    rewards), L, EPIC(r_e^θe, r_e), the fixed-point residual of the solve of π^{θl,θe}, and — when the
    expert is simulated (has ``joint_policy``) — the true returns of the interaction itself (learner's
    policy, true expert's response), EVD and the expert-policy KL against the data-generating policy (and,
    with ``joint_solution``, the residual of the expert's solve).

    ``trajectories`` (the data D as a :class:`~gsiirl.solvers.sampling.Trajectories`, [N, T] each, N ≥ 2)
    add the per-player Pearson / Spearman correlations of learned-reward and true-reward returns over D
    (``learner_return_correlation``, ``learner_return_rank_correlation``, ``expert_…``); NaN where
    one of the two is the same on every trajectory (the correlation is undefined)."""
    true_expert_reward = game.expert_reward
    model_policy, learned = _learned_metrics(problem, true_expert_reward, theta_l, theta_e, data_occupancy)
    record = {k: float(v) for k, v in learned.items()}
    if trajectories is not None and jnp.shape(trajectories.states)[0] >= 2:
        record.update({k: float(v) for k, v in
                       _return_correlations(problem, true_expert_reward, theta_l, theta_e, trajectories).items()})
    if hasattr(expert, "joint_policy"):
        learner_reward = problem.learner_reward_table(theta_l)
        if hasattr(expert, "joint_solution"):  # the simulated expert's solve and how well it converged
            solution = expert.joint_solution(learner_reward)
            data_policy = solution.policy
            record["expert_equilibrium_residual"] = float(jnp.max(solution.residual))
        else:
            data_policy = expert.joint_policy(learner_reward)
        record.update({k: float(v) for k, v in
                       _expert_recovery(problem, true_expert_reward, data_policy, model_policy, theta_e).items()})
    return record
