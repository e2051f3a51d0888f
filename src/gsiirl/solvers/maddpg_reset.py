"""Restart a warm-started MADDPG team that has become worse than uniformly random play on its own reward.

A warm start carries a policy from one reward to the next. When the reward changes a lot (the random
initial rewards of an outer loop and the ones learned later can disagree in sign), the carried policy
can sit in an equilibrium of the old reward that gradient steps on the new one do not leave: on MPE, an
adversary warmed up on a reward for leaving the target follows a luring good agent away for the whole
run (docs/mpe.md, "stuck" seeds at −56 against −28.6 for random play). A trained best response should
never do worse than random play on the reward it is trained on, so that comparison is a check with no
tuned threshold: before a fine-tune, each team's discounted return on its own training reward is
estimated with its policy and with the team replaced by uniformly random actions (the other team keeps
its policy); if the policy is below random play by more than :data:`RESET_STANDARD_ERRORS` standard
errors of the difference, the team's actors and critics restart from fresh random weights (with their
target copies and Adam moments). ``SampleBasedConfig.reset_worse_than_random`` switches it on
(docs/design_decisions.md).

Pure functions over one MADDPG state (vmap them over a batch).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gsiirl.games.continuous import ContinuousGame, RewardParams, discounted_sum, rollout, team_rewards
from gsiirl.solvers.maddpg import (
    MADDPGConfig, MADDPGState, action_mask, critic_of_agent, init_state, make_policy, team_of_agent,
)

RESET_STANDARD_ERRORS = 2.0  # reset when policy − random < −2 standard errors (sampling noise alone: ≈ 2 %)


def advantage_over_random(key: jax.Array, game: ContinuousGame, actor, params: RewardParams,
                          episodes: int) -> tuple[jax.Array, jax.Array]:
    """(difference [2], standard error [2]) per team (learner, expert): mean discounted return of the team
    on its own training reward ``params`` with its policy minus the same with the team playing uniformly
    random valid actions (the other team keeps its policy), and the standard error of that difference,
    from ``episodes`` rollouts on each side (stochastic policies, no exploration)."""
    policy = make_policy(game, actor)
    teams = jnp.asarray(team_of_agent(game))  # [A]
    valid = action_mask(game)  # [A, n]

    def with_random_team(team: int):
        def mixed(step_key, observations):
            policy_key, uniform_key = jax.random.split(step_key)
            uniform = jax.random.categorical(uniform_key, jnp.where(valid, 0.0, -1e9), axis=-1)
            return jnp.where(teams == team, uniform, policy(policy_key, observations))
        return mixed

    def team_returns(data):  # [N, 2]
        return discounted_sum(team_rewards(game, data, params), game.discount)

    keys = jax.random.split(key, 3)
    own = team_returns(rollout(keys[0], game, policy, episodes))
    differences, standard_errors = [], []
    for team in (0, 1):
        random_play = team_returns(rollout(keys[1 + team], game, with_random_team(team), episodes))[:, team]
        differences.append(jnp.mean(own[:, team]) - jnp.mean(random_play))
        standard_errors.append(jnp.sqrt((jnp.var(own[:, team]) + jnp.var(random_play)) / episodes))
    return jnp.stack(differences), jnp.stack(standard_errors)


def _select_members(mask: jax.Array):
    """``(old, new) -> tree``: every leaf of ``new`` where ``mask`` [M] is set, of ``old`` elsewhere (every leaf has
    the M members, agents or critics, on its leading axis)."""
    def leaf(old, new):
        return jnp.where(mask.reshape((-1,) + (1,) * (jnp.ndim(old) - 1)), new, old)
    return lambda old, new: jax.tree_util.tree_map(leaf, old, new)


def reinitialise_teams(game: ContinuousGame, config: MADDPGConfig, state: MADDPGState, fresh: MADDPGState,
                       reset: jax.Array) -> MADDPGState:
    """``state`` with the actors and critics of the teams flagged in ``reset`` [2] bool (learner, expert)
    taken from ``fresh`` (targets and Adam states too: each member has its own step count, so a restarted
    member's Adam starts again from step 0, as a fresh one would)."""
    agent_reset = reset[jnp.asarray(team_of_agent(game))]  # [A]
    critic_reset = reset[jnp.asarray(critic_of_agent(game, config)[1])]  # [C]
    actors, critics = _select_members(agent_reset), _select_members(critic_reset)
    return MADDPGState(
        actors(state.actor, fresh.actor), critics(state.critic, fresh.critic),
        actors(state.target_actor, fresh.target_actor), critics(state.target_critic, fresh.target_critic),
        actors(state.actor_optimizer, fresh.actor_optimizer), critics(state.critic_optimizer, fresh.critic_optimizer),
    )


def with_team_actors(game: ContinuousGame, state: MADDPGState, source: MADDPGState, teams: jax.Array) -> MADDPGState:
    """``state`` with the actors (and target actors) of the teams flagged in ``teams`` [2] bool (learner,
    expert) taken from ``source``; critics and optimizer states stay ``state``'s (MA-IRL's best-response
    members: the other team's demonstrated policy, frozen, without the demonstrator's critics)."""
    splice = _select_members(jnp.asarray(teams)[jnp.asarray(team_of_agent(game))])  # mask [A]
    return state._replace(actor=splice(state.actor, source.actor),
                          target_actor=splice(state.target_actor, source.target_actor))


def reset_worse_than_random(key: jax.Array, game: ContinuousGame, config: MADDPGConfig, state: MADDPGState,
                            params: RewardParams, episodes: int) -> tuple[MADDPGState, jax.Array]:
    """Restart the teams whose policy is worse than random play on their own reward ``params``.

    Returns (state, reset [2] bool: which teams restarted). A team that is not reset keeps its state
    bit for bit; a team flagged in ``params.frozen`` is never reset (it does not learn)."""
    check_key, init_key = jax.random.split(key)
    difference, standard_error = advantage_over_random(check_key, game, state.actor, params, episodes)
    reset = difference < -RESET_STANDARD_ERRORS * standard_error
    if params.frozen is not None:
        reset = reset & (jnp.asarray(params.frozen) < 0.5)
    return reinitialise_teams(game, config, state, init_state(init_key, game, config), reset), reset
