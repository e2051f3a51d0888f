"""Sample-based GSIIRL back-end: Monte-Carlo estimators against hand-computed values, the inner step,
and a tiny end-to-end GSIIRL run (finite, projected, reproducible)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gsiirl.algorithms.sample_based import SampleBasedConfig, SampleBasedGSIIRL
from gsiirl.games.continuous import Rollout, discounted_sum, feature_expectations, make_reward_params, team_rewards
from gsiirl.hypergradients.spsa import spsa_hypergradient
from gsiirl.solvers.maddpg import MADDPGConfig

# The `tiny` budget trains identical ± policies, so its hypergradient is 0 (the warning that
# test_zero_hypergradient_warns checks); test_outer_step_follows_the_hypergradient uses a budget that moves.
pytestmark = pytest.mark.filterwarnings("ignore:gsiirl. outer iteration .*exactly 0:RuntimeWarning")


def _synthetic_rollout() -> Rollout:
    """N=2 episodes, T=3 steps, d_l = 1, d_e = 2; only the reward/feature fields matter."""
    z = jnp.zeros((2, 3))
    return Rollout(
        observations=jnp.zeros((2, 3, 2, 1)), global_observations=jnp.zeros((2, 3, 1)),
        next_observations=jnp.zeros((2, 3, 2, 1)), next_global_observations=jnp.zeros((2, 3, 1)),
        actions=jnp.zeros((2, 3, 2), jnp.int32), alive=jnp.ones((2, 3)), terminal=z,
        learner_independent_reward=jnp.asarray([[-1.0, -1.0, -1.0], [0.0, 0.0, -2.0]]),
        learner_dependent_reward=jnp.asarray([[0.5, 0.0, 0.0], [0.0, 0.0, 0.0]]),
        expert_reward=jnp.asarray([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]),
        learner_features=jnp.asarray([[[1.0], [1.0], [1.0]], [[0.0], [2.0], [0.0]]]),
        expert_features=jnp.asarray([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [[0.0, 0.0]] * 3]),
        global_trajectory=jnp.zeros((2, 4, 1)),
    )


class _Game:  # the fields feature_expectations / team_rewards read
    discount = 0.5
    learner_feature_size, expert_feature_size = 1, 2
    learner_reward_scale = 2.0
    expert_reward_scale = 1.0


def test_monte_carlo_feature_expectations_hand_computed():
    data = _synthetic_rollout()
    np.testing.assert_allclose(discounted_sum(data.expert_reward, 0.5), [1 + 1 + 0.75, 0.0])
    mu_l, mu_e = feature_expectations(_Game, data)
    # learner: episode sums 1 + .5 + .25 = 1.75 and 2 * .5 = 1 -> mean 1.375, times scale 2
    np.testing.assert_allclose(mu_l, [2 * 1.375])
    # expert: episode 1 -> (1 + .25, .5 + .25) ; episode 2 -> 0
    np.testing.assert_allclose(mu_e, [1.25 / 2, 0.75 / 2])


def test_team_rewards_mix_true_and_modelled_rewards():
    data = _synthetic_rollout()
    modelled = team_rewards(_Game, data, make_reward_params(jnp.asarray([0.5]), jnp.asarray([1.0, -1.0])))
    # learner: r_li + 2 * φ_l * 0.5 ; expert: φ_e · (1, -1)
    np.testing.assert_allclose(modelled[0, :, 0], [-1 + 1, -1 + 1, -1 + 1])
    np.testing.assert_allclose(modelled[0, :, 1], [1.0, -1.0, 0.0])
    true = team_rewards(_Game, data, make_reward_params(jnp.asarray([0.5]), jnp.asarray([1.0, -1.0]), True, True))
    np.testing.assert_allclose(true[0, :, 0], [-0.5, -1.0, -1.0])
    np.testing.assert_allclose(true[0, :, 1], [1.0, 2.0, 3.0])


@pytest.fixture(scope="module")
def tiny(tiny_hri_backend):
    return tiny_hri_backend()


def test_inner_step_is_projected_lemma1_descent(tiny):
    theta_e = jnp.asarray([0.6, 0.0, 0.0])
    mu_e, mu_hat = jnp.asarray([1.0, 0.0, 0.0]), jnp.asarray([0.0, 0.0, -3.0])
    # θ - β((μ - μ̂)/α + λθ) = (0.6 - 0.1 (1 + 0.3), 0, -0.3) = (0.47, 0, -0.3): inside the unit ball
    np.testing.assert_allclose(tiny._inner_update(theta_e, mu_e, mu_hat), [0.47, 0.0, -0.3], atol=1e-6)
    big = tiny._inner_update(theta_e, jnp.asarray([-20.0, 0.0, 0.0]), jnp.zeros(3))
    np.testing.assert_allclose(big, [1.0, 0.0, 0.0], atol=1e-6)  # (2.57, 0, 0) projected onto the ball


def test_initial_radius_scales_the_random_start_without_changing_its_direction(tiny):
    """The initial θ's have norms in [0.5, 1]·initial_radius (default: the ball's radius); with
    initial_radius = radius / 2 the same key gives the same directions at half the norm."""
    from dataclasses import replace

    key = jax.random.PRNGKey(5)
    default = tiny.initial_parameters(key)
    half = SampleBasedGSIIRL(tiny.game, replace(tiny.config, initial_radius=0.5)).initial_parameters(key)
    for full, small in zip(default, half):
        assert 0.5 <= float(jnp.linalg.norm(full)) <= 1.0
        np.testing.assert_allclose(small, 0.5 * full, rtol=1e-6)
    with pytest.raises(ValueError, match="initial_radius"):
        replace(tiny.config, initial_radius=1.5)  # larger than the ball
    with pytest.raises(ValueError, match="initial_radius"):
        replace(tiny.config, initial_radius=0.0)


def test_config_rejects_wrongly_typed_fields_by_name():
    """A string "false" is truthy, a bool is an int: both are errors naming the field, not silent."""
    with pytest.raises(ValueError, match="reset_worse_than_random: expected True or False"):
        SampleBasedConfig(reset_worse_than_random="false")
    with pytest.raises(ValueError, match="greedy_evaluation: expected True or False"):
        SampleBasedConfig(greedy_evaluation=1)
    with pytest.raises(ValueError, match="spsa_samples: expected a positive integer"):
        SampleBasedConfig(spsa_samples=True)
    with pytest.raises(ValueError, match="maddpg: expected a MADDPGConfig"):
        SampleBasedConfig(maddpg={"hidden": 8})
    assert SampleBasedConfig(reset_worse_than_random=True).reset_worse_than_random is True


def test_gsiirl_runs_finite_projected_and_reproducible(tiny):
    seen = []
    history, _ = tiny.run("gsiirl", jax.random.PRNGKey(3), 2, lambda k, m: seen.append(k))
    assert seen == [0, 1] and len(history) == 2
    for metrics in history:
        assert all(math.isfinite(v) for v in metrics.values())
        assert {"learner_return", "expert_return", "hypergradient_norm", "expert_loss"} <= set(metrics)
        assert np.linalg.norm([metrics[f"theta_l_{i}"] for i in range(3)]) <= 1.0 + 1e-6
        assert np.linalg.norm([metrics[f"theta_e_{i}"] for i in range(3)]) <= 1.0 + 1e-6
    again, _ = tiny.run("gsiirl", jax.random.PRNGKey(3), 2)
    for a, b in zip(history, again):
        assert {k: v for k, v in a.items() if k != "wall_time"} == {k: v for k, v in b.items() if k != "wall_time"}
    with pytest.raises(ValueError, match="method"):
        tiny.run("irl", jax.random.PRNGKey(0), 2)


def test_retrained_evaluation_is_paired_with_marl(tiny):
    """Ground truth: on a copy of the game whose single features ARE the true r_ld and r_e, the learned
    pair θ = (1, 1) is the true reward pair bit for bit, so retraining from scratch with the MARL
    unit's key must reproduce the MARL unit's metrics exactly; another pair must not."""
    game = tiny.game
    exact = game._replace(
        learner_feature_size=1, expert_feature_size=1,
        learner_features=lambda *args: game.learner_dependent_reward(*args)[None],
        expert_features=lambda *args: game.expert_reward(*args)[None])
    algorithm = SampleBasedGSIIRL(exact, tiny.config)
    key = jax.random.PRNGKey(11)
    (marl,), _ = algorithm.run("marl", key, 3)
    retrained = algorithm.retrained_evaluation(key, jnp.ones(1), jnp.ones(1), 3)
    assert set(retrained) == set(marl) - {"wall_time"}
    for name, value in retrained.items():
        assert value == marl[name], name
    other = algorithm.retrained_evaluation(key, -jnp.ones(1), jnp.ones(1), 3)  # a robot that wants r_ld low
    assert other != retrained
    # swapping in the true rewards gives MARL back whatever the θ's; one swap alone does not
    swapped = algorithm.retrained_evaluation(key, -jnp.ones(1), jnp.zeros(1), 3, true_learner_reward=True,
                                             true_expert_reward=True)
    assert swapped == retrained
    assert algorithm.retrained_evaluation(key, -jnp.ones(1), jnp.ones(1), 3, true_expert_reward=True) == other
    assert algorithm.retrained_evaluation(key, -jnp.ones(1), jnp.ones(1), 3, true_learner_reward=True) == retrained
    with pytest.raises(ValueError, match="theta_l, theta_e"):
        algorithm.retrained_evaluation(key, jnp.ones(2), jnp.ones(1), 3)
    with pytest.raises(ValueError, match="iterations"):
        algorithm.retrained_evaluation(key, jnp.ones(1), jnp.ones(1), 0)


def test_a_seed_group_is_its_seeds_run_one_by_one(tiny):
    """Ground truth for the vmapped seed batch: each member equals the per-seed run of its key (up to
    float32 rounding: a batch changes the order of a few reductions), for every method and for the
    retrained evaluation; a group of one is the per-seed run bit for bit."""
    seeds = (3, 8)
    keys = jnp.stack([jax.random.PRNGKey(s) for s in seeds])
    for method in ("gsiirl", "ma-irl", "marl"):
        seen = []
        histories, states = tiny.run_seeds(method, keys, 2, lambda k, metrics: seen.append((k, len(metrics))))
        assert seen == ([(0, 2), (1, 2)] if method != "marl" else [(1, 2)])
        for seed, history in zip(seeds, histories):
            alone, _ = tiny.run(method, jax.random.PRNGKey(seed), 2)
            assert len(history) == len(alone)
            for row, expected in zip(history, alone):
                assert set(row) == set(expected)
                for name in expected:
                    if name != "wall_time":
                        np.testing.assert_allclose(row[name], expected[name], rtol=1e-4, atol=1e-4, err_msg=name)
        assert jax.tree_util.tree_leaves(states.actor)[0].shape[0] == len(seeds)
    one, _ = tiny.run_seeds("gsiirl", keys[:1], 2)
    alone, _ = tiny.run("gsiirl", jax.random.PRNGKey(3), 2)
    assert [{k: v for k, v in r.items() if k != "wall_time"} for r in one[0]] == \
        [{k: v for k, v in r.items() if k != "wall_time"} for r in alone]
    thetas_l, thetas_e = jnp.asarray([[0.5, 0.0, 0.1], [-0.2, 0.3, 0.0]]), jnp.asarray([[0.4, 0.2, 0.0], [0.1, 0.0, 0.6]])
    grouped = tiny.retrained_evaluations(keys, thetas_l, thetas_e, 2)
    for s, seed in enumerate(seeds):
        alone = tiny.retrained_evaluation(jax.random.PRNGKey(seed), thetas_l[s], thetas_e[s], 2)
        for name in alone:
            np.testing.assert_allclose(grouped[s][name], alone[name], rtol=1e-4, atol=1e-4, err_msg=name)
    with pytest.raises(ValueError, match="keys: expected a \\[S, 2\\] uint32"):
        tiny.run_seeds("marl", jax.random.PRNGKey(0), 2)
    with pytest.raises(ValueError, match="thetas_l, thetas_e"):
        tiny.retrained_evaluations(keys, thetas_l[:1], thetas_e, 2)


def test_zero_hypergradient_warns(tiny):
    """Learning rates 0: the ± perturbed rewards cannot change the policies, so the SPSA difference is
    exactly 0 and θl never moves — the run says so instead of staying silent."""
    from dataclasses import replace

    frozen = tiny.config.maddpg._replace(actor_learning_rate=0.0, critic_learning_rate=0.0)
    learner = SampleBasedGSIIRL(tiny.game, replace(tiny.config, maddpg=frozen))
    with pytest.warns(RuntimeWarning, match="hypergradient is exactly 0"):
        history, _ = learner.run("gsiirl", jax.random.PRNGKey(0), 1)
    assert history[0]["hypergradient_norm"] == 0.0


def test_nan_from_the_oracle_stops_the_run_with_its_name(tiny):
    """A queried r_ld that returns NaN (a failed measurement) must stop the run with a message, not
    carry NaN θ's on silently."""
    broken = tiny.game._replace(learner_dependent_reward=lambda state, la, ea, next_state: jnp.float32(jnp.nan))
    learner = SampleBasedGSIIRL(broken, tiny.config)
    with pytest.raises(ValueError, match=r"marl: outer iteration 0, seed 0 .*learner_return is nan.*queried r_ld"):
        learner.run("marl", jax.random.PRNGKey(0), 1)
    with pytest.raises(ValueError, match=r"gsiirl: outer iteration 0, seed 0 .* is nan"):
        learner.run("gsiirl", jax.random.PRNGKey(0), 1)


def test_configuration_mistakes_are_named_on_construction(tiny):
    with pytest.raises(ValueError, match="num_envs: expected a positive integer, got 0"):
        SampleBasedConfig(maddpg=MADDPGConfig(num_envs=0))
    with pytest.raises(ValueError, match="warmup_iterations: expected a multiple of maddpg.iterations"):
        SampleBasedConfig(maddpg=MADDPGConfig(iterations=2), warmup_iterations=3)
    with pytest.raises(TypeError, match="game: expected a gsiirl.games.continuous.ContinuousGame"):
        SampleBasedGSIIRL("hri", tiny.config)
    with pytest.raises(ValueError, match="discount"):
        SampleBasedGSIIRL(tiny.game._replace(discount=1.5), tiny.config)
    with pytest.warns(RuntimeWarning, match="minibatch_size: 100000 is more than the 20 transitions"):
        SampleBasedGSIIRL(tiny.game, SampleBasedConfig(
            maddpg=tiny.config.maddpg._replace(minibatch_size=100_000), warmup_iterations=2))


def test_outer_step_follows_the_hypergradient(tiny):
    """Algorithm 1 line 15 end to end: with a budget whose ± policies differ (learning rates 0.05), the
    hypergradient is non-zero and θl moves by exactly α·min(‖∇F‖, clip) per outer iteration (inside the ball)."""
    from dataclasses import replace

    fast = tiny.config.maddpg._replace(actor_learning_rate=0.05, critic_learning_rate=0.05)
    config = replace(tiny.config, maddpg=fast, outer_step_size=0.1)
    history, _ = SampleBasedGSIIRL(tiny.game, config).run("gsiirl", jax.random.PRNGKey(3), 3)
    norms = [row["hypergradient_norm"] for row in history]
    assert max(norms) > 0
    thetas = [np.array([row[f"theta_l_{i}"] for i in range(3)]) for row in history]
    assert max(np.linalg.norm(t) for t in thetas) < 1.0 - 1e-3  # no projection: the step is the ascent itself
    for k in range(2):
        np.testing.assert_allclose(np.linalg.norm(thetas[k + 1] - thetas[k]), 0.1 * min(norms[k], 2.0),
                                   rtol=1e-4, atol=1e-7)


def test_interaction_metrics_score_the_learner_policy_met_by_the_true_expert(tiny):
    """GSIIRL's ``interaction_*`` rows are the interaction pair — the learner's policy for θl met by the
    simulated expert trained on its TRUE r_e — scored like the reported rows of the model pair π^{θl,θe},
    on the same start states. Ground truth: the last row against an independent evaluation of the two
    final pairs (``final_pair="both"``) with the documented key; the passive methods have no interaction,
    no such rows, and refuse ``final_pair="interaction"`` by name."""
    from gsiirl.algorithms.seed_batch import fold_in_each, split_each

    key = jax.random.PRNGKey(5)
    history, pairs = tiny.run("gsiirl", key, 2, final_pair="both")
    loop_key = split_each(key[None], 3)[:, 2]  # init, warm-up, loop keys (Algorithm 1's order in _run_gsiirl)
    evaluation_key = split_each(fold_in_each(loop_key, 1), 4)[0, 3]  # iteration 1's evaluation key
    names = ("learner_return", "expert_return", "episode_length")
    for pair, prefix in (("interaction", "interaction_"), ("model", "")):
        expected = tiny._measure_impl(evaluation_key, pairs[pair].actor, tiny.config.greedy_evaluation,
                                      tiny.config.evaluation_episodes)
        for name in names:
            assert history[-1][prefix + name] == pytest.approx(float(expected[name]), abs=1e-5), prefix + name
    assert any(history[-1]["interaction_" + name] != history[-1][name] for name in names)  # two policies
    _, model = tiny.run("gsiirl", key, 2)  # the default return is the model pair, bit for bit
    _, interaction = tiny.run("gsiirl", key, 2, final_pair="interaction")
    for default, chosen in ((model, pairs["model"]), (interaction, pairs["interaction"])):
        assert all(bool(jnp.array_equal(a, b)) for a, b in zip(jax.tree_util.tree_leaves(default),
                                                              jax.tree_util.tree_leaves(chosen)))
    for method in ("marl", "ma-irl"):
        (passive, *_), _ = tiny.run(method, key, 1)
        assert not any(name.startswith("interaction_") for name in passive)
        with pytest.raises(ValueError, match="final_pair: expected one of \\['model'\\] for method"):
            tiny.run(method, key, 1, final_pair="interaction")
    with pytest.raises(ValueError, match="final_pair"):
        tiny.run("gsiirl", key, 1, final_pair="expert")


def test_hessian_regularization_damps_only_the_implicit_terms_hessian(tiny):
    """``hessian_regularization`` replaces λ in the SPSA Hessian (H = data + λ_H I, Lemma 2's implicit term),
    not in the inner loop's Lemma 1 step; None is exactly λ. Checked against the SPSA estimator called with
    λ_H on the same evaluations and key, and against the damping's effect on the eigenvalue floor."""
    from dataclasses import replace

    from gsiirl.hypergradients.types import LowerLevelEvaluation

    a = jnp.asarray([[2.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 3.0]])
    theta_l, theta_e, key = jnp.asarray([0.1, 0.2, 0.3]), jnp.asarray([0.3, -0.2, 0.1]), jax.random.PRNGKey(0)

    def batch(spsa_key, model_state, interaction_state, thetas_l, thetas_e, mu_l, mu_e):
        return LowerLevelEvaluation(upper_objective=thetas_l.sum(-1) + thetas_e @ jnp.asarray([1.0, -2.0, 0.5]),
                                    expert_loss_gradient=thetas_e @ a + 0.3 * thetas_l, learner_loss_gradient=thetas_l)

    def estimate(algorithm):
        return algorithm._estimate(batch, 0.1, key, None, None, None, theta_l, theta_e, None, None)

    def reference(ridge):
        return spsa_hypergradient(key, lambda tl, te: batch(None, None, None, tl, te, None, None), theta_l, theta_e,
                                  perturbation=0.1, num_samples=1, regularization=ridge,
                                  cross_term="learner_perturbation")

    damped = SampleBasedGSIIRL(tiny.game, replace(tiny.config, hessian_regularization=2.0))
    for algorithm, ridge in ((tiny, 0.5), (damped, 2.0)):  # None: λ = 0.5
        for ours, expected in zip(estimate(algorithm), reference(ridge)):
            np.testing.assert_allclose(ours, expected, rtol=1e-6)
    assert np.linalg.eigvalsh(np.asarray(estimate(damped).expert_hessian)).min() >= 2.0 - 1e-5
    assert not np.allclose(estimate(damped).hypergradient, estimate(tiny).hypergradient)
    mu_e, mu_hat = jnp.asarray([1.0, 0.0, 0.0]), jnp.zeros(3)
    np.testing.assert_allclose(damped._inner_update(theta_e, mu_e, mu_hat), tiny._inner_update(theta_e, mu_e, mu_hat))
    for bad in (0.0, -1.0, "abc", True):
        with pytest.raises(ValueError, match="hessian_regularization: expected a positive number or None"):
            replace(tiny.config, hessian_regularization=bad)


def test_a_typed_key_gives_the_raw_keys_numbers_and_a_bad_key_is_named(tiny):
    from gsiirl.algorithms.seed_batch import check_keys

    def strip(history):
        return [{k: v for k, v in m.items() if k != "wall_time"} for m in history]

    raw, _ = tiny.run("marl", jax.random.PRNGKey(4), 1)
    typed, _ = tiny.run("marl", jax.random.key(4), 1)
    assert strip(typed) == strip(raw)
    np.testing.assert_array_equal(check_keys(jax.random.split(jax.random.key(7), 3)),
                                  jax.random.split(jax.random.PRNGKey(7), 3))
    with pytest.raises(ValueError, match=r"key: expected one PRNG key, .* got int\d+\[\]"):
        tiny.run("marl", 4, 1)  # a seed, not a key
    with pytest.raises(ValueError, match="key: expected threefry2x32 keys"):
        tiny.run("marl", jax.random.key(4, impl="rbg"), 1)


def test_a_non_finite_game_function_is_named_by_a_random_play_probe(tiny):
    """The NaN message names the function that returned it (found by uniformly random play), not a list of
    every function that could have; a sound game has no culprit."""
    from gsiirl.games.continuous import non_finite_outputs

    assert non_finite_outputs(jax.random.PRNGKey(0), tiny.game) == []
    broken = tiny.game._replace(expert_reward=lambda state, la, ea, next_state: jnp.log(-1.0 - jnp.sum(ea ** 2)))
    assert non_finite_outputs(jax.random.PRNGKey(0), broken) == ["r_e (first at episode 0, step 0)"]
    with pytest.raises(ValueError, match=r"expert_return is nan\. Uniformly random play .* from: r_e \(first at "
                                         r"episode 0, step 0\)\.$"):
        SampleBasedGSIIRL(broken, tiny.config).run("marl", jax.random.PRNGKey(0), 1)
    from gsiirl.algorithms.sample_based_config import require_finite
    with pytest.raises(ValueError, match="learner_return is nan. Uniformly random play gives finite values from every"):
        require_finite("marl", 0, 0, {"learner_return": float("nan")}, tiny.game)  # the game is sound


def test_outer_iterations_after_the_first_compile_nothing(tiny, compilations):
    # Every outer iteration after the first runs the same programs: on a user's own simulator run one
    # seed at a time, the eager SPSA estimate recompiled its conjugate gradient at every iteration.
    compiled_per_iteration = []
    with compilations() as compiled:
        tiny.run("gsiirl", jax.random.PRNGKey(4), 3,
                 lambda k, m: (compiled_per_iteration.append(len(compiled)), compiled.clear()))
    assert compiled_per_iteration[1:] == [0, 0]
