"""GSIIRL end to end on small tabular games (Algorithm 1) and the fit API."""

import warnings

import numpy as np
import pytest

import gsiirl
from gsiirl.algorithms.config import FitResult

SETTINGS = dict(radius=3.0, num_trajectories=200, perturbation_scale=0.3, inner_step_size=0.5, outer_step_size=0.5)


@pytest.fixture(scope="module")
def game():
    return gsiirl.random_tabular_game(1, num_states=5, num_learner_actions=2, num_expert_actions=2, horizon=4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gsiirl_raises_learner_return_and_lowers_expert_kl(game, seed):
    history = gsiirl.fit(game, outer_iters=30, seed=seed, **SETTINGS).history
    learner, kl = np.array(history["learner_return"]), np.array(history["expert_policy_kl"])
    assert learner[-5:].mean() > learner[0]
    assert kl[-5:].mean() < 0.6 * kl[0]
    assert len(learner) == 30 and np.all(np.isfinite(history["hypergradient_norm"]))


def test_same_seed_same_numbers_and_result_round_trip(game, tmp_path):
    a = gsiirl.fit(game, outer_iters=3, seed=7, **SETTINGS)
    b = gsiirl.fit(game, outer_iters=3, seed=7, **SETTINGS)
    for name in ("learner_return", "expert_return", "hypergradient_norm", "lower_level_loss", "epic_distance"):
        assert a.history[name] == b.history[name]
    c = gsiirl.fit(game, outer_iters=3, seed=8, **SETTINGS)
    assert a.history["learner_return"] != c.history["learner_return"]
    json_path, _ = a.save(tmp_path / "run")
    loaded = FitResult.load(json_path)
    np.testing.assert_array_equal(np.asarray(loaded.theta_l), np.asarray(a.theta_l))
    np.testing.assert_array_equal(np.asarray(loaded.policy.expert), np.asarray(a.policy.expert))
    assert loaded.history == a.history
    json_path.write_text("{not json")
    with pytest.raises(ValueError, match="not a readable gsiirl result"):
        FitResult.load(json_path)
    with pytest.raises(FileNotFoundError, match="no such gsiirl result file"):
        FitResult.load(tmp_path / "never_written.json")
    json_path.with_suffix(".npz").unlink()
    with pytest.raises(FileNotFoundError, match=r"run\.npz: no such gsiirl result file"):
        FitResult.load(json_path)


def test_exact_and_finite_difference_hypergradients_run_in_fit(game):
    exact = gsiirl.fit(game, hypergradient="exact", outer_iters=2, seed=0, data="expected", **SETTINGS)
    assert np.all(np.isfinite(exact.history["hypergradient_norm"]))
    with pytest.raises(ValueError, match="hypergradient: 'exact' differentiates"):
        class HumanStudy:
            def interact(self, key, learner_reward, learner_policy, num_trajectories):
                raise AssertionError("never called")
        gsiirl.fit(game, hypergradient="exact", outer_iters=2, expert=HumanStudy())


def joint_soft_policy_by_loops(game, team_reward, temperature=1.0):
    """Independent NumPy soft Q over the joint action (DESIGN §3's joint_soft): [T, S, A_l, A_e]."""
    transitions = np.asarray(game.dynamics.transitions, float)
    S, A_l, A_e = game.joint_shape
    value, policies = np.zeros(S), []
    for _ in range(game.horizon):
        q = np.asarray(team_reward, float) + game.discount * np.einsum("slex,x->sle", transitions, value)
        flat = q.reshape(S, -1) / temperature
        value = temperature * (np.log(np.exp(flat - flat.max(1, keepdims=True)).sum(1)) + flat.max(1))
        policies.append(np.exp(flat - value[:, None] / temperature).reshape(S, A_l, A_e))
    return np.stack(policies[::-1])


def test_special_cases_cooperative_and_competitive(game):
    """DESIGN §3's special cases against known answers: cooperative (r_li = 0, r_ld = r_e) under joint_soft
    is a single-agent soft Q over joint actions with reward 2 r_e; competitive (r_ld = −r_e) under
    joint_soft cancels to a uniform policy, while soft_nash still plays the game; GSIIRL runs on both."""
    zeros = np.zeros(game.joint_shape[:2])
    cooperative = game.with_rewards(learner_reward=zeros, learner_oracle=game.expert_reward)
    team = gsiirl.solve_equilibrium(cooperative, cooperative.learner_true_reward, cooperative.expert_reward,
                                    model="joint_soft").policy
    np.testing.assert_allclose(team.joint_probs(), joint_soft_policy_by_loops(game, 2 * np.asarray(game.expert_reward)),
                               atol=1e-5)
    competitive = game.with_rewards(learner_reward=zeros, learner_oracle=-game.expert_reward)
    cancelled = gsiirl.solve_equilibrium(competitive, competitive.learner_true_reward, competitive.expert_reward,
                                         model="joint_soft").policy
    np.testing.assert_allclose(cancelled.joint_probs(), 1.0 / (game.joint_shape[1] * game.joint_shape[2]), atol=1e-6)
    played = gsiirl.solve_equilibrium(competitive, competitive.learner_true_reward, competitive.expert_reward).policy
    assert np.max(np.abs(np.asarray(played.expert) - 1.0 / game.joint_shape[2])) > 0.05  # soft_nash: not cancelled
    for special in (cooperative, competitive):
        history = gsiirl.fit(special, outer_iters=4, seed=0, **SETTINGS).history
        assert all(np.all(np.isfinite(history[name])) for name in ("learner_return", "hypergradient_norm"))
        assert max(history["equilibrium_residual"] + history["expert_equilibrium_residual"]) < 1e-3


def test_unconverged_equilibria_are_recorded_and_warned_about(game):
    """A stiff competitive game (rewards ×5, temperature 0.05, 10 stage iterations): the simulated expert's
    solve does not converge (nor does the solver's at the true rewards); fit records the residual and warns."""
    stiff = game.with_rewards(learner_oracle=5 * np.asarray(game.learner_oracle),
                              expert_reward=-5 * np.asarray(game.learner_true_reward))
    options = dict(temperature=0.05, iterations=10)
    with pytest.warns(RuntimeWarning, match="simulated expert's equilibrium .* did not converge"):
        history = gsiirl.fit(stiff, outer_iters=1, seed=0, num_trajectories=20, **options).history
    assert history["expert_equilibrium_residual"][0] > 1e-3
    assert float(gsiirl.solve_equilibrium(stiff, stiff.learner_true_reward, stiff.expert_reward,
                                          **options).residual.max()) > 1e-3
    converged = gsiirl.fit(game, outer_iters=1, seed=0, **SETTINGS).history
    assert converged["expert_equilibrium_residual"][0] < 1e-5 and converged["equilibrium_residual"][0] < 1e-5


def test_a_float32_rounding_residual_is_not_blamed_on_too_few_iterations(float32_mode):
    """Session 32: with T = 100, γ = 1 and a constant +1000 on both rewards (policy-irrelevant) the values
    reach 1e5 and float32 rounding alone puts the residual at ≈ 7e-3 whatever `iterations` is (60 or 300:
    the same); float64 converges to 1e-11. The warning must say so instead of only "raise iterations"."""
    rng = np.random.default_rng(0)
    shape = (5, 2, 2)
    arrays = dict(transitions=rng.dirichlet(np.ones(5), size=shape), initial=np.full(5, 0.2), horizon=100,
                  discount=1.0, learner_reward=np.zeros(shape[:2]), learner_oracle=rng.normal(size=shape) + 1000.0,
                  expert_reward=rng.normal(size=shape) + 1000.0)
    options = dict(outer_iters=1, seed=0, num_trajectories=10, radius=0.5)
    with float32_mode():
        offset = gsiirl.TabularGame(**arrays)
        with pytest.warns(RuntimeWarning, match="float32.*jax_enable_x64"):
            history = gsiirl.fit(offset, **options).history
        assert history["expert_equilibrium_residual"][0] > 1e-3
    offset = gsiirl.TabularGame(**arrays)  # the suite's float64
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        history = gsiirl.fit(offset, **options).history
    assert history["expert_equilibrium_residual"][0] < 1e-6


def test_sequential_evaluations_give_the_vmapped_numbers(game):
    vmapped = gsiirl.fit(game, outer_iters=2, seed=3, **SETTINGS).history
    sequential = gsiirl.fit(game, outer_iters=2, seed=3, sequential_evaluations=True, **SETTINGS).history
    np.testing.assert_allclose(sequential["learner_return"], vmapped["learner_return"], rtol=1e-9)
    np.testing.assert_allclose(sequential["hypergradient_norm"], vmapped["hypergradient_norm"], rtol=1e-7)


def test_spall_schedule_runs_and_differs(game):
    spall = gsiirl.fit(game, outer_iters=3, seed=0, schedule="spall", **SETTINGS).history
    theorem2 = gsiirl.fit(game, outer_iters=3, seed=0, **SETTINGS).history
    assert np.all(np.isfinite(spall["learner_return"]))
    assert spall["learner_return"][0] == theorem2["learner_return"][0]  # same start, same first data
    assert spall["learner_return"][1:] != theorem2["learner_return"][1:]


def test_ma_irl_and_marl_methods(game):
    ma_irl = gsiirl.fit(game, method="ma-irl", outer_iters=3, seed=0, **SETTINGS).history
    assert len(ma_irl["learner_return"]) == 3 and np.all(np.isfinite(ma_irl["expert_policy_kl"]))
    marl = gsiirl.fit(game, method="marl", outer_iters=3, seed=0).history
    assert marl["learner_return"] == [pytest.approx(gsiirl.marl(game)["learner_return"])]


@pytest.mark.parametrize("options, field", [
    ({"method": "irl"}, "method"),
    ({"hypergradient": "newton"}, "hypergradient"),
    ({"outer_iters": 0}, "outer_iters"),
    ({"temperature": -1.0}, "temperature"),
    ({"num_trajectories": 2.5}, "num_trajectories"),
    ({"regularization": 0.0}, "regularization"),
    ({"data": "both"}, "data"),
    ({"schedule": "cosine"}, "schedule"),
    ({"cross_term": "both"}, "cross_term"),
    ({"learning_rate": 0.1}, "learning_rate"),
    ({"hypergradient": "exact", "lower_gradient": "lemma1"}, "lower_gradient"),
])
def test_fit_rejects_bad_options_naming_the_field(game, options, field):
    with pytest.raises(ValueError, match=field):
        gsiirl.fit(game, **options)


@pytest.mark.parametrize("arguments,error,field", [
    ({"seed": 0.5}, TypeError, "seed: expected an integer"),
    ({"seed": "0"}, TypeError, "seed: expected an integer"),
    ({"seed": True}, TypeError, "seed: expected an integer"),
    ({"outer_iters": 1.0}, ValueError, "outer_iters"),
    ({"expert": object()}, TypeError, "expert: expected an object with interact"),
    ({"oracle": object()}, TypeError, "oracle: expected an object with query"),
])
def test_fit_rejects_wrong_argument_types_naming_the_argument(game, arguments, error, field):
    with pytest.raises(error, match=field):
        gsiirl.fit(game, **arguments)


def test_fit_rejects_a_game_that_is_not_a_tabular_game():
    with pytest.raises(TypeError, match="game: expected a gsiirl.TabularGame, got dict"):
        gsiirl.fit({"transitions": None})


def test_cross_term_auto_resolves_by_expert_and_real_experts_need_fixed_data(game):
    class LoggedExpert:  # a non-traceable (real) expert: plain Python object
        def __init__(self):
            self.simulator = gsiirl.SimulatedExpert(game)

        def interact(self, key, learner_reward, learner_policy, num_trajectories):
            return self.simulator.interact(key, learner_reward, learner_policy, num_trajectories)

    simulated = gsiirl.fit(game, outer_iters=2, seed=0)
    real = gsiirl.fit(game, outer_iters=2, seed=0, expert=LoggedExpert())
    assert simulated.config["cross_term"] == "data_dependent"
    assert real.config["cross_term"] == "fixed_data"
    with pytest.raises(ValueError, match="cross_term"):
        gsiirl.fit(game, outer_iters=2, seed=0, expert=LoggedExpert(), cross_term="data_dependent")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ma_irl_uses_the_exact_likelihood_gradient_with_a_shared_reward_model(seed):
    """With ONE reward model for both players, Lemmas 1 and 3 give θl and θe the same data gradient, so
    feature matching cannot tell whose reward explains which behaviour; MA-IRL's default ("auto" =
    autodiff of eq. 1) is the maximum-likelihood fit: a lower likelihood loss than Lemma 1/3 descent, and a
    learned learner reward closer to the true one (zero-sum game, exact data)."""
    from gsiirl.algorithms.lower_level import LowerLevelProblem
    from gsiirl.rewards import LinearReward, one_hot_features

    game = gsiirl.random_tabular_game(seed, num_states=4, horizon=3, reward_scale=2.0)
    game = game.with_rewards(learner_reward=np.zeros(game.joint_shape[:2]), learner_oracle=-np.asarray(game.expert_reward))
    model = LinearReward(one_hot_features(game.joint_shape))
    problem = LowerLevelProblem(game, model, model)
    theta = np.linspace(-1, 1, int(np.prod(game.joint_shape)), dtype=np.float32)
    data = np.full((game.horizon,) + game.joint_shape, 1.0 / np.prod(game.joint_shape), np.float32)
    grad_l, grad_e = problem.lemma_gradients(theta, -theta, data)
    np.testing.assert_array_equal(np.asarray(grad_l), np.asarray(grad_e))  # the degeneracy
    options = dict(outer_iters=40, seed=seed, data="expected", radius=10.0, regularization=0.01, inner_step_size=0.5,
                   inner_steps=5, learner_model=model, expert_model=model)
    fits = {g: gsiirl.fit(game, method="ma-irl", lower_gradient=g, **options) for g in ("lemma1", "auto")}
    assert fits["auto"].config["lower_gradient"] == "autodiff"
    assert fits["auto"].history["lower_level_loss"][-1] < fits["lemma1"].history["lower_level_loss"][-1]
    true_learner = -np.asarray(game.expert_reward).ravel()
    correlation = {g: np.corrcoef(np.asarray(model.table(f.theta_l)).ravel(), true_learner)[0, 1] for g, f in fits.items()}
    assert correlation["auto"] > correlation["lemma1"]


def test_exact_hypergradient_runs_record_the_inner_loop_gradient_they_use(game):
    """With hypergradient="exact", lower_gradient "auto" resolves to the exact likelihood gradient and the
    saved config says so; an explicit "autodiff" gives the same run."""
    options = dict(hypergradient="exact", outer_iters=2, seed=0, data="expected", **SETTINGS)
    auto = gsiirl.fit(game, **options)
    explicit = gsiirl.fit(game, lower_gradient="autodiff", **options)
    assert auto.config["lower_gradient"] == "autodiff"
    assert auto.history["lower_level_loss"] == explicit.history["lower_level_loss"]


def test_file_format_names_every_checkpoint_config_key(tmp_path):
    """docs/file_format.md: a fit checkpoint's config is FitConfig's fields, "method", "hypergradient", "seed",
    "outer_iters" plus the bookkeeping keys the page names as `config.<key>`."""
    import json
    import re
    from pathlib import Path

    import gsiirl

    page = (Path(__file__).resolve().parents[1] / "docs" / "file_format.md").read_text()
    named = set(re.findall(r"`config\.([a-z0-9_]+)`", page))
    game = gsiirl.random_tabular_game(seed=0, num_states=3, horizon=2)
    gsiirl.fit(game, outer_iters=1, seed=0, num_trajectories=8, num_spsa_samples=1, checkpoint=tmp_path / "ck")
    config = json.loads((tmp_path / "ck.json").read_text())["config"]
    extra = set(config) - set(gsiirl.FitConfig().to_dict()) - {"method", "hypergradient", "seed", "outer_iters"}
    assert sorted(extra - named) == []
