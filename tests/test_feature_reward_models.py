"""Nonlinear reward models on the sample-based back-end (``ContinuousGame.*_reward_model``): the MLP against an
independent NumPy forward pass, μ(θ) = E[Σ_t γ^t ∇_θ r^θ] against finite differences and against exact
enumeration of a small discretised HRI game, masking after termination, validation by name, and GSIIRL / MA-IRL
runs whose θ has the model's size and whose checkpoint knows the model."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gsiirl.algorithms.sample_based import SampleBasedGSIIRL
from gsiirl.games.continuous import (
    Rollout, expected_gradient, feature_expectations, gradient_statistics, make_reward_params, rollout, team_rewards,
    validate_game,
)
from gsiirl.games.hri import make_hri_game
from gsiirl.rewards.feature_models import LinearFeatureReward, MLPFeatureReward
from gsiirl.solvers.maddpg import init_state, make_policy, policy_logits

pytestmark = pytest.mark.filterwarnings("ignore:gsiirl. outer iteration .*exactly 0:RuntimeWarning")


def _numpy_mlp(theta, features, hidden, scale=1.0):
    """w2 · tanh(W1 φ + b1) + b2 in float64 NumPy, from the documented θ layout (W1, b1, w2, b2)."""
    theta, features = np.asarray(theta, np.float64), np.asarray(features, np.float64)
    n = features.shape[-1]
    w1 = theta[: hidden * n].reshape(hidden, n)
    b1, w2, b2 = theta[hidden * n: hidden * n + hidden], theta[hidden * n + hidden: -1], theta[-1]
    return scale * (np.tanh(features @ w1.T + b1) @ w2 + b2)


def _rollout(features_l, features_e, alive, discount_steps=3) -> Rollout:
    n, t = alive.shape
    z = jnp.zeros((n, t))
    return Rollout(observations=jnp.zeros((n, t, 2, 1)), global_observations=jnp.zeros((n, t, 1)),
                   next_observations=jnp.zeros((n, t, 2, 1)), next_global_observations=jnp.zeros((n, t, 1)),
                   actions=jnp.zeros((n, t, 2), jnp.int32), alive=alive, terminal=z,
                   learner_independent_reward=z, learner_dependent_reward=z, expert_reward=z,
                   learner_features=features_l * alive[..., None], expert_features=features_e * alive[..., None],
                   global_trajectory=jnp.zeros((n, t + 1, 1)))


class _Game:  # the fields the estimators read
    discount = 0.5
    learner_feature_size, expert_feature_size = 1, 2
    learner_reward_scale, expert_reward_scale = 1.0, 1.0

    def __init__(self, learner_model=None, expert_model=None):
        self.learner_reward_model, self.expert_reward_model = learner_model, expert_model


RNG = np.random.default_rng(0)
ALIVE = jnp.asarray([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])  # episode 2 terminates after its first step
DATA = _rollout(jnp.asarray(RNG.normal(size=(2, 3, 1))), jnp.asarray(RNG.normal(size=(2, 3, 2))), ALIVE)


def test_mlp_reward_equals_an_independent_numpy_forward_pass():
    model = MLPFeatureReward(2, hidden=5, scale=0.5)
    assert model.num_params == 5 * 2 + 2 * 5 + 1
    theta = RNG.normal(size=model.num_params)
    features = RNG.normal(size=(4, 3, 2))
    np.testing.assert_allclose(model.reward(jnp.asarray(theta), jnp.asarray(features)),
                               _numpy_mlp(theta, features, 5, 0.5), rtol=1e-10)


def test_expected_gradient_equals_finite_differences_of_the_modelled_discounted_return():
    """μ_e(θ) is the gradient of mean_n Σ_t γ^t alive r^θ(φ_nt): central differences of that, in NumPy."""
    model = MLPFeatureReward(2, hidden=3)
    game = _Game(expert_model=model)
    theta = RNG.normal(size=model.num_params)
    weights = 0.5 ** np.arange(3) * np.asarray(ALIVE)

    def modelled_return(th):
        return float(np.mean(np.sum(weights * _numpy_mlp(th, np.asarray(DATA.expert_features), 3), axis=1)))

    h = 1e-6
    finite = [(modelled_return(theta + h * e) - modelled_return(theta - h * e)) / (2 * h)
              for e in np.eye(model.num_params)]
    _, mu_e = feature_expectations(game, DATA, theta_e=jnp.asarray(theta))
    np.testing.assert_allclose(mu_e, finite, atol=1e-7)
    # the dead steps carry features 0, where an MLP is not 0: they must not count
    assert abs(float(model.reward(jnp.asarray(theta), jnp.zeros(2)))) > 1e-3
    with pytest.raises(ValueError, match=r"theta_e: expected the expert model's parameters \[13\]"):
        feature_expectations(game, DATA)


def test_generic_path_of_a_linear_model_gives_the_linear_feature_expectations():
    """A user's linear model (not LinearFeatureReward, so differentiated like any model) gives the
    hand-computable μ = scale · mean Σ_t γ^t φ that the linear default returns without θ."""

    class MyLinear:
        num_params = 2

        def reward(self, theta, features):
            return 3.0 * features @ theta

        def init(self, key, radius=1.0):
            return jnp.zeros(2)

    features = np.asarray(DATA.expert_features)
    by_hand = 3.0 * np.mean(np.sum(0.5 ** np.arange(3)[None, :, None] * features, axis=1), axis=0)
    _, generic = feature_expectations(_Game(expert_model=MyLinear()), DATA, theta_e=jnp.asarray([0.3, -2.0]))
    _, default = feature_expectations(_Game(expert_model=LinearFeatureReward(2, scale=3.0)), DATA)
    np.testing.assert_allclose(generic, by_hand, rtol=1e-12)
    np.testing.assert_allclose(default, by_hand, rtol=1e-12)


def test_team_rewards_of_an_mlp_are_masked_after_termination():
    model = MLPFeatureReward(2, hidden=3)
    theta_e = RNG.normal(size=model.num_params)
    rewards = team_rewards(_Game(expert_model=model), DATA, make_reward_params(jnp.zeros(1), jnp.asarray(theta_e)))
    expected = _numpy_mlp(theta_e, np.asarray(DATA.expert_features), 3) * np.asarray(ALIVE)
    np.testing.assert_allclose(rewards[..., 1], expected, rtol=1e-6)  # RewardParams hold float32 θ
    assert float(rewards[1, 2, 1]) == 0.0


def test_monte_carlo_mu_of_an_mlp_matches_exact_enumeration():
    """Small discretised HRI (as test_hri's linear check): fixed starts, 4 actions per agent, T = 2. The exact
    μ = Σ_paths P(path) Σ_t γ^t ∇_θ r^θ(φ_t) (per-step gradients by jax.grad) against the Monte-Carlo μ(θ)."""
    options = dict(velocity_levels=2, horizon=2, discount=0.9, robot_start_low=(-0.1, 0.4),
                   robot_start_high=(-0.1, 0.4), human_start_low=(-0.4, 0.1), human_start_high=(-0.4, 0.1))
    model_l, model_e = MLPFeatureReward(3, hidden=4, scale=2.0), MLPFeatureReward(3, hidden=3)
    game = validate_game(make_hri_game(options)._replace(learner_reward_model=model_l, expert_reward_model=model_e))
    theta_l = jax.random.normal(jax.random.PRNGKey(7), (model_l.num_params,))
    theta_e = jax.random.normal(jax.random.PRNGKey(8), (model_e.num_params,))
    state = init_state(jax.random.PRNGKey(3), game)
    actor = [(w, b) for w, b in state.actor[:-1]] + [(state.actor[-1][0] * 100.0, state.actor[-1][1])]
    step_gradient = lambda model, theta: jax.vmap(jax.grad(model.reward), in_axes=(None, 0))
    states = jax.tree_util.tree_map(lambda x: x[None], game.reset(jax.random.PRNGKey(0)))
    prob, alive = jnp.ones(1), jnp.ones(1)
    exact_l, exact_e = jnp.zeros(model_l.num_params), jnp.zeros(model_e.num_params)
    pairs = jnp.asarray(list(itertools.product(range(4), range(4))))

    @jax.jit
    def expand(states, prob, alive, t):
        obs = jax.vmap(lambda st: jnp.stack(game.observations(st)))(states)
        p = jax.nn.softmax(policy_logits(game, actor, obs), axis=-1)
        rep = lambda x: jnp.repeat(x, 16, axis=0)
        states_rep = jax.tree_util.tree_map(rep, states)
        la, ea = jnp.tile(pairs[:, :1], (prob.shape[0], 1)), jnp.tile(pairs[:, 1:], (prob.shape[0], 1))
        nxt, done = jax.vmap(game.step)(states_rep, la, ea)
        q = rep(prob) * (p[:, 0, :][:, pairs[:, 0]] * p[:, 1, :][:, pairs[:, 1]]).reshape(-1)
        weight = (q * rep(alive) * game.discount**t)[:, None]
        phi_l = jax.vmap(game.learner_features)(states_rep, la, ea, nxt)
        phi_e = jax.vmap(game.expert_features)(states_rep, la, ea, nxt)
        return (nxt, q, rep(alive) * (1.0 - done),
                jnp.sum(weight * step_gradient(model_l, theta_l)(theta_l, phi_l), axis=0),
                jnp.sum(weight * step_gradient(model_e, theta_e)(theta_e, phi_e), axis=0))

    for t in range(game.horizon):
        states, prob, alive, dl, de = expand(states, prob, alive, t)
        exact_l, exact_e = exact_l + dl, exact_e + de
    assert 0.0 < float(jnp.sum(prob * (1 - alive))) < 1.0  # some paths terminated early: masking matters
    data = jax.jit(lambda k: rollout(k, game, make_policy(game, actor), 20000))(jax.random.PRNGKey(1))
    mc_l, mc_e = feature_expectations(game, data, theta_l, theta_e)
    np.testing.assert_allclose(mc_l, exact_l, atol=0.02)
    np.testing.assert_allclose(mc_e, exact_e, atol=0.01)
    assert np.abs(exact_l).max() > 0.1 and np.abs(exact_e).max() > 0.1


@pytest.mark.parametrize("change, message", [
    (dict(expert_reward_model=object()), r"expert_reward_model: expected a model with num_params"),
    (dict(learner_reward_model=MLPFeatureReward(3), learner_reward_scale=2.0),
     r"learner_reward_scale: expected 1.0 when learner_reward_model is set"),
    (dict(expert_reward_model=MLPFeatureReward(4)), r"expert_reward_model: reward: failed when traced"),
])
def test_bad_reward_models_are_refused_by_name(change, message):
    with pytest.raises(ValueError, match=message):
        validate_game(make_hri_game({"horizon": 5})._replace(**change))


def test_a_model_whose_reward_is_not_a_scalar_is_refused():
    class Vector:
        num_params = 3

        def reward(self, theta, features):
            return features * theta

        def init(self, key, radius=1.0):
            return jnp.zeros(3)

    with pytest.raises(ValueError, match=r"expert_reward_model: reward: expected a scalar, got shape \(3,\)"):
        validate_game(make_hri_game({"horizon": 5})._replace(expert_reward_model=Vector()))


def test_a_model_for_one_step_only_or_with_a_wrong_init_is_refused_by_name():
    """The back-end calls reward on features [N, T, d] and init(key, radius) for θ [num_params]: a model that
    only handles one step (jnp.dot(θ, φ)) or whose init has another size fails in validate_game, by name."""

    class OneStep:
        num_params = 3

        def reward(self, theta, features):
            return jnp.dot(theta, features)

        def init(self, key, radius=1.0):
            return jnp.zeros(3)

    class WrongInit(OneStep):
        def reward(self, theta, features):
            return features @ theta

        def init(self, key, radius=1.0):
            return jnp.zeros(4)

    with pytest.raises(ValueError, match=r"expert_reward_model: reward: failed when traced on .*float32\[2, 4, 3\]"):
        validate_game(make_hri_game({"horizon": 5})._replace(expert_reward_model=OneStep()))
    with pytest.raises(ValueError, match=r"learner_reward_model: init: expected shape \(3,\) from num_params"):
        validate_game(make_hri_game({"horizon": 5})._replace(learner_reward_model=WrongInit()))


def test_model_sizes_bad_arguments():
    with pytest.raises(ValueError, match="hidden: expected a positive integer"):
        MLPFeatureReward(3, hidden=0)
    with pytest.raises(ValueError, match="num_features: expected an integer >= 1"):
        MLPFeatureReward(0)
    with pytest.raises(ValueError, match="scale: expected a finite number"):
        LinearFeatureReward(3, scale=float("nan"))


@pytest.fixture(scope="module")
def mlp_backend(tiny_hri_backend):
    linear = tiny_hri_backend(reset_worse_than_random=True)
    game = linear.game._replace(learner_reward_model=MLPFeatureReward(3, hidden=2),
                                expert_reward_model=MLPFeatureReward(3, hidden=4))
    return SampleBasedGSIIRL(game, linear.config)


def test_gsiirl_and_ma_irl_run_with_mlp_rewards(mlp_backend, tmp_path):
    size = mlp_backend.reward_models[1].num_params
    assert size == 21 and mlp_backend.reward_models[0].num_params == 11
    histories, _ = mlp_backend.run_seeds("gsiirl", jnp.stack([jax.random.PRNGKey(1), jax.random.PRNGKey(2)]), 2,
                                         checkpoint=tmp_path / "run")
    for history in histories:
        for row in history:
            theta_e = [row[f"theta_e_{i}"] for i in range(size)]
            assert f"theta_e_{size}" not in row and all(math.isfinite(v) for v in row.values())
            assert "theta_l_10" in row and "theta_l_11" not in row
            assert np.linalg.norm(theta_e) <= 1.0 + 1e-6
    # θe moves: the inner loop's Monte-Carlo gradient of the MLP is not zero
    first, last = histories[0][0], histories[0][-1]
    assert any(first[f"theta_e_{i}"] != last[f"theta_e_{i}"] for i in range(size))
    # a checkpoint knows which model it was made with
    other = SampleBasedGSIIRL(mlp_backend.game._replace(expert_reward_model=MLPFeatureReward(3, hidden=5)),
                              mlp_backend.config)
    with pytest.raises(ValueError, match="reward_models"):
        other.run_seeds("gsiirl", jnp.stack([jax.random.PRNGKey(1), jax.random.PRNGKey(2)]), 2,
                        checkpoint=tmp_path / "run")
    history, _ = mlp_backend.run("ma-irl", jax.random.PRNGKey(3), 2)
    assert all(math.isfinite(v) for row in history for v in row.values()) and f"theta_e_{size - 1}" in history[-1]
    with pytest.raises(ValueError, match=r"theta_l, theta_e: expected shapes \(11,\) and \(21,\)"):
        mlp_backend.retrained_evaluation(jax.random.PRNGKey(0), jnp.zeros(3), jnp.zeros(3), 1)


def test_spsa_batch_differentiates_the_data_at_each_members_own_theta(mlp_backend):
    """The SPSA contract's ∇θe L rows are (μ_e(θe_i) − μ̂_e(θe_i)) / α. Two data sets D1, D2 with the same key
    train and roll out the same members, so the rows' difference is −(μ̂_e(θe_i; D1) − μ̂_e(θe_i; D2)) / α,
    each at the member's own θe_i (for an MLP the members' rows differ; one shared θ would not give this)."""
    from dataclasses import replace

    backend = SampleBasedGSIIRL(mlp_backend.game, replace(mlp_backend.config, cross_term="fixed_data",
                                                           temperature=2.0))
    model_e = backend.reward_models[1]
    key = jax.random.PRNGKey(0)
    model_state = jax.tree_util.tree_map(lambda a: a[0], backend._init_states(key, 1))
    thetas_l = jax.random.normal(jax.random.PRNGKey(2), (4, backend.reward_models[0].num_params)) * 0.3
    thetas_e = jax.random.normal(jax.random.PRNGKey(1), (4, model_e.num_params)) * 0.3
    data = [gradient_statistics(backend.game, DATA._replace(
        learner_features=jnp.asarray(RNG.normal(size=(2, 3, 3))) * ALIVE[..., None],
        expert_features=jnp.asarray(RNG.normal(size=(2, 3, 3))) * ALIVE[..., None])) for _ in range(2)]
    rows = [backend._spsa_batch_impl(key, model_state, model_state, thetas_l, thetas_e, *d) for d in data]
    assert rows[0].expert_loss_gradient.shape == (4, model_e.num_params)
    for i in range(4):
        by_hand = -(expected_gradient(model_e, thetas_e[i], data[0][1])
                    - expected_gradient(model_e, thetas_e[i], data[1][1])) / 2.0
        np.testing.assert_allclose(rows[0].expert_loss_gradient[i] - rows[1].expert_loss_gradient[i], by_hand,
                                   atol=1e-9)
        by_hand_l = -(expected_gradient(backend.reward_models[0], thetas_l[i], data[0][0])
                      - expected_gradient(backend.reward_models[0], thetas_l[i], data[1][0])) / 2.0
        np.testing.assert_allclose(rows[0].learner_loss_gradient[i] - rows[1].learner_loss_gradient[i], by_hand_l,
                                   atol=1e-9)
    assert not np.allclose(rows[0].expert_loss_gradient[0] - rows[1].expert_loss_gradient[0],
                           rows[0].expert_loss_gradient[3] - rows[1].expert_loss_gradient[3])  # θ-dependent


def test_spsa_rows_of_both_parts_at_each_members_own_theta_with_data_dependent_rows(mlp_backend):
    """Training stubbed to keep the start state: every member (and both interaction members) then has the same
    policy, so its rollouts give the same statistics S (same measure key). Row i of ∇θe L must be
    (μ_e(θe_i; S) − μ̂_e(θe_i; D)) / α — the members' part at each θe_i too, which the two-data-set test cannot
    see (it cancels there) — and rows 0/1, whose data are the interaction members' S, exactly 0. D has another
    number of episodes than the members' rollouts (data_episodes != evaluation_episodes)."""
    from dataclasses import replace

    backend = SampleBasedGSIIRL(mlp_backend.game, replace(mlp_backend.config, cross_term="data_dependent",
                                                           temperature=2.0, evaluation_episodes=6))
    backend._train = lambda key, state, params: (state, None)
    model_l, model_e = backend.reward_models
    key = jax.random.PRNGKey(0)
    model_state = jax.tree_util.tree_map(lambda a: a[0], backend._init_states(key, 1))
    thetas_l = jax.random.normal(jax.random.PRNGKey(2), (4, model_l.num_params)) * 0.3
    thetas_e = jax.random.normal(jax.random.PRNGKey(1), (4, model_e.num_params)) * 0.3
    data = gradient_statistics(backend.game, rollout(jax.random.PRNGKey(5), backend.game,
                                                     make_policy(backend.game, model_state.actor), 8))
    rows = backend._spsa_batch_impl(key, model_state, model_state, thetas_l, thetas_e, *data)
    same = backend._measure_impl(jax.random.split(key)[1], model_state.actor, False, 6)
    for i in range(4):
        for model, theta, team, got, d in ((model_e, thetas_e[i], "mu_e", rows.expert_loss_gradient[i], data[1]),
                                           (model_l, thetas_l[i], "mu_l", rows.learner_loss_gradient[i], data[0])):
            own = expected_gradient(model, theta, same[team])
            expected = np.zeros_like(own) if i < 2 else (own - expected_gradient(model, theta, d)) / 2.0
            np.testing.assert_allclose(got, expected, atol=1e-6)


def test_hri_options_choose_the_reward_models_by_name():
    from gsiirl.experiments import hri

    default = hri.make_game(hri.DEFAULT_OPTIONS)
    assert default.learner_reward_model is None and default.expert_reward_model is None  # the paper's linear models
    game = hri.make_game({**hri.DEFAULT_OPTIONS, "expert_reward_hidden": 16, "expert_reward_scale": 2.0})
    model = game.expert_reward_model
    assert isinstance(model, MLPFeatureReward) and model.num_params == 81 and model.scale == 2.0
    assert game.expert_reward_scale == 1.0 and game.learner_reward_model is None  # the scale moved into the model
    for bad in (0, 2.5, True, "16"):
        with pytest.raises(ValueError, match=r"option expert_reward_hidden: expected null \(the linear model\)"):
            hri.check_options({**hri.DEFAULT_OPTIONS, "expert_reward_hidden": bad})


def test_mpe_options_choose_the_reward_models_by_name():
    from gsiirl.experiments import mpe

    options = {**mpe.DEFAULT_OPTIONS, "learner_reward_hidden": 4, "feature_scale": 2.0}
    backend = mpe.make_backend(options)
    model_l, model_e = backend.reward_models
    assert isinstance(model_l, MLPFeatureReward) and model_l.num_params == 4 * (6 + 2) + 1 and model_l.scale == 2.0
    assert isinstance(model_e, LinearFeatureReward) and model_e.scale == 2.0 and backend.game.learner_reward_scale == 1.0
    with pytest.raises(ValueError, match=r"option learner_reward_hidden: expected null"):
        mpe.check_options({**mpe.DEFAULT_OPTIONS, "learner_reward_hidden": -1})
