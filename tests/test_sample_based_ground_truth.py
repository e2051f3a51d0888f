"""Ground-truth tests of the sample-based core (the games, rollout, MADDPG, the sample-based back-end),
each closing a gap that mutation testing found (session 30). Every expected value is hand-computed from the
documented definitions (docs/hri.md, docs/mpe.md, module docstrings), brute force, or a tiny deterministic
game whose Monte-Carlo estimates are exact; none re-runs the code under test to get its expectation."""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gsiirl.games.continuous import ContinuousGame, make_reward_params, rollout, team_rewards
from gsiirl.games.hri import HRIState, make_hri_game, segment_min_distance, true_parameters


# ---------------------------------------------------------------------------------------------- HRI
def _state(robot, human, ra=False, ha=False):
    return HRIState(jnp.asarray(robot, jnp.float32), jnp.asarray(human, jnp.float32),
                    jnp.asarray(ra), jnp.asarray(ha))


def _action(vx, vy, levels=5, max_speed=0.1):
    values = np.linspace(-max_speed, max_speed, levels)
    return jnp.asarray([int(np.argmin(abs(values - vx)) * levels + np.argmin(abs(values - vy)))])


def test_min_distance_of_agents_moving_apart_is_the_starting_distance():
    """Closest approach over the step's straight-line motion, s ∈ [0, 1]: agents moving apart are
    closest at s = 0 (not at an extrapolated s < 0), so no collision is counted."""
    game = make_hri_game()
    s = _state([0.0, 0.0], [0.2, 0.0])
    la, ea = _action(-0.1, 0.0), _action(0.1, 0.0)  # robot left, human right: apart
    nxt, _ = game.step(s, la, ea)
    assert float(segment_min_distance(s.robot, s.human, nxt.robot, nxt.human)) == pytest.approx(0.2, abs=1e-6)
    # no collision, human at full speed (not slow): r_ld = 0, r_e = -||(-0.5, 0) - (0.3, 0)|| = -0.8
    assert float(game.learner_dependent_reward(s, la, ea, nxt)) == pytest.approx(0.0, abs=1e-6)
    assert float(game.expert_reward(s, la, ea, nxt)) == pytest.approx(-0.8, abs=1e-6)


def test_segment_min_distance_against_brute_force():
    """Random segment pairs: the minimum of ‖(p0 − q0) + s((p1 − p0) − (q1 − q0))‖ over a fine grid of
    s ∈ [0, 1] (brute force) equals the closed form."""
    rng = np.random.default_rng(0)
    grid = np.linspace(0.0, 1.0, 20001)[:, None]
    for _ in range(200):
        p0, q0 = rng.uniform(-0.5, 0.5, 2), rng.uniform(-0.5, 0.5, 2)
        p1, q1 = p0 + rng.uniform(-0.1, 0.1, 2), q0 + rng.uniform(-0.1, 0.1, 2)
        brute = np.linalg.norm((p0 - q0) + grid * ((p1 - p0) - (q1 - q0)), axis=1).min()
        got = float(segment_min_distance(*(jnp.asarray(v, jnp.float32) for v in (p0, q0, p1, q1))))
        assert got == pytest.approx(brute, abs=2e-6)


def test_collision_is_strictly_below_the_safe_distance():
    """docs/hri.md: a collision is a minimum distance *below* safe_distance. Exactly representable
    numbers (steps of 0.125 and 0.25) put the closest approach exactly on the threshold: no collision."""
    game = make_hri_game({"max_speed": 0.25, "safe_distance": 0.25})
    s = _state([0.0, 0.0], [0.5, 0.0])
    la, ea = _action(0.25, 0.0, max_speed=0.25), _action(0.0, 0.0, max_speed=0.25)
    nxt, _ = game.step(s, la, ea)
    assert float(segment_min_distance(s.robot, s.human, nxt.robot, nxt.human)) == 0.25
    # human stands still: slow = 1 -> r_ld = -0.2 only; r_e = -||(-0.5,0)-(0.5,0)|| = -1 (no collision term)
    assert float(game.learner_dependent_reward(s, la, ea, nxt)) == pytest.approx(-0.2, abs=1e-6)
    assert float(game.expert_reward(s, la, ea, nxt)) == pytest.approx(-1.0, abs=1e-6)
    closer = _state([0.0, 0.0], [0.375, 0.0])  # closest approach 0.125 < 0.25: a collision
    nxt, _ = game.step(closer, la, ea)
    assert float(game.learner_dependent_reward(closer, la, ea, nxt)) == pytest.approx(-1.2, abs=1e-6)


def test_a_parked_human_is_neither_slow_nor_moving():
    """An arrived (parked) human has velocity 0 whatever its action, and slowness only counts while the
    human has not arrived: r_ld = 0 without a collision, φ_l's slowness and φ_e's speed are 0."""
    game = make_hri_game()
    s = _state([0.0, -0.3], [-0.5, 0.0], ha=True)
    la, ea = _action(0.0, 0.1), _action(0.1, 0.1)  # the human asks for full speed: ignored
    nxt, done = game.step(s, la, ea)
    np.testing.assert_allclose(nxt.human, [-0.5, 0.0], atol=1e-7)
    assert not bool(done)  # the robot has not arrived
    assert float(game.learner_dependent_reward(s, la, ea, nxt)) == pytest.approx(0.0, abs=1e-6)
    phi_l, phi_e = game.learner_features(s, la, ea, nxt), game.expert_features(s, la, ea, nxt)
    assert float(phi_l[1]) == 0.0 and float(phi_e[2]) == 0.0
    assert float(phi_e[0]) == pytest.approx(0.0, abs=1e-7)  # at its goal
    # the same human not yet arrived but standing still is fully slow (slow = 1)
    moving = _state([0.0, -0.3], [-0.3, 0.0])
    nxt, _ = game.step(moving, la, _action(0.0, 0.0))
    assert float(game.learner_dependent_reward(moving, la, _action(0.0, 0.0), nxt)) == pytest.approx(-0.2, abs=1e-6)


def test_episode_ends_only_when_both_have_arrived():
    game = make_hri_game()
    s = _state([0.0, 0.42], [0.0, 0.0])  # the robot arrives this step, the human is far from its goal
    la, ea = _action(0.0, 0.1), _action(-0.1, 0.0)
    nxt, done = game.step(s, la, ea)
    assert bool(nxt.robot_arrived) and not bool(nxt.human_arrived) and not bool(done)
    s = _state([0.3, 0.5], [-0.42, 0.0])  # only the human arrives
    nxt, done = game.step(s, _action(0.0, 0.0), _action(-0.1, 0.0))
    assert bool(nxt.human_arrived) and not bool(nxt.robot_arrived) and not bool(done)


def test_true_parameters_reproduce_rewards_in_a_collision():
    """θl* = (collision_penalty, slowness_weight, 0), θe* = (1, expert_collision_penalty, 0) (docs/hri.md)
    on a transition with a collision (d_min = 0.05, soft collision σ(5) ≈ 0.9933) and a half-speed human."""
    game = make_hri_game()
    theta_l, theta_e = true_parameters()
    s = _state([0.0, 0.0], [0.2, 0.0])
    la, ea = _action(0.1, 0.0), _action(-0.05, 0.0)
    nxt, _ = game.step(s, la, ea)
    r_ld = float(game.learner_dependent_reward(s, la, ea, nxt))
    r_e = float(game.expert_reward(s, la, ea, nxt))
    assert r_ld == pytest.approx(-1.0 - 0.2 * 0.5, abs=1e-6) and r_e == pytest.approx(-0.65 - 0.5, abs=1e-6)
    assert float(game.learner_features(s, la, ea, nxt) @ theta_l) == pytest.approx(r_ld, abs=1e-2)
    assert float(game.expert_features(s, la, ea, nxt) @ theta_e) == pytest.approx(r_e, abs=1e-2)
    other_l, other_e = true_parameters({"collision_penalty": 3.0, "expert_collision_penalty": 2.0})
    np.testing.assert_allclose(other_l, [3.0, 0.2, 0.0])
    np.testing.assert_allclose(other_e, [1.0, 2.0, 0.0])


def test_observations_hand_computed():
    """docs/hri.md: own position, other's position, vector to own goal, vector to the other."""
    game = make_hri_game()
    robot, human = game.observations(_state([0.1, -0.2], [0.4, 0.3]))
    np.testing.assert_allclose(robot, [0.1, -0.2, 0.4, 0.3, -0.1, 0.7, 0.3, 0.5], atol=1e-6)
    np.testing.assert_allclose(human, [0.4, 0.3, 0.1, -0.2, -0.9, -0.3, -0.3, -0.5], atol=1e-6)


# ---------------------------------------------------------------------------------------------- rollout
def _counter_game(done: bool) -> ContinuousGame:
    """One learner, one expert; the state counts steps (x' = x + 1 + action); terminates at once if done."""
    x = lambda s: s["x"]
    feature = lambda s, la, ea, n: n["x"][None]
    return ContinuousGame(
        num_learner_agents=1, num_expert_agents=1, num_actions=(2, 2), observation_sizes=(1, 1), state_size=1,
        horizon=4, discount=0.5, learner_feature_size=1, expert_feature_size=1,
        reset=lambda key: {"x": jnp.float32(0.0)},
        step=lambda s, la, ea: ({"x": s["x"] + 1.0 + la[0]}, jnp.asarray(done)),
        observations=lambda s: (x(s)[None], x(s)[None]), global_observation=lambda s: x(s)[None],
        learner_independent_reward=lambda s, la, ea, n: n["x"], learner_dependent_reward=lambda s, la, ea, n: n["x"],
        expert_reward=lambda s, la, ea, n: -n["x"], learner_features=feature, expert_features=feature,
        expert_reward_scale=3.0)


def test_state_is_frozen_after_termination():
    """rollout's docstring: once an episode terminates the state is frozen (the trajectory stays put)."""
    policy = lambda key, obs: jnp.zeros(2, jnp.int32)
    data = rollout(jax.random.PRNGKey(0), _counter_game(True), policy, 2)
    np.testing.assert_array_equal(data.global_trajectory[:, :, 0], [[0, 1, 1, 1, 1]] * 2)
    live = rollout(jax.random.PRNGKey(0), _counter_game(False), policy, 1)
    np.testing.assert_array_equal(live.global_trajectory[0, :, 0], [0, 1, 2, 3, 4])


def test_team_rewards_apply_the_expert_scale():
    """r_e^θe = expert_reward_scale · φ_e·θe (scale 3 here): x' = 1, 2, 3, 4, θe = 0.5 -> 1.5 x'."""
    game = _counter_game(False)
    data = rollout(jax.random.PRNGKey(0), game, lambda key, obs: jnp.zeros(2, jnp.int32), 1)
    rewards = team_rewards(game, data, make_reward_params(jnp.asarray([2.0]), jnp.asarray([0.5])))
    np.testing.assert_allclose(rewards[0, :, 1], [1.5, 3.0, 4.5, 6.0])
    np.testing.assert_allclose(rewards[0, :, 0], [1 + 2, 2 + 4, 3 + 6, 4 + 8])  # r_li + 1.0 · φ_l·θl


def test_mpe_true_thetas_reproduce_the_true_rewards_with_the_feature_scale():
    """docs/mpe.md: with make_game's feature_scale = 2, θe* = (−0.5, 0, …) and θl* = (+0.5, 0, …) give
    exactly the true r_e and r_ld (r^θ = feature_scale · φ·θ) on any transition."""
    from gsiirl.games import mpe

    game = mpe.make_game(feature_scale=2.0)
    data = jax.jit(lambda k: rollout(k, game, mpe.uniform_random_policy, 2))(jax.random.PRNGKey(0))
    unit = jnp.zeros(6).at[0].set(0.5)
    modelled = team_rewards(game, data, make_reward_params(unit, -unit))
    true = team_rewards(game, data, make_reward_params(unit, -unit, True, True))
    np.testing.assert_allclose(modelled, true, atol=1e-5)
    assert float(jnp.abs(true).min()) > 0.0


# ---------------------------------------------------------------------------------------------- back-end
# A deterministic two-player walk: x (learner) and y (expert) move by −0.1 / 0 / +0.1; the actors below
# have observation-independent logits, so with logit 30 on one action every episode is the same and the
# Monte-Carlo estimates are exact hand-computable numbers.
WALK = jnp.asarray([-0.1, 0.0, 0.1], jnp.float32)


class Walk(NamedTuple):
    x: jax.Array
    y: jax.Array


def _walk_game() -> ContinuousGame:
    def step(s, la, ea):
        return Walk(s.x + WALK[la[0]], s.y + WALK[ea[0]]), jnp.asarray(False)

    both = lambda s: jnp.stack([s.x, s.y])
    return ContinuousGame(
        num_learner_agents=1, num_expert_agents=1, num_actions=(3, 3), observation_sizes=(2, 2), state_size=2,
        horizon=3, discount=0.9, learner_feature_size=2, expert_feature_size=2,
        reset=lambda key: Walk(jnp.float32(0.3), jnp.float32(-0.2)), step=step,
        observations=lambda s: (both(s), both(s)), global_observation=both,
        learner_independent_reward=lambda s, la, ea, n: -jnp.abs(n.x),
        learner_dependent_reward=lambda s, la, ea, n: -0.5 * jnp.abs(n.x - n.y),
        expert_reward=lambda s, la, ea, n: -jnp.abs(n.y),
        learner_features=lambda s, la, ea, n: jnp.stack([n.x, n.y]),
        expert_features=lambda s, la, ea, n: jnp.stack([n.y, jnp.float32(1.0)]),
        learner_reward_scale=2.0, expert_reward_scale=3.0)


GAMMA_T = np.asarray([1.0, 0.9, 0.81])


def _with_logits(state, logits):
    """The MADDPG state with observation-independent policies: last layer W = 0, b = logits [A, n]."""
    *hidden, (w, b) = state.actor
    return state._replace(actor=hidden + [(jnp.zeros_like(w), jnp.asarray(logits, jnp.float32))])


def _frozen_backend(**overrides):
    """A back-end whose fine-tunes cannot move the policies (learning rates 0)."""
    from gsiirl.algorithms.sample_based import SampleBasedConfig, SampleBasedGSIIRL
    from gsiirl.solvers.maddpg import MADDPGConfig

    maddpg = MADDPGConfig(hidden=4, num_envs=2, iterations=1, updates_per_iteration=1, buffer_iterations=1,
                          minibatch_size=4, actor_learning_rate=0.0, critic_learning_rate=0.0)
    config = SampleBasedConfig(**{**dict(maddpg=maddpg, warmup_iterations=1, data_episodes=3, evaluation_episodes=3,
                                         spsa_samples=1, temperature=2.0, radius=1.5), **overrides})
    return SampleBasedGSIIRL(_walk_game(), config)


RIGHT_LEFT = [[0.0, 0.0, 30.0], [30.0, 0.0, 0.0]]  # learner always +0.1, expert always −0.1
LEFT_RIGHT = [[30.0, 0.0, 0.0], [0.0, 0.0, 30.0]]


def _hand(x, y):
    """Hand-computed μ_l, μ_e, f, undiscounted returns of the deterministic episode x', y' (3 steps)."""
    x, y = np.asarray(x), np.asarray(y)
    learner_true = -np.abs(x) - 0.5 * np.abs(x - y)
    return dict(mu_l=2.0 * np.asarray([GAMMA_T @ x, GAMMA_T @ y]), mu_e=3.0 * np.asarray([GAMMA_T @ y, GAMMA_T.sum()]),
                upper_objective=GAMMA_T @ learner_true, learner_return=learner_true.sum(),
                expert_return=-np.abs(y).sum())


MODEL = _hand([0.4, 0.5, 0.6], [-0.3, -0.4, -0.5])  # RIGHT_LEFT from (0.3, −0.2)
INTERACTION = _hand([0.2, 0.1, 0.0], [-0.1, 0.0, 0.1])  # LEFT_RIGHT


def test_measurement_of_a_deterministic_policy_is_hand_computed():
    """f = E[Σ γ^t (r_li + r_ld)] (discounted, eq. 2), μ = scale · E[Σ γ^t φ], returns undiscounted."""
    from gsiirl.solvers.maddpg import init_state

    backend = _frozen_backend()
    state = _with_logits(init_state(jax.random.PRNGKey(0), backend.game, backend.config.maddpg), RIGHT_LEFT)
    measured = backend._measure_impl(jax.random.PRNGKey(1), state.actor, False, 4)
    for name, value in MODEL.items():
        np.testing.assert_allclose(measured[name], value, rtol=1e-5, atol=1e-6, err_msg=name)
    assert float(measured["episode_length"]) == 3.0


@pytest.mark.parametrize("cross_term", ["data_dependent", "fixed_data"])
def test_spsa_batch_returns_lemma_1_and_3_gradients_and_f(cross_term):
    """The batched evaluate of the SPSA contract, with policies that training cannot move: every member's
    f is the model policy's; ∇θe L = (μ_e(π) − μ̂_e)/α (Lemma 1), ∇θl L = (μ_l(π) − μ̂_l)/α (Lemma 3), where
    with the data-dependent cross term rows 0 and 1 take μ̂ from the interaction policy's own rollouts."""
    from gsiirl.solvers.maddpg import init_state

    backend = _frozen_backend(cross_term=cross_term)
    fresh = init_state(jax.random.PRNGKey(0), backend.game, backend.config.maddpg)
    model, interaction = _with_logits(fresh, RIGHT_LEFT), _with_logits(fresh, LEFT_RIGHT)
    thetas_l = jax.random.normal(jax.random.PRNGKey(2), (4, 2)) * 0.3
    thetas_e = jax.random.normal(jax.random.PRNGKey(3), (4, 2)) * 0.3
    mu_hat_l, mu_hat_e = jnp.asarray([0.1, 0.2]), jnp.asarray([0.3, -0.4])
    out = backend._spsa_batch_impl(jax.random.PRNGKey(4), model, interaction, thetas_l, thetas_e, mu_hat_l, mu_hat_e)
    alpha = 2.0
    np.testing.assert_allclose(out.upper_objective, [MODEL["upper_objective"]] * 4, rtol=1e-5)
    data_l = np.stack([INTERACTION["mu_l"]] * 2 + [np.asarray(mu_hat_l)] * 2)
    data_e = np.stack([INTERACTION["mu_e"]] * 2 + [np.asarray(mu_hat_e)] * 2)
    if cross_term == "fixed_data":
        data_l[:2], data_e[:2] = np.asarray(mu_hat_l), np.asarray(mu_hat_e)
    np.testing.assert_allclose(out.expert_loss_gradient, (MODEL["mu_e"] - data_e) / alpha, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out.learner_loss_gradient, (MODEL["mu_l"] - data_l) / alpha, rtol=1e-5, atol=1e-6)


def test_expert_nll_is_the_discounted_expert_log_likelihood_of_the_data():
    """−mean_i Σ_t γ^t alive · ln π_e(a_e^t | s^t), only the expert's actions, with known probabilities."""
    from gsiirl.solvers.maddpg import init_state

    backend = _frozen_backend()
    p_learner, p_expert = np.asarray([0.6, 0.3, 0.1]), np.asarray([0.2, 0.3, 0.5])
    state = _with_logits(init_state(jax.random.PRNGKey(0), backend.game, backend.config.maddpg),
                         np.log(np.stack([p_learner, p_expert])))
    actions = np.asarray([[[0, 2], [1, 0], [2, 1]], [[0, 1], [0, 2], [1, 0]]])  # [N, T, A]
    alive = np.asarray([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    observations = jax.random.normal(jax.random.PRNGKey(1), (2, 3, 2, 2))
    nll = backend._expert_nll(state.actor, (observations, jnp.asarray(actions), jnp.asarray(alive)))
    expected = -np.mean([(GAMMA_T * alive[i] * np.log(p_expert[actions[i, :, 1]])).sum() for i in range(2)])
    assert float(nll) == pytest.approx(expected, rel=1e-5)


def test_outer_step_is_projected_ascent_with_a_clipped_direction():
    """Line 15: θl + α·clip(∇F) (ascent: F is maximised), then the projection onto the ball."""
    theta, direction = jnp.asarray([0.2, 0.1]), jnp.asarray([1.0, -2.0])
    free = _frozen_backend()._ascent(0.1)
    np.testing.assert_allclose(free(theta, direction), [0.3, -0.1], atol=1e-6)
    clipped = _frozen_backend(max_hypergradient_norm=1.0)._ascent(0.1)
    np.testing.assert_allclose(clipped(theta, jnp.asarray([3.0, 4.0])), [0.26, 0.18], atol=1e-6)
    np.testing.assert_allclose(free(jnp.asarray([1.4, 0.0]), jnp.asarray([5.0, 0.0])), [1.5, 0.0], atol=1e-6)


def test_the_pair_is_interaction_first_then_model():
    """Member 0 (interaction): the learner's θl with the expert's TRUE r_e; member 1 (model): θl and θe."""
    pair = _frozen_backend()._pair(jnp.asarray([0.1, 0.2]), jnp.asarray([0.3, 0.4]))
    np.testing.assert_array_equal(pair.use_true_e, [1.0, 0.0])
    np.testing.assert_array_equal(pair.use_true_ld, [0.0, 0.0])
    np.testing.assert_allclose(pair.theta_l, [[0.1, 0.2]] * 2)
    np.testing.assert_allclose(pair.theta_e, [[0.3, 0.4]] * 2)


def test_ma_irl_update_descends_both_likelihood_gradients():
    """MA-IRL: θ ← Π(θ − β((μ − μ̂)/α + λθ)) for both players (Lemmas 1 and 3)."""
    backend = _frozen_backend(inner_step_size=0.1, regularization=0.5)
    theta_l, theta_e = jnp.asarray([0.2, -0.1]), jnp.asarray([0.0, 0.4])
    mu_l, mu_e, hat_l, hat_e = (jnp.asarray(v) for v in ([1.0, 0.0], [0.0, -1.0], [0.0, 2.0], [1.0, 1.0]))
    new_l, new_e = backend._ma_irl_update(theta_l, theta_e, mu_l, mu_e, hat_l, hat_e)
    # α = 2: θl − 0.1((1, −2)/2 + 0.5 θl) = (0.2 − 0.06, −0.1 + 0.105); θe − 0.1((−1, −2)/2 + 0.5 θe)
    np.testing.assert_allclose(new_l, [0.14, 0.005], atol=1e-6)
    np.testing.assert_allclose(new_e, [0.05, 0.48], atol=1e-6)


@pytest.mark.filterwarnings("ignore:gsiirl. outer iteration .*exactly 0:RuntimeWarning")
def test_gsiirl_collects_the_data_with_the_interaction_pair():
    """D(θl) comes from the interaction pair (member 0: learner + simulated expert on its true r_e), not
    from the model pair. Frozen policies make it exact: the interaction expert always steps right (action 2),
    the model expert puts probability 0.5 on it, so the model's expert loss on D is −Σ_t γ^t ln 0.5."""
    from gsiirl.solvers.maddpg import init_state

    backend = _frozen_backend()
    fresh = init_state(jax.random.PRNGKey(0), backend.game, backend.config.maddpg)
    model_logits = np.log([[1 / 3, 1 / 3, 1 / 3], [0.2, 0.3, 0.5]])
    members = [_with_logits(fresh, LEFT_RIGHT), _with_logits(fresh, model_logits)]
    backend._init_states = lambda key, size: jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *members)
    history, _ = backend.run("gsiirl", jax.random.PRNGKey(0), 1)
    assert history[0]["expert_loss"] == pytest.approx(-GAMMA_T.sum() * math.log(0.5), rel=1e-5)
    assert history[0]["interaction_expert_return"] == pytest.approx(INTERACTION["expert_return"], rel=1e-5)


# ---------------------------------------------------------------------------------------------- MADDPG
def _still_game(done: bool, learner_reward: float = 1.0) -> ContinuousGame:
    """Nothing moves (one state), 2 actions each, learner paid ``learner_reward`` per step, expert 0;
    terminates after the first step if ``done``."""
    const = lambda s: jnp.ones(1) * s
    zero = lambda s, la, ea, n: jnp.float32(0.0)
    return ContinuousGame(
        num_learner_agents=1, num_expert_agents=1, num_actions=(2, 2), observation_sizes=(1, 1), state_size=1,
        horizon=5, discount=0.9, learner_feature_size=1, expert_feature_size=1,
        reset=lambda key: jnp.float32(1.0), step=lambda s, la, ea: (s, jnp.asarray(done)),
        observations=lambda s: (const(s), const(s)), global_observation=const,
        learner_independent_reward=lambda s, la, ea, n: jnp.float32(learner_reward),
        learner_dependent_reward=zero, expert_reward=zero,
        learner_features=lambda s, la, ea, n: jnp.zeros(1), expert_features=lambda s, la, ea, n: jnp.zeros(1))


def _constant_output(layers, value):
    """An MLP (stacked over members) whose output is ``value`` everywhere: last layer W = 0, b = value."""
    *hidden, (w, b) = layers
    return hidden + [(jnp.zeros_like(w), jnp.full_like(b, value))]


def _q_values(critic, member):
    """Q of critic ``member`` at the only state for the 4 joint actions, by a hand-written forward pass of
    the documented critic Q_i(global observation, one-hot actions of all agents) (two ReLU hidden layers)."""
    out = []
    for a_l in range(2):
        for a_e in range(2):
            x = np.concatenate([[1.0], np.eye(2)[a_l], np.eye(2)[a_e]])
            for depth, (w, b) in enumerate(critic):
                x = x @ np.asarray(w[member]) + np.asarray(b[member])
                x = np.maximum(x, 0.0) if depth < len(critic) - 1 else x
            out.append(float(x[0]))
    return np.asarray(out)


def _critic_config():
    from gsiirl.solvers.maddpg import MADDPGConfig

    return MADDPGConfig(hidden=16, num_envs=8, iterations=15, updates_per_iteration=20, buffer_iterations=2,
                        minibatch_size=64, actor_learning_rate=0.0, critic_learning_rate=0.02,
                        target_update_rate=1e-9, exploration=0.5)


@pytest.mark.parametrize("done", [True, False])
def test_critic_regresses_on_the_bootstrapped_target_of_the_target_critic(done):
    """With the target critic frozen at Q' ≡ 2 (τ ≈ 0) the critic targets are y = r + γ (1 − terminal) · 2 on
    the live transitions only. Terminating at once: learner y = 1, expert y = 0. Never terminating:
    learner y = 1 + 0.9 · 2 = 2.8, expert 1.8 (a critic bootstrapping from itself would stay near 0)."""
    from gsiirl.solvers.maddpg import init_state, make_train

    game, config = _still_game(done), _critic_config()
    state = init_state(jax.random.PRNGKey(0), game, config)
    state = state._replace(critic=_constant_output(state.critic, 0.0),
                           target_critic=_constant_output(state.target_critic, 2.0))
    params = make_reward_params(jnp.zeros(1), jnp.zeros(1), True, True)
    state, _ = jax.jit(make_train(game, config))(jax.random.PRNGKey(1), state, params)
    expected = (1.0, 0.0) if done else (2.8, 1.8)
    for member, value in enumerate(expected):
        np.testing.assert_allclose(_q_values(state.critic, member), value, atol=0.15, err_msg=f"critic {member}")


def test_target_networks_are_polyak_averages():
    """Learning rates 0 keep the online networks fixed; starting the targets at 0, after K updates with
    rate τ they are (1 − (1 − τ)^K) · online (K = iterations × updates_per_iteration = 6, τ = 0.1)."""
    from gsiirl.solvers.maddpg import MADDPGConfig, init_state, make_train

    game = _still_game(False)
    config = MADDPGConfig(hidden=4, num_envs=2, iterations=2, updates_per_iteration=3, buffer_iterations=1,
                          minibatch_size=4, actor_learning_rate=0.0, critic_learning_rate=0.0, target_update_rate=0.1)
    state = init_state(jax.random.PRNGKey(0), game, config)
    zeros = lambda tree: jax.tree_util.tree_map(jnp.zeros_like, tree)
    state = state._replace(target_actor=zeros(state.actor), target_critic=zeros(state.critic))
    params = make_reward_params(jnp.zeros(1), jnp.zeros(1), True, True)
    new, _ = make_train(game, config)(jax.random.PRNGKey(1), state, params)
    factor = 1.0 - 0.9**6
    for target, online in ((new.target_actor, state.actor), (new.target_critic, state.critic)):
        for got, want in zip(jax.tree_util.tree_leaves(target), jax.tree_util.tree_leaves(online)):
            np.testing.assert_allclose(got, factor * np.asarray(want), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("actor_gradient", ["expected", "gumbel"])
def test_entropy_bonus_raises_the_entropy_when_q_is_constant(actor_gradient):
    """With a critic that is constant (Q ≡ 0, frozen), the actor's objective is only the entropy bonus
    temperature · H(π): a peaked policy must become more uniform."""
    from gsiirl.solvers.maddpg import MADDPGConfig, init_state, make_train, policy_logits

    game = _still_game(False)
    config = MADDPGConfig(hidden=4, num_envs=4, iterations=2, updates_per_iteration=10, buffer_iterations=1,
                          minibatch_size=16, actor_learning_rate=0.02, critic_learning_rate=0.0, temperature=0.5,
                          actor_gradient=actor_gradient)
    state = init_state(jax.random.PRNGKey(0), game, config)
    state = _with_logits(state, [[2.0, 0.0], [0.0, -2.0]])._replace(
        critic=_constant_output(state.critic, 0.0), target_critic=_constant_output(state.target_critic, 0.0))

    def entropies(actor):
        p = jax.nn.softmax(policy_logits(game, actor, jnp.ones((2, 1))), axis=-1)
        return -np.sum(np.asarray(p * jnp.log(p)), axis=-1)

    params = make_reward_params(jnp.zeros(1), jnp.zeros(1), True, True)
    new, _ = make_train(game, config)(jax.random.PRNGKey(1), state, params)
    before, after = entropies(state.actor), entropies(new.actor)
    assert np.all(after > before + 0.02), (before, after)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 3.0])
def test_straight_through_gumbel_is_a_one_hot_with_the_tempered_softmax_gradient(temperature):
    """Kills a Gumbel-softmax that ignores ``gumbel_temperature`` (the value would be unchanged, the actor's
    gradient not). Ground truth: the definition, with the softmax Jacobian (diag(p) - p pᵀ) / τ in NumPy."""
    from gsiirl.solvers.maddpg import straight_through_gumbel

    key = jax.random.PRNGKey(3)
    logits = jnp.asarray([[0.3, -1.2, 0.8, 0.1], [1.5, 0.2, -0.4, 0.0]])
    weights = np.asarray([[1.0, -2.0, 0.5, 3.0], [0.2, 0.7, -1.0, 0.4]])
    sample = np.asarray(straight_through_gumbel(key, logits, temperature))
    noisy = np.asarray(logits) + np.asarray(jax.random.gumbel(key, logits.shape))
    np.testing.assert_allclose(sample, np.eye(4)[np.argmax(noisy, axis=-1)], atol=1e-6)
    gradient = np.asarray(jax.grad(lambda l: jnp.sum(weights * straight_through_gumbel(key, l, temperature)))(logits))
    for row in range(2):
        p = np.exp(noisy[row] / temperature - np.max(noisy[row] / temperature))
        p /= p.sum()
        jacobian = (np.diag(p) - np.outer(p, p)) / temperature
        np.testing.assert_allclose(gradient[row], jacobian.T @ weights[row], rtol=1e-5, atol=1e-6)
