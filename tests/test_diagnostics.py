"""The diagnostic scripts of docs/ still run against the current API and compute what they say."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "diagnostics"))

TINY_HRI = {"hidden": 8, "num_envs": 4, "finetune_cycles": 1, "updates_per_cycle": 2, "minibatch_size": 16,
            "buffer_cycles": 1, "warmup_cycles": 1, "data_episodes": 4, "evaluation_episodes": 4,
            "seed_batch": 2, "retrain_evaluation": False}


@pytest.mark.filterwarnings("ignore:gsiirl. outer iteration 0. the SPSA hypergradient is exactly 0")
def test_hri_final_policy_study_matches_the_experiment_and_continues_the_final_policy(tmp_path):
    from hri_final_policy import final_policy_study, main, summary

    from gsiirl.experiments import hri

    study = final_policy_study([1], 2, [0, 2], TINY_HRI, hypergradient_repeats=2)
    assert list(study) == [1]  # seed 1 is computed in its group {0, 1} but only asked-for seeds are kept
    # the MARL and in-run numbers are the experiment runner's own (same groups, same keys)
    runner = hri.make_unit_runner(TINY_HRI)
    assert study[1]["marl"]["learner_return"] == runner("marl", 1, 2, lambda k: None)["learner_return"][-1]
    in_run = runner("gsiirl", 1, 2, lambda k: None)
    assert study[1]["in_run"]["learner_return"] == in_run["learner_return"][-1]
    assert study[1]["in_run"]["theta_l_0"] == in_run["theta_l_0"][-1]
    # two more fine-tunes change the policy; 0 is the same policy under another evaluation key
    assert set(study[1]["continued"]) == {0, 2}
    assert study[1]["continued"][2] != study[1]["continued"][0]
    # two re-estimates of the last hypergradient with other random numbers: [R, n_l]
    assert np.asarray(study[1]["hypergradients"]).shape == (2, 3)
    assert np.asarray(study[1]["direct_gradients"]).shape == (2, 3)
    assert "paired gap" in summary(study) and "seed 1: θl" in summary(study)

    out = tmp_path / "study.json"
    main(["--seeds", "0", "--iters", "2", "--checkpoints", "0,1", "--out", str(out)]
         + ["--hypergradient-repeats", "0"] + [f"--option={k}={v}" for k, v in TINY_HRI.items()])
    assert set(json.loads(out.read_text())["0"]["continued"]) == {"0", "1"}


def test_hri_final_policy_study_names_bad_checkpoints():
    from hri_final_policy import final_policy_study

    with pytest.raises(ValueError, match="checkpoints: expected increasing"):
        final_policy_study([0], 2, [5, 2], TINY_HRI)
    with pytest.raises(ValueError, match="precise_episodes: expected an integer >= 0"):
        final_policy_study([0], 2, [0], TINY_HRI, precise_episodes=-1)


@pytest.mark.filterwarnings("ignore:gsiirl. outer iteration 0. the SPSA hypergradient is exactly 0")
def test_hri_final_policy_precise_view_evaluates_the_final_policies_before_they_are_continued():
    import jax

    from hri_final_policy import final_policy_study, summary
    from precise_evaluation import METRICS, PRECISE_STREAM

    from gsiirl.experiments import hri
    from gsiirl.experiments.runner import merge_options

    study = final_policy_study([1], 2, [0, 1], TINY_HRI, precise_episodes=64)
    precise = study[1]["precise"]
    assert set(precise) == {"marl", "gsiirl"} and set(precise["marl"]) == {"greedy", "stochastic"}
    assert set(precise["gsiirl"]["greedy"]) == set(METRICS["hri"])
    assert precise["gsiirl"]["greedy"] != precise["gsiirl"]["stochastic"]
    # ground truth: the same evaluation of the experiment's own final MARL policy of seed 1 (group {0, 1})
    _, algorithm = hri._build(hri._freeze(merge_options(hri.DEFAULT_OPTIONS, TINY_HRI)))
    keys = jax.numpy.stack([jax.random.PRNGKey(0), jax.random.PRNGKey(1)])
    _, states = algorithm.run_seeds("marl", keys, 2)
    actor = jax.tree_util.tree_map(lambda x: x[1], states.actor)
    expected = algorithm._measure_impl(jax.random.fold_in(keys[1], PRECISE_STREAM), actor, True, 64)
    assert precise["marl"]["greedy"]["learner_return"] == pytest.approx(float(expected["learner_return"]), abs=1e-5)
    assert "final policies evaluated precisely" in summary(study)


@pytest.mark.filterwarnings("ignore:gsiirl. outer iteration 0. the SPSA hypergradient is exactly 0")
def test_precise_evaluation_keeps_the_in_run_numbers_and_shares_keys_between_methods(tmp_path):
    from precise_evaluation import main, precise_study, summary

    from gsiirl.experiments import hri

    study = precise_study("hri", [1], 2, 32, ("marl", "gsiirl"), TINY_HRI)
    runner = hri.make_unit_runner(TINY_HRI)
    for method in ("marl", "gsiirl"):  # the in-run rows are the experiment runner's (same groups and keys)
        assert study[1]["in_run"][method]["learner_return"] == runner(method, 1, 2, lambda k: None)["learner_return"][-1]
    # GSIIRL's interaction pair as a pseudo-method: its in-run row is the runner's interaction_* metrics
    gsiirl_run = runner("gsiirl", 1, 2, lambda k: None)
    assert study[1]["in_run"]["gsiirl_interaction"]["collision_rate"] == gsiirl_run["interaction_collision_rate"][-1]
    assert set(study[1]["precise"]) == {"marl", "gsiirl", "gsiirl_interaction"}
    assert study[1]["precise"]["gsiirl_interaction"] != study[1]["precise"]["gsiirl"]
    views = study[1]["precise"]["marl"]
    assert set(views) == {"greedy", "stochastic"} and views["greedy"] != views["stochastic"]
    assert 0.0 <= views["greedy"]["collision_rate"] <= 1.0
    text = summary(study)
    assert "learner_return, in-run (Table 1)" in text and "gsiirl_interaction" in text and "below" in text

    out = tmp_path / "precise.json"
    main(["--experiment", "hri", "--seeds", "0", "--iters", "2", "--episodes", "16", "--methods", "marl",
          "--out", str(out)] + [f"--option={k}={v}" for k, v in TINY_HRI.items()])
    assert set(json.loads(out.read_text())["0"]["precise"]) == {"marl"}


def test_precise_evaluation_names_bad_arguments():
    from precise_evaluation import precise_study

    with pytest.raises(ValueError, match="episodes: expected a positive integer"):
        precise_study("hri", [0], 2, 0, options=TINY_HRI)
    with pytest.raises(ValueError, match="methods: expected 'marl'"):
        precise_study("hri", [0], 2, 8, ("gsiirl",), TINY_HRI)
    with pytest.raises(ValueError, match="experiment: expected one of"):
        precise_study("security", [0], 2, 8, options=TINY_HRI)


def test_hri_human_model_variants_by_hand():
    from hri_human_model import expert_variants

    truth = np.array([1.0, 0.5, 0.0])  # |θe*| = √1.25
    variants = expert_variants(np.array([[0.3, 0.0, 0.4]]), truth)  # |θe| = 0.5
    true_norm = np.sqrt(1.25)
    np.testing.assert_allclose(variants["true_weights"], [[1.0, 0.5, 0.0]])
    np.testing.assert_allclose(variants["true_direction_learned_norm"], [[0.5 / true_norm, 0.25 / true_norm, 0.0]])
    np.testing.assert_allclose(variants["learned"], [[0.3, 0.0, 0.4]])
    np.testing.assert_allclose(variants["learned_direction_true_norm"], [[0.6 * true_norm, 0.0, 0.8 * true_norm]])
    np.testing.assert_allclose(variants["without_speed"], [[true_norm, 0.0, 0.0]])
    # collision weight = 0.5 × goal weight: (0.6, 0.3, 0.8) renormalised to |θe*|
    np.testing.assert_allclose(variants["true_collision_ratio"], [[0.6, 0.3, 0.8]] / np.sqrt(1.09) * true_norm)
    with pytest.raises(ValueError, match="learned: every θe must be non-zero"):
        expert_variants(np.zeros((1, 3)), truth)


@pytest.mark.filterwarnings("ignore:gsiirl. outer iteration 0. the SPSA hypergradient is exactly 0")
def test_hri_human_model_study_trains_the_true_pair_as_the_marl_unit(tmp_path):
    from hri_human_model import VARIANTS, human_model_study, main, summary

    from gsiirl.experiments import hri
    from gsiirl.experiments.runner import merge_options

    # initial θ's of the ball's size (0.2.0's draw): after two tiny iterations the learned rewards are then far
    # enough from the true ones for the four variants' one-cycle trainings to differ (with the default 0.25,
    # "learned" and "learned_pair" coincide: against the θe-human, the robot trained on its weak θl acts as
    # the one trained on its true r_ld)
    tiny = TINY_HRI | {"retrain_evaluation": True, "initial_radius": 1.5}
    runner = hri.make_unit_runner(tiny)
    units = {str(seed): runner("gsiirl", seed, 2, lambda k: None) for seed in (0, 1)}
    options = merge_options(hri.DEFAULT_OPTIONS, tiny)
    results = {"experiment": "hri", "config": {"iterations": 2, "options": options},
               "methods": {"gsiirl": {"seeds": units}}}
    study = human_model_study(results, [1], TINY_HRI["evaluation_episodes"])
    assert list(study) == [1] and set(study[1]["metrics"]) == set(VARIANTS)
    # the "true" variant is the MARL unit of the same seed, number for number
    marl = runner("marl", 1, 2, lambda k: None)
    assert study[1]["metrics"]["true"] == {m: marl[m][-1] for m in study[1]["metrics"]["true"]}
    assert study[1]["theta_e"]["learned"] == pytest.approx([units["1"][f"theta_e_{i}"][-1] for i in range(3)])
    # both learned rewards: the run's own reward-transfer policy (retrained_* metrics), number for number
    assert study[1]["metrics"]["learned_pair"] == {m: units["1"][f"retrained_{m}"][-1]
                                                   for m in study[1]["metrics"]["learned_pair"]}
    assert len({json.dumps(study[1]["metrics"][v]) for v in ("true", "learned", "learned_robot", "learned_pair")}) == 4
    # the human is trained on the variant: its learned θe gives other numbers than its true r_e
    assert study[1]["metrics"]["learned"] != study[1]["metrics"]["true"]
    assert "direction at the true norm" in summary(study) and "interaction (learned_pair" in summary(study)

    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    out = tmp_path / "human.json"
    main(["--results", str(path), "--seeds", "0", "--episodes", "4", "--out", str(out)])
    assert set(json.loads(out.read_text())) == {"0"}
    with pytest.raises(ValueError, match=r"seeds: \[5\] have no gsiirl unit"):
        human_model_study(results, [5], 4)
    with pytest.raises(ValueError, match="results: expected a `gsiirl run hri` results file"):
        human_model_study({"experiment": "mpe", "methods": {}}, [0], 4)
    with pytest.raises(ValueError, match="episodes: expected a positive integer"):
        human_model_study(results, [0], 0)


def test_reward_correlation_of_the_true_weights_and_of_an_mlp_that_approximates_them(tmp_path):
    """diagnostics/reward_correlation.py: the true linear weights track r_e and r_ld closely (their features are
    the rewards' own, the collision indicator smoothed), −θ* gives exactly the negated correlation, and a 1-unit
    MLP w2 · tanh(ε θ*·φ) with w2 = 1/ε (≈ θ*·φ) gives the linear one's correlation; ``main`` reads a results file
    (the θ's of its first and last iteration) and builds the game with the file's reward models."""
    from reward_correlation import correlations, main, random_play

    from gsiirl.experiments import hri
    from gsiirl.games.hri import true_parameters

    options = {**hri.DEFAULT_OPTIONS, "horizon": 10}
    game = hri.make_game(options)
    data = random_play(game, 64)
    theta_l, theta_e = (np.asarray(t, np.float32) for t in true_parameters())
    true = correlations(game, data, theta_l, theta_e)
    assert true["expert"] > 0.95 and true["learner"] > 0.8
    negated = correlations(game, data, -theta_l, -theta_e)
    assert negated["expert"] == pytest.approx(-true["expert"], abs=1e-6)
    epsilon = 1e-3
    mlp_game = hri.make_game({**options, "expert_reward_hidden": 1})
    mlp_theta_e = np.concatenate([epsilon * theta_e, [0.0], [1.0 / epsilon], [0.0]]).astype(np.float32)
    assert correlations(mlp_game, data, theta_l, mlp_theta_e)["expert"] == pytest.approx(true["expert"], abs=1e-3)

    history = {**{f"theta_l_{i}": [0.0, float(v)] for i, v in enumerate(theta_l)},
               **{f"theta_e_{i}": [float(v), float(-v)] for i, v in enumerate(theta_e)}}
    results = {"experiment": "hri", "config": {"options": {"horizon": 10}},
               "methods": {"gsiirl": {"seeds": {"0": history}}}}
    (tmp_path / "results.json").write_text(json.dumps(results))
    assert main(["--results", str(tmp_path / "results.json"), "--episodes", "64", "--out", str(tmp_path / "c.json")]) == 0
    seed = json.loads((tmp_path / "c.json").read_text())["methods"]["gsiirl"]["seeds"]["0"]
    assert seed["first"]["expert"] == pytest.approx(true["expert"], abs=1e-6)
    assert seed["last"]["expert"] == pytest.approx(-true["expert"], abs=1e-6)
    assert seed["last"]["learner"] == pytest.approx(true["learner"], abs=1e-6)


def test_hypergradient_noise_spread_by_hand():
    from hypergradient_noise import spread

    out = spread(np.array([[1.0, 0.0], [3.0, 0.0]]), towards=np.array([0.0, -2.0]))  # mean (2, 0); each 1 away
    assert out["mean"] == [2.0, 0.0] and out["norm_of_mean"] == 2.0
    assert out["spread"] == pytest.approx(1.0) and out["signal_to_noise"] == pytest.approx(2.0)
    assert out["signal_to_noise_debiased"] == pytest.approx(np.sqrt(4.0 - 1.0))  # ‖mean‖² − spread²/(R − 1)
    assert out["towards_truth"] == {"mean": 0.0, "standard_error": 0.0} and out["cosine_to_truth"] == 0.0
    # along (1, 0): components 1 and 3, mean 2, standard error std(ddof=1)/√2 = 1
    along = spread(np.array([[1.0, 0.0], [3.0, 0.0]]), towards=np.array([5.0, 0.0]))["towards_truth"]
    assert along["mean"] == pytest.approx(2.0) and along["standard_error"] == pytest.approx(1.0)
    # pure noise, R = 16 estimates, 2,000 times: the raw ratio² averages 1/(R − 1), which the debiased one removes
    rng = np.random.default_rng(0)
    noise = [spread(rng.normal(size=(16, 6))) for _ in range(2000)]
    raw = np.array([n["signal_to_noise"] for n in noise])
    assert np.mean(raw ** 2) == pytest.approx(1 / 15, rel=0.05)
    debiased = np.array([n["signal_to_noise_debiased"] for n in noise])
    assert debiased == pytest.approx(np.sqrt(np.maximum(raw ** 2 - 1 / 15, 0.0)), abs=1e-9)


@pytest.mark.filterwarnings("ignore:gsiirl. outer iteration 0. the SPSA hypergradient is exactly 0")
def test_hypergradient_noise_repeats_leave_the_run_unchanged(tmp_path):
    import jax

    from hypergradient_noise import main, noise_study
    from precise_evaluation import experiment_algorithm

    # a budget at which the ± perturbed rewards reach the policies (TINY_HRI's gives exactly 0)
    options = dict(TINY_HRI, seed_batch=1, updates_per_cycle=8, learning_rate=0.03)
    study = noise_study("hri", 3, 3, [0, 2], 3, options, true_theta_l=np.array([1.0, 0.0, 0.0]))
    # the run goes on with its own estimates: its history is the plain one-seed run's
    algorithm, _ = experiment_algorithm("hri", options)
    plain, _ = algorithm.run("gsiirl", jax.random.PRNGKey(3), 3)
    without_clock = lambda history: [{k: v for k, v in row.items() if k != "wall_time"} for row in history]
    assert without_clock(study["history"]) == without_clock(plain)
    assert [point["iteration"] for point in study["points"]] == [0, 2]
    for point in study["points"]:
        assert np.asarray(point["theta_l"]).shape == (3,)
        assert point["hypergradient"]["spread"] > 0  # the R estimates differ (their own random numbers)
        assert -1.0 <= point["hypergradient"]["cosine_to_truth"] <= 1.0
        assert np.asarray(point["hypergradient"]["samples"]).shape == (3, 3)
    # the point of iteration 2 is the θl the run had reached there
    assert point["theta_l"] == pytest.approx([plain[2][f"theta_l_{i}"] for i in range(3)], abs=1e-6)
    with pytest.raises(ValueError, match="repeats: expected an integer >= 2"):
        noise_study("hri", 0, 2, [0], 1, options)
    with pytest.raises(ValueError, match="true_theta_l: expected 3 weights"):
        noise_study("hri", 0, 2, [0], 2, options, true_theta_l=np.zeros(6))
    with pytest.raises(ValueError, match="seed_batch: expected 1"):
        noise_study("hri", 0, 2, [0], 2, dict(options, seed_batch=2))
    with pytest.raises(ValueError, match=r"at: expected outer iterations in \[0, 2\)"):
        noise_study("hri", 0, 2, [2], 2, options)

    out = tmp_path / "noise.json"
    main(["--experiment", "hri", "--seed", "3", "--iters", "1", "--at", "0", "--repeats", "2", "--out", str(out)]
         + [f"--option={k}={v}" for k, v in options.items()])
    assert [point["iteration"] for point in json.loads(out.read_text())["points"]] == [0]
