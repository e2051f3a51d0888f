"""MADDPG (Lowe et al., 2017) in JAX for :class:`~gsiirl.games.continuous.ContinuousGame` (DESIGN §6).

Centralised critics ``Q_i(global_obs, one-hot actions of all agents)``, decentralised actors
``π_i(a_i | o_i)`` that are *categorical* over each agent's discrete action set. Why categorical (over
a discretised velocity set) rather than a squashed Gaussian: GSIIRL's lower level is a likelihood
(``L = -Σ ln π(a|s)``), and a categorical gives exact, bounded log-probabilities of any logged
action, also the ones a real human takes, while a squashed Gaussian's density diverges at the
action bounds and needs a change-of-variables correction. Three actor updates (``actor_gradient``):

* ``"gumbel"`` — MADDPG's discrete variant: a straight-through Gumbel-softmax sample of a_i fed to
  the critic, plus an entropy bonus ``temperature · H(π_i)``;
* ``"expected"`` — the exact expectation ``Σ_a π_i(a|o_i) Q_i(s, a, a_{-i})`` (no sampling noise)
  plus the entropy bonus;
* ``"boltzmann"`` (default) — minimise ``KL(softmax(Q_i(s, ·, a_{-i}) / temperature) ‖ π_i)``. Its
  gradient ``π − softmax(Q/τ)`` does not vanish when π has collapsed onto an action that a *changed*
  reward now makes bad, so warm-started fine-tunes adapt quickly (measured on HRI: after a reward
  switch the ``expected`` actor stayed stuck for 30 fine-tunes, ``boltzmann`` recovered).

All three keep the critic centralised and the actors decentralised; Q_i for every own action is
cheap because the critic's first layer is linear in the one-hot actions (a row swap).

Critics (``critics``): ``"agent"`` is MADDPG's one ``Q_i`` per agent; ``"team"`` keeps one centralised
critic per team, which is exact here because the agents of a team share one return (a
:class:`ContinuousGame` team has one reward), so per-agent critics of a team learn the same function
from the same targets. Each actor still swaps only its own action in its team's critic. With one agent
per team (HRI) the two settings are the same computation; on MPE (two good agents) ``"team"`` trains 2
critics instead of 3 (docs/mpe.md).

Critic input (``critic_input``): ``"joint"`` is MADDPG's ``Q_i(s, a_1, …, a_N)`` with every agent's one-hot
action as input; ``"others"`` represents the same centralised ``Q_i`` as ``head_i(s, a_{-i})[a_i]`` — the
other agents' actions go in, one output per own action comes out (the counterfactual critic layout of
COMA, Foerster et al. 2018). The Boltzmann / expected actor updates need ``Q_i`` for every own action:
one forward pass with ``"others"`` instead of one pass of the hidden layers per own action, which is
most of an update's arithmetic with 25 actions (HRI). Own-action effects are linear in the last
hidden layer, a different function class from ``"joint"``'s (docs/design_decisions.md).

Pure PureJaxRL-style API::

    train = make_train(game, config)            # config: MADDPGConfig
    state = init_state(key, game, config)       # or a previous state (warm start)
    state, metrics = train(key, state, reward_params)
    jax.vmap(train, in_axes=(None, None, 0))    # a batch of reward parameters from one warm start

Each ``train`` call runs ``config.iterations`` cycles of (vectorised rollout of ``num_envs``
episodes → ``updates_per_iteration`` minibatch updates from a replay buffer holding the last
``buffer_iterations`` rollouts of this call).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gsiirl.games.continuous import ContinuousGame, RewardParams, rollout, team_rewards
from gsiirl.solvers.per_member import per_member


ACTOR_GRADIENTS = ("gumbel", "expected", "boltzmann")
CRITICS = ("agent", "team")
CRITIC_INPUTS = ("joint", "others")


class MADDPGConfig(NamedTuple):
    """MADDPG settings (checked by :func:`validate_config`; a bad field raises ValueError naming it).

    Attributes:
        hidden: width of the two hidden layers of every actor and critic.
        actor_learning_rate, critic_learning_rate: Adam step sizes.
        num_envs: episodes rolled out in parallel per cycle.
        iterations: cycles per ``train`` call (rollout, then ``updates_per_iteration`` minibatch updates).
        updates_per_iteration: minibatch updates per cycle.
        buffer_iterations: the replay buffer keeps the last this-many rollouts of the call.
        minibatch_size: transitions per update (sampled with replacement from the filled buffer).
        target_update_rate: Polyak rate of the target networks.
        temperature: the Boltzmann target's temperature (``actor_gradient="boltzmann"``), or the entropy
            bonus's weight ("gumbel", "expected").
        exploration: probability of a uniformly random action while collecting rollouts.
        gumbel_temperature: the Gumbel-softmax temperature (``actor_gradient="gumbel"``).
        actor_gradient: "boltzmann", "gumbel" or "expected" (module docstring).
        max_gradient_norm: global-norm clip of every gradient.
        critics: "agent" (one Q_i per agent, MADDPG) or "team" (one Q per team; module docstring).
        critic_input: "joint" (Q_i(s, a)) or "others" (Q_i(s, a_-i) → own-action values).
    """

    hidden: int = 64
    actor_learning_rate: float = 3e-3
    critic_learning_rate: float = 3e-3
    num_envs: int = 64
    iterations: int = 8
    updates_per_iteration: int = 8
    buffer_iterations: int = 4
    minibatch_size: int = 256
    target_update_rate: float = 0.05
    temperature: float = 0.02
    exploration: float = 0.1
    gumbel_temperature: float = 1.0
    actor_gradient: str = "boltzmann"
    max_gradient_norm: float = 10.0
    critics: str = "agent"  # "agent": one Q_i per agent (MADDPG); "team": one Q per team (its shared return)
    critic_input: str = "joint"  # "joint": Q_i(s, a) with all actions in; "others": Q_i(s, a_-i) -> own-action values


class MADDPGState(NamedTuple):
    actor: Any  # stacked over agents: list of (W [A, in, out], b [A, out])
    critic: Any
    target_actor: Any
    target_critic: Any
    actor_optimizer: Any
    critic_optimizer: Any


def straight_through_gumbel(key: jax.Array, logits: jax.Array, temperature) -> jax.Array:
    """A straight-through Gumbel-softmax sample [..., A] of ``logits`` [..., A]: its value is the one-hot
    argmax of logits + Gumbel noise, its gradient that of softmax((logits + noise) / temperature)."""
    soft = jax.nn.softmax((logits + jax.random.gumbel(key, logits.shape)) / temperature, axis=-1)
    hard = jax.nn.one_hot(jnp.argmax(soft, axis=-1), logits.shape[-1], dtype=soft.dtype)
    return hard + soft - jax.lax.stop_gradient(soft)


def validate_config(config: MADDPGConfig) -> None:
    """Raise ValueError naming the first bad field of ``config``."""
    if not isinstance(config, MADDPGConfig):
        raise ValueError(f"maddpg: expected a MADDPGConfig, got {type(config).__name__}")
    if config.actor_gradient not in ACTOR_GRADIENTS:
        raise ValueError(f"actor_gradient: expected one of {ACTOR_GRADIENTS}, got {config.actor_gradient!r}")
    if config.critics not in CRITICS:
        raise ValueError(f"critics: expected one of {CRITICS}, got {config.critics!r}")
    if config.critic_input not in CRITIC_INPUTS:
        raise ValueError(f"critic_input: expected one of {CRITIC_INPUTS}, got {config.critic_input!r}")
    if config.critic_input == "others" and config.critics == "team":
        raise ValueError("critic_input: 'others' needs critics='agent' (a team critic has no single own action)")
    if config.actor_gradient == "boltzmann" and not config.temperature > 0:
        raise ValueError("temperature: actor_gradient='boltzmann' needs a positive temperature")
    for name in ("hidden", "num_envs", "iterations", "updates_per_iteration", "buffer_iterations", "minibatch_size"):
        if int(getattr(config, name)) < 1:
            raise ValueError(f"{name}: expected a positive integer, got {getattr(config, name)}")
    if not 0.0 < config.target_update_rate <= 1.0:
        raise ValueError(f"target_update_rate: expected in (0, 1], got {config.target_update_rate}")
    if not 0.0 <= config.exploration <= 1.0:
        raise ValueError(f"exploration: expected a probability in [0, 1], got {config.exploration}")
    if not 0 <= config.temperature < math.inf:  # also catches NaN
        raise ValueError(f"temperature: expected a finite number >= 0, got {config.temperature}")
    for name in ("actor_learning_rate", "critic_learning_rate"):
        if not 0 <= float(getattr(config, name)) < math.inf:  # 0 freezes the networks
            raise ValueError(f"{name}: expected a finite number >= 0, got {getattr(config, name)}")
    for name in ("gumbel_temperature", "max_gradient_norm"):
        if not 0 < float(getattr(config, name)) < math.inf:
            raise ValueError(f"{name}: expected a finite positive number, got {getattr(config, name)}")


def _init_mlp(key, sizes, num_agents):
    layers = []
    for k, (n_in, n_out) in zip(jax.random.split(key, len(sizes) - 1), zip(sizes[:-1], sizes[1:])):
        w = jax.random.normal(k, (num_agents, n_in, n_out)) * jnp.sqrt(1.0 / n_in)
        layers.append((w, jnp.zeros((num_agents, n_out))))
    return layers


def _mlp(layers, x):
    """One agent's MLP (layers unstacked): x [..., in] -> [..., out]."""
    for w, b in layers[:-1]:
        x = jax.nn.relu(x @ w + b)
    w, b = layers[-1]
    return x @ w + b


def action_mask(game: ContinuousGame) -> jax.Array:
    """[A, max_actions] bool: which padded actions exist for each agent."""
    return jnp.arange(game.max_actions)[None, :] < jnp.asarray(game.num_actions)[:, None]


def team_of_agent(game: ContinuousGame) -> tuple[int, ...]:
    """The team of every agent: 0 for the learner agents (first), 1 for the expert agents."""
    return (0,) * game.num_learner_agents + (1,) * game.num_expert_agents


def critic_of_agent(game: ContinuousGame, config: MADDPGConfig) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(critic of every agent, team of every critic). Agent i's actor follows critic i
    (``critics="agent"``) or its team's (``"team"``: 0 for the learner agents, 1 for the expert agents);
    a critic learns its team's return (0 learner, 1 expert). The two settings agree when each team has
    one agent (HRI); with ``"team"`` agents that share a return (MPE's good agents) share one critic."""
    teams = team_of_agent(game)
    if config.critics == "team":
        return teams, (0, 1)
    return tuple(range(game.num_agents)), teams


def init_state(key: jax.Array, game: ContinuousGame, config: MADDPGConfig = MADDPGConfig()) -> MADDPGState:
    """Fresh actors (stacked over the A agents) and critics (stacked over the C critics, see
    :func:`critic_of_agent`), targets equal to them, Adam states."""
    validate_config(config)
    actor_key, critic_key = jax.random.split(key)
    n, h = game.num_agents, config.hidden
    actor = _init_mlp(actor_key, (game.max_observation_size, h, h, game.max_actions), n)
    actor[-1] = (actor[-1][0] * 0.01, actor[-1][1])  # near-uniform initial policies
    num_critics = len(critic_of_agent(game, config)[1])
    if config.critic_input == "others":  # Q_i(s, a_-i) -> [own actions]
        sizes = (game.state_size + (n - 1) * game.max_actions, h, h, game.max_actions)
    else:  # Q_i(s, a) -> scalar
        sizes = (game.state_size + n * game.max_actions, h, h, 1)
    critic = _init_mlp(critic_key, sizes, num_critics)
    return MADDPGState(
        actor,
        critic,
        actor,
        critic,
        _optimizers(config)[0].init(actor),
        _optimizers(config)[1].init(critic),
    )


def _optimizers(config: MADDPGConfig):
    """(actor, critic) optimizers: one global-norm clip of the whole gradient, then Adam per member."""
    clip = optax.clip_by_global_norm(config.max_gradient_norm)
    return (
        optax.chain(clip, per_member(optax.adam(config.actor_learning_rate))),
        optax.chain(clip, per_member(optax.adam(config.critic_learning_rate))),
    )


def policy_logits(game: ContinuousGame, actor, observations: jax.Array) -> jax.Array:
    """Masked logits of every agent: observations [..., A, O] -> [..., A, max_actions]."""
    logits = jax.vmap(_mlp, in_axes=(0, -2), out_axes=-2)(actor, observations)
    return jnp.where(action_mask(game), logits, -1e9)


def log_likelihood(game: ContinuousGame, actor, observations: jax.Array, actions: jax.Array) -> jax.Array:
    """ln π_i(a_i | o_i) per agent: observations [..., A, O], actions [..., A] -> [..., A]."""
    log_probs = jax.nn.log_softmax(policy_logits(game, actor, observations), axis=-1)
    return jnp.take_along_axis(log_probs, actions[..., None], axis=-1)[..., 0]


def make_policy(game: ContinuousGame, actor, greedy: bool = False, exploration: float = 0.0):
    """Decentralised execution: ``policy(key, observations[A, O]) -> actions[A]``.

    Sampled from π_i (default), argmax (``greedy``), or, with probability ``exploration`` per agent, a
    uniformly random valid action (the behaviour policy used while training).
    """

    def policy(key, observations):
        logits = policy_logits(game, actor, observations)
        if greedy:
            return jnp.argmax(logits, axis=-1)
        sample_key, explore_key, uniform_key = jax.random.split(key, 3)
        actions = jax.random.categorical(sample_key, logits, axis=-1)
        if exploration > 0:
            uniform = jax.random.categorical(uniform_key, jnp.where(action_mask(game), 0.0, -1e9), axis=-1)
            explore = jax.random.uniform(explore_key, actions.shape) < exploration
            actions = jnp.where(explore, uniform, actions)
        return actions

    return policy


def _zero_frozen_agents(game: ContinuousGame, tree, frozen: jax.Array):
    """``tree`` (stacked over the A agents on every leaf's leading axis) with the agents of the teams flagged in
    ``frozen`` [2] set to 0."""
    keep = 1.0 - jnp.asarray(frozen)[jnp.asarray(team_of_agent(game))]  # [A]
    return jax.tree_util.tree_map(lambda x: x * keep.reshape((-1,) + (1,) * (x.ndim - 1)).astype(x.dtype), tree)


def _soft_update(target, online, rate):
    return jax.tree_util.tree_map(lambda t, o: (1.0 - rate) * t + rate * o, target, online)


def make_train(game: ContinuousGame, config: MADDPGConfig = MADDPGConfig()):
    """Return a pure ``train(key, state, reward_params) -> (state, metrics)`` (jit/vmap friendly).

    ``metrics["team_return"]`` [iterations, 2]: mean discounted return of (learner, expert) per cycle
    under the training rewards.
    """
    validate_config(config)
    n_agents, n_actions = game.num_agents, game.max_actions
    # agent i's actor follows critic critic_index[i]; critic c learns the return of team team_of_critic[c]
    critic_index, team_of_critic = critic_of_agent(game, config)
    num_critics = len(team_of_critic)
    actor_opt, critic_opt = _optimizers(config)
    chunk = config.num_envs * game.horizon
    capacity = chunk * config.buffer_iterations
    most = chunk * min(config.buffer_iterations, config.iterations)  # transitions a call's buffer ever holds
    if config.minibatch_size > most:
        warnings.warn(f"minibatch_size: {config.minibatch_size} is more than the {most} transitions the replay "
                      f"buffer holds in one train call (num_envs × horizon × min(buffer_iterations, iterations)"
                      f" = {config.num_envs} × {game.horizon} × {min(config.buffer_iterations, config.iterations)}"
                      "); minibatches repeat transitions", RuntimeWarning, stacklevel=2)
    gamma = game.discount

    def own_action_table(critic, global_obs, joint_one_hot):
        """Q_i(s, a_i = b, a_-i) of agent i's critic for every agent i and own action b, [B, A, n]."""
        batch = joint_one_hot.shape[0]
        if config.critic_input == "others":  # one pass: the own-action values are the outputs
            inputs = jnp.stack([  # [A, B, G + (A-1)·n]: the state and every OTHER agent's one-hot action
                jnp.concatenate([global_obs, jnp.delete(joint_one_hot, i, axis=1).reshape(batch, -1)], axis=-1)
                for i in range(n_agents)])
            return jax.vmap(_mlp, out_axes=1)(critic, inputs)
        # "joint": the first layer is linear in the one-hot actions, so swapping agent i's action is a row swap
        x = jnp.concatenate([global_obs, joint_one_hot.reshape(batch, -1)], axis=-1)

        def for_agent(i):
            layers = jax.tree_util.tree_map(lambda p: p[critic_index[i]], critic)
            w1, b1 = layers[0]
            block = w1[game.state_size + i * n_actions : game.state_size + (i + 1) * n_actions]  # [n, h]
            base = x @ w1 + b1 - joint_one_hot[:, i] @ block  # [B, h]
            hidden = jax.nn.relu(base[:, None, :] + block[None])  # [B, n, h]
            return _mlp(layers[1:], hidden)[..., 0] if len(layers) > 1 else hidden[..., 0]

        return jnp.stack([for_agent(i) for i in range(n_agents)], axis=1)

    def critic_values(critic, global_obs, joint_one_hot):
        """global_obs [B, G], joint_one_hot [B, A, n_actions] -> Q of every critic [B, C]."""
        if config.critic_input == "others":
            return jnp.sum(own_action_table(critic, global_obs, joint_one_hot) * joint_one_hot, axis=-1)
        x = jnp.concatenate([global_obs, joint_one_hot.reshape(joint_one_hot.shape[0], -1)], axis=-1)
        return jax.vmap(lambda layers: _mlp(layers, x)[:, 0], out_axes=1)(critic)

    def update(carry, key, buffer, filled, frozen):
        state = carry
        index_key, target_key, gumbel_key = jax.random.split(key, 3)
        idx = jax.random.randint(index_key, (config.minibatch_size,), 0, filled)
        batch = jax.tree_util.tree_map(lambda x: x[idx], buffer)
        weight = batch["alive"] / jnp.maximum(jnp.mean(batch["alive"]), 1e-6)
        one_hot = jax.nn.one_hot(batch["actions"], n_actions)  # [B, A, n]
        # Critic targets: y_i = r_i + γ (1 - terminal) Q_i'(s', a'), a' ~ target actors.
        next_logits = policy_logits(game, state.target_actor, batch["next_observations"])
        next_actions = jax.random.categorical(target_key, next_logits, axis=-1)
        next_q = critic_values(state.target_critic, batch["next_global"], jax.nn.one_hot(next_actions, n_actions))
        targets = batch["rewards"] + gamma * (1.0 - batch["terminal"])[:, None] * next_q
        targets = jax.lax.stop_gradient(targets)

        def critic_loss(critic):
            q = critic_values(critic, batch["global"], one_hot)
            return jnp.mean(weight[:, None] * (q - targets) ** 2) * num_critics

        c_loss, c_grad = jax.value_and_grad(critic_loss)(state.critic)
        c_updates, c_opt = critic_opt.update(c_grad, state.critic_optimizer, state.critic)
        critic = optax.apply_updates(state.critic, c_updates)

        def actor_loss(actor):
            logits = policy_logits(game, actor, batch["observations"])  # [B, A, n]
            log_probs = jax.nn.log_softmax(logits, axis=-1)
            probs = jnp.exp(log_probs)
            entropy = -jnp.sum(jnp.where(probs > 0, probs * log_probs, 0.0), axis=-1)  # [B, A]
            if config.actor_gradient in ("expected", "boltzmann"):
                # Q_i(s, a_i = b, a_{-i}) for every own action b, [B, A, n]
                q_table = jax.lax.stop_gradient(own_action_table(critic, batch["global"], one_hot))
                if config.actor_gradient == "boltzmann":
                    # KL(softmax(Q_i/α) || π_i): its gradient π − softmax(Q/α) does not vanish when π
                    # has collapsed onto a now-bad action (the softmax policy gradient does).
                    target = jax.nn.softmax(jnp.where(action_mask(game), q_table / config.temperature, -1e9))
                    cross_entropy = -jnp.sum(target * log_probs, axis=-1)
                    return jnp.mean(weight[:, None] * cross_entropy) * n_agents
                value = jnp.sum(probs * q_table, axis=-1)
            else:
                straight = straight_through_gumbel(gumbel_key, logits, config.gumbel_temperature)
                if config.critic_input == "others":  # Q_i(s, a_-i) · straight_i: a_i only at the output
                    value = jnp.sum(own_action_table(critic, batch["global"], one_hot) * straight, axis=-1)
                else:
                    eye = jnp.eye(n_agents)[:, None, :, None]  # [i, 1, j, 1]
                    joint = eye * straight[None] + (1 - eye) * one_hot[None]  # [i, B, A, n]
                    q = jax.vmap(lambda jo: critic_values(critic, batch["global"], jo))(joint)  # [i, B, C]
                    value = jnp.stack([q[i, :, critic_index[i]] for i in range(n_agents)], axis=1)  # [B, A]
            return -jnp.mean(weight[:, None] * (value + config.temperature * entropy)) * n_agents

        a_loss, a_grad = jax.value_and_grad(actor_loss)(state.actor)
        if frozen is not None:  # a frozen team's actors neither take a step nor count in the global-norm clip
            a_grad = _zero_frozen_agents(game, a_grad, frozen)
        a_updates, a_opt = actor_opt.update(a_grad, state.actor_optimizer, state.actor)
        if frozen is not None:  # Adam moments carried from before the freeze would still move them
            a_updates = _zero_frozen_agents(game, a_updates, frozen)
        actor = optax.apply_updates(state.actor, a_updates)
        rate = config.target_update_rate
        new_state = MADDPGState(
            actor, critic, _soft_update(state.target_actor, actor, rate),
            _soft_update(state.target_critic, critic, rate), a_opt, c_opt,
        )
        return new_state, jnp.stack([c_loss, a_loss])

    def flatten_rollout(data, reward_params):
        rewards = team_rewards(game, data, reward_params)[..., jnp.asarray(team_of_critic)]  # [N, T, C]
        flat = lambda x: x.reshape((chunk,) + x.shape[2:])
        return dict(
            observations=flat(data.observations),
            next_observations=flat(data.next_observations),
            **{"global": flat(data.global_observations)},
            next_global=flat(data.next_global_observations),
            actions=flat(data.actions),
            rewards=flat(rewards),
            terminal=flat(data.terminal),
            alive=flat(data.alive),
        ), rewards

    def train(key: jax.Array, state: MADDPGState, reward_params: RewardParams):
        def cycle(carry, inputs):
            state, buffer = carry
            cycle_index, cycle_key = inputs
            rollout_key, update_key = jax.random.split(cycle_key)
            data = rollout(rollout_key, game, make_policy(game, state.actor, exploration=config.exploration),
                           config.num_envs)
            flat, rewards = flatten_rollout(data, reward_params)
            start = (cycle_index % config.buffer_iterations) * chunk
            buffer = jax.tree_util.tree_map(
                lambda buf, new: jax.lax.dynamic_update_slice_in_dim(buf, new, start, axis=0), buffer, flat
            )
            filled = jnp.minimum(cycle_index + 1, config.buffer_iterations) * chunk
            state, losses = jax.lax.scan(
                lambda s, k: update(s, k, buffer, filled, reward_params.frozen), state,
                jax.random.split(update_key, config.updates_per_iteration),
            )
            weights = gamma ** jnp.arange(game.horizon)
            team_return = jnp.mean(jnp.einsum("t,nta->na", weights, rewards), axis=0)
            team_return = jnp.stack([team_return[0], team_return[-1]])
            return (state, buffer), dict(team_return=team_return, losses=jnp.mean(losses, axis=0))

        example = jax.eval_shape(  # buffer dtypes follow the game's arrays (float32 or float64)
            lambda k: flatten_rollout(rollout(k, game, make_policy(game, state.actor), config.num_envs),
                                      reward_params)[0], key)
        buffer0 = jax.tree_util.tree_map(lambda x: jnp.zeros((capacity,) + x.shape[1:], x.dtype), example)
        keys = jax.random.split(key, config.iterations)
        (state, _), metrics = jax.lax.scan(cycle, (state, buffer0), (jnp.arange(config.iterations), keys))
        return state, metrics

    return train
