"""Benchmark (not a test): simple_adversary steps/second, mpe2 vs JaxMARL in one run; full-run wall time.

    python benchmarks/bench_mpe.py                       # environment throughput only
    python benchmarks/bench_mpe.py --full-run --seeds 10 --iters 50 --out /tmp/mpe_full
    python benchmarks/bench_mpe.py --iteration-profile   # + where one GSIIRL outer iteration spends its time
    python benchmarks/bench_mpe.py --critics             # + SPSA-sized train batch: team vs per-agent critics
    python benchmarks/bench_mpe.py --pinning             # two concurrent profiles: workers pinned vs sharing cores
    python benchmarks/bench_mpe.py --precision           # a critic-sized MLP step: float32 vs bfloat16 products

Joint steps (all three agents act once) per second of:
  * mpe2 (Farama, numpy, PettingZoo parallel API), uniform random actions, reset every 25 steps;
  * JaxMARL single environment, jitted step called from a Python loop;
  * JaxMARL through gsiirl's protocol rollout (lax.scan over 25 steps, vmap over episodes).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def mpe2_steps_per_second(num_steps: int) -> float:
    from mpe2 import simple_adversary_v3

    env = simple_adversary_v3.parallel_env(N=2, max_cycles=25)
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    start = time.perf_counter()
    for t in range(num_steps):
        actions = {agent: int(rng.integers(5)) for agent in env.possible_agents}
        _, _, _, truncations, _ = env.step(actions)
        if all(truncations.values()):
            env.reset()
    return num_steps / (time.perf_counter() - start)


def jaxmarl_python_loop_steps_per_second(num_steps: int) -> float:
    import jax

    from gsiirl.games import mpe

    step = jax.jit(mpe.step)
    key = jax.random.PRNGKey(0)
    state, _ = mpe.reset(key)
    rng = np.random.default_rng(0)
    jax.block_until_ready(step(key, state, 0, np.zeros(2, np.int32)))  # compile
    start = time.perf_counter()
    for t in range(num_steps):
        actions = rng.integers(5, size=3)
        state, _, reward = step(key, state, actions[0], actions[1:])
    jax.block_until_ready(reward)
    return num_steps / (time.perf_counter() - start)


def jaxmarl_vmapped_steps_per_second(num_episodes: int, repeats: int = 5) -> float:
    import jax

    from gsiirl.games import continuous, mpe

    game = mpe.make_game()
    run = jax.jit(lambda key: continuous.rollout(key, game, mpe.uniform_random_policy, num_episodes))
    jax.block_until_ready(run(jax.random.PRNGKey(0)))  # compile
    start = time.perf_counter()
    for r in range(repeats):
        out = run(jax.random.PRNGKey(r + 1))
    jax.block_until_ready(out)
    return repeats * num_episodes * game.horizon / (time.perf_counter() - start)


def full_run_wall_time(seeds: int, iterations: int, out: Path) -> float:
    from gsiirl.experiments.mpe import DEFAULT_OPTIONS
    from gsiirl.experiments.runner import run_experiment

    start = time.perf_counter()
    run_experiment("mpe", seeds=seeds, iterations=iterations, out_dir=out, options=dict(DEFAULT_OPTIONS),
                   force=True)
    return time.perf_counter() - start


def iteration_profile(repeats: int = 3) -> dict[str, float]:
    """Median seconds (compilation excluded) of the pieces of one GSIIRL outer iteration at the default
    options, one seed: the pair fine-tune (interaction + model policy, run t_k times per iteration), the
    SPSA batch (2 + 2n perturbed pairs + 2 interaction members), the greedy evaluation, and, inside the
    fine-tune, one member's MADDPG train call and one of its rollouts, to split rollouts from updates; also
    the check before each fine-tune that restarts teams worse than random play, and its cost relative to
    the pair fine-tune; and the checkpoint saved after every outer iteration, relative to the same."""
    import jax
    import jax.numpy as jnp

    from _timing import median_seconds
    from gsiirl.algorithms.sample_based import _params
    from gsiirl.algorithms.seed_batch import tree_index
    from gsiirl.experiments.mpe import DEFAULT_OPTIONS, make_backend
    from gsiirl.games.continuous import rollout
    from gsiirl.solvers.maddpg import make_policy

    backend = make_backend(dict(DEFAULT_OPTIONS))
    game, c = backend.game, backend.config
    key = jax.random.PRNGKey(0)
    theta_l, theta_e = backend.initial_parameters(key)
    pair = backend._pair(theta_l, theta_e)
    states = backend._init_states(key, 2)
    states, measured = backend._step(key, states, pair)
    interaction_state, model_state = tree_index(states, 0), tree_index(states, 1)
    size = 2 + 2 * c.spsa_samples
    thetas_l, thetas_e = jnp.broadcast_to(theta_l, (size,) + theta_l.shape), jnp.broadcast_to(theta_e, (size,) + theta_e.shape)
    one = tree_index(_params(theta_l[None], theta_e[None], 0.0, 0.0), 0)
    train_one = jax.jit(backend._train)
    rollout_one = jax.jit(lambda k, actor: jnp.sum(  # a result that needs the whole rollout (not just `alive`)
        rollout(k, game, make_policy(game, actor, exploration=0.1), c.maddpg.num_envs).observations))
    reset_check = jax.jit(backend._reset_impl)  # the check before a fine-tune (reset_worse_than_random)
    profile = {
        "pair_fine_tune": median_seconds(backend._step, key, states, pair, repeats=repeats),
        "pair_reset_check": median_seconds(reset_check, key, states, pair, repeats=repeats),
        "spsa_batch": median_seconds(backend._spsa_batch, key, model_state, interaction_state, thetas_l, thetas_e,
                                     measured["mu_l"][0], measured["mu_e"][0], repeats=repeats),
        "greedy_evaluation": median_seconds(backend._evaluate, key, model_state.actor, repeats=repeats),
        "one_member_train": median_seconds(train_one, key, model_state, one, repeats=repeats),
        "one_member_rollout": median_seconds(rollout_one, key, model_state.actor, repeats=repeats),
    }
    profile["reset_check_over_pair_fine_tune_ratio"] = profile["pair_reset_check"] / profile["pair_fine_tune"]
    # the checkpoint written after every outer iteration (θ's, both MADDPG states, 50 rows of 40 metrics)
    import tempfile

    from gsiirl.algorithms.run_state import RunState

    store = RunState(Path(tempfile.mkdtemp()) / "checkpoint", {"benchmark": True})
    rows = [[{f"metric_{i}": 1.0 for i in range(40)} for _ in range(50)]]
    trees = {"theta_l": theta_l[None], "theta_e": theta_e[None], "states": jax.tree_util.tree_map(lambda x: x[None], states)}
    profile["checkpoint_save"] = median_seconds(lambda: store.save("gsiirl", 50, trees, {"histories": rows}),
                                                repeats=repeats)
    profile["checkpoint_save_over_pair_fine_tune_ratio"] = profile["checkpoint_save"] / profile["pair_fine_tune"]
    return profile


def pinning_comparison(workers: int = 2) -> dict[str, float]:
    """Two (``workers``) concurrent processes each timing :func:`iteration_profile`, as the process backend's
    workers run units side by side: first sharing all cores, then each pinned to its own share of them
    (``gsiirl.experiments.parallel.pin_to_cores``'s split, applied before the child starts). Per piece:
    the mean over the processes of each mode, and the pinned / shared ratio (below 1: pinning is faster)."""
    import multiprocessing
    import os
    import subprocess
    import sys

    from gsiirl.experiments.parallel import pin_to_cores

    if not hasattr(os, "sched_setaffinity"):
        raise SystemExit("--pinning: this OS has no CPU affinity")
    command = [sys.executable, str(Path(__file__).resolve()), "--profile-only"]

    def run(pinned: bool) -> list[dict[str, float]]:
        counter = multiprocessing.Value("i", 0)  # the k-th child takes the k-th share, as the k-th worker does
        children = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True,
                                     preexec_fn=(lambda: pin_to_cores(counter, workers)) if pinned else None)
                    for _ in range(workers)]
        outputs = [child.communicate()[0] for child in children]
        if any(child.returncode for child in children):
            raise SystemExit("--pinning: a profiling child failed")
        return [json.loads(output.strip().splitlines()[-1]) for output in outputs]  # after any import chatter

    out = {}
    shared, pinned = run(False), run(True)
    for piece in ("pair_fine_tune", "pair_reset_check", "spsa_batch", "one_member_train"):
        mean = lambda profiles: float(np.mean([profile[piece] for profile in profiles]))
        out[f"{piece}_shared_cores"], out[f"{piece}_pinned"] = mean(shared), mean(pinned)
        out[f"{piece}_pinned_over_shared_ratio"] = mean(pinned) / mean(shared)
    return out


def critics_comparison(members: int = 8, repeats: int = 5) -> dict[str, float]:
    """Median seconds of one vmapped MADDPG train call of ``members`` reward pairs (the SPSA batch's size
    at the defaults) with one critic per agent and with one critic per team, same run; and their ratio."""
    import jax
    import jax.numpy as jnp

    from _timing import median_seconds
    from gsiirl.experiments.mpe import DEFAULT_OPTIONS, make_backend
    from gsiirl.games.continuous import make_reward_params
    from gsiirl.solvers.maddpg import init_state, make_train

    out = {}
    for critics in ("agent", "team"):
        backend = make_backend(dict(DEFAULT_OPTIONS, critics=critics))
        game, config = backend.game, backend.config.maddpg
        key = jax.random.PRNGKey(0)
        widen = lambda tree: jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (members,) + x.shape), tree)
        params = widen(make_reward_params(jnp.zeros(game.learner_feature_size), jnp.zeros(game.expert_feature_size),
                                          True, True))
        train = jax.jit(jax.vmap(make_train(game, config), in_axes=(None, 0, 0)))
        out[f"train_{members}_members_{critics}_critics"] = median_seconds(
            train, key, widen(init_state(key, game, config)), params, repeats=repeats)
    out["team_over_agent_ratio"] = out[f"train_{members}_members_team_critics"] / out[
        f"train_{members}_members_agent_critics"]
    return out


def precision_comparison(steps: int = 200, repeats: int = 5) -> dict[str, float]:
    """Microseconds of one gradient step of a critic-sized MLP (MADDPG's joint critic input on
    simple_adversary: the state and every agent's one-hot action; the experiment's hidden width and minibatch), products in float32 and in bfloat16
    (parameters kept in float32, as mixed precision would), same run; and the bfloat16/float32 ratio.
    Checks whether reduced precision would be a lever for the compute-bound MADDPG updates."""
    import jax
    import jax.numpy as jnp

    from _timing import median_seconds
    from gsiirl.experiments.mpe import DEFAULT_OPTIONS
    from gsiirl.games.mpe import make_game

    game = make_game()
    inputs = game.state_size + game.num_agents * game.max_actions  # as maddpg.init_state's joint critic
    hidden, batch = int(DEFAULT_OPTIONS["hidden"]), int(DEFAULT_OPTIONS["minibatch_size"])
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    weights = [0.1 * jax.random.normal(k, shape) for k, shape in
               zip(keys, ((inputs, hidden), (hidden, hidden), (hidden, 1)))]
    x = jax.random.normal(keys[3], (batch, inputs))

    def steps_in(dtype):
        def loss(ws):
            h = x.astype(dtype)
            for w in ws[:-1]:
                h = jnp.tanh(h @ w.astype(dtype))
            return jnp.sum((h @ ws[-1].astype(dtype)).astype(jnp.float32) ** 2)

        def step(_, ws):
            return [w - 1e-3 * g for w, g in zip(ws, jax.grad(loss)(ws))]
        return jax.jit(lambda ws: jax.lax.fori_loop(0, steps, step, ws))

    out = {f"critic_step_{name}_microseconds": 1e6 * median_seconds(steps_in(dtype), weights, repeats=repeats) / steps
           for name, dtype in (("float32", jnp.float32), ("bfloat16", jnp.bfloat16))}
    out["bfloat16_over_float32_ratio"] = (out["critic_step_bfloat16_microseconds"]
                                          / out["critic_step_float32_microseconds"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mpe2-steps", type=int, default=20_000)
    parser.add_argument("--loop-steps", type=int, default=5_000)
    parser.add_argument("--episodes", type=int, default=1024)
    parser.add_argument("--full-run", action="store_true")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path("/tmp/gsiirl_mpe_full_run"))
    parser.add_argument("--iteration-profile", action="store_true")
    parser.add_argument("--critics", action="store_true")
    parser.add_argument("--pinning", action="store_true")
    parser.add_argument("--precision", action="store_true")
    parser.add_argument("--profile-only", action="store_true", help="print iteration_profile() as JSON and stop")
    args = parser.parse_args()
    if args.profile_only:
        print(json.dumps(iteration_profile()))
        return

    results = {
        "mpe2_steps_per_second": mpe2_steps_per_second(args.mpe2_steps),
        "jaxmarl_python_loop_steps_per_second": jaxmarl_python_loop_steps_per_second(args.loop_steps),
        f"jaxmarl_vmapped_{args.episodes}_steps_per_second": jaxmarl_vmapped_steps_per_second(args.episodes),
    }
    if args.iteration_profile:
        results.update({f"iteration_{k}" + ("" if k.endswith("_ratio") else "_seconds"): v
                        for k, v in iteration_profile().items()})
    if args.critics:
        results.update(critics_comparison())
    if args.pinning:
        results.update(pinning_comparison())
    if args.precision:
        results.update(precision_comparison())
    if args.full_run:
        results["full_run_seconds"] = full_run_wall_time(args.seeds, args.iters, args.out)
    print(json.dumps({k: round(v, 1) if v >= 100 else round(v, 4) for k, v in results.items()}, indent=2))


if __name__ == "__main__":
    main()
