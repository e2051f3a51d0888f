"""Core benchmark (issue: core engine): one soft_nash solve + occupancy, dense vs sparse vs NumPy.

Game: S states, 10×10 actions, T=20, K=2 successors per (s, a). Prints
(1) dense vs sparse vs a plain NumPy reference at S=256 — goal: sparse ≥ 10× faster than dense;
(2) sparse cost for S = 2^8 … 2^16 — goal: linear growth in S; memory of the dynamics O(S·A·K);
(3) the Newton step's batched 10×10 solves: ``solve_small`` vs ``jnp.linalg.solve`` (LAPACK per matrix),
    alone and inside one sparse solve + occupancy at S=256.
Run: ``python benchmarks/bench_core.py [--max-log2-states 16]``.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from _timing import median_seconds, print_table
from gsiirl.games.random import random_tabular_game
import gsiirl.solvers.equilibrium as equilibrium
from gsiirl.solvers.equilibrium import DEFAULT_ITERATIONS, soft_nash
from gsiirl.solvers.small_linear import solve_small
from gsiirl.solvers.occupancy import _forward

ACTIONS, HORIZON, SUCCESSORS = 10, 20, 2
ITERATIONS = DEFAULT_ITERATIONS  # the library's stage solver: extragradient + safeguarded Newton
NUMPY_ITERATIONS = 60  # the NumPy reference: plain extragradient to the same fixed point


def solve_and_occupancy(game):
    def run(learner_reward, expert_reward):
        result = soft_nash(game.dynamics, learner_reward, expert_reward, game.discount, 1.0, game.horizon, ITERATIONS)
        return _forward(game.dynamics, game.initial, result.policy, game.discount, True)

    return jax.jit(run)


def numpy_reference(transitions, learner_reward, expert_reward, initial, discount):
    """Plain NumPy (vectorised over states, Python loops over stages and iterations), same algorithm."""
    num_states = learner_reward.shape[0]
    values = np.zeros((num_states, 2))
    policies = []

    def softmax(x):
        z = np.exp(x - x.max(axis=-1, keepdims=True))
        return z / z.sum(axis=-1, keepdims=True)

    for _ in range(HORIZON):
        nxt = np.tensordot(transitions, values, axes=([3], [0]))
        q_l, q_e = learner_reward + discount * nxt[..., 0], expert_reward + discount * nxt[..., 1]
        spread = np.maximum(np.ptp(q_l.reshape(num_states, -1), 1), np.ptp(q_e.reshape(num_states, -1), 1))
        step = (1.0 / (1.0 + spread / 2.0))[:, None]
        z_l, z_e = np.zeros(q_l.shape[:2]), np.zeros((num_states, q_l.shape[2]))
        for _ in range(NUMPY_ITERATIONS):
            t_l = np.einsum("sle,se->sl", q_l, softmax(z_e))
            t_e = np.einsum("sle,sl->se", q_e, softmax(z_l))
            h_l, h_e = z_l + step * (t_l - z_l), z_e + step * (t_e - z_e)
            t_l = np.einsum("sle,se->sl", q_l, softmax(h_e))
            t_e = np.einsum("sle,sl->se", q_e, softmax(h_l))
            z_l, z_e = z_l + step * (t_l - h_l), z_e + step * (t_e - h_e)
        p_l, p_e = softmax(z_l), softmax(z_e)
        joint = p_l[:, :, None] * p_e[:, None, :]
        ent_l = -(p_l * np.log(p_l)).sum(1)
        ent_e = -(p_e * np.log(p_e)).sum(1)
        values = np.stack([(joint * q_l).sum((1, 2)) + ent_l, (joint * q_e).sum((1, 2)) + ent_e], -1)
        policies.append(joint)
    dist, total, weight = initial, 0.0, 1.0
    for joint in policies[::-1]:
        mass = dist[:, None, None] * joint
        total = total + weight * mass
        dist = np.tensordot(mass, transitions, axes=([0, 1, 2], [0, 1, 2]))
        weight *= discount
    return total


def small_solve_comparison(game, repeats: int) -> None:
    """(3): ratio LAPACK / solve_small for the batched solve alone and for a whole solve + occupancy."""
    rng = np.random.default_rng(0)
    matrices = jnp.asarray(rng.normal(size=(256, ACTIONS, ACTIONS)) + np.eye(ACTIONS), jnp.float32)
    rhs = jnp.asarray(rng.normal(size=(256, ACTIONS)), jnp.float32)

    def lapack(a, b):
        return jnp.linalg.solve(a, b[..., None])[..., 0]

    alone = [median_seconds(jax.jit(f), matrices, rhs, repeats=20) for f in (solve_small, lapack)]
    rewards = (game.learner_true_reward, game.expert_reward)
    ours = median_seconds(solve_and_occupancy(game), *rewards, repeats=repeats)
    equilibrium.solve_small = lapack  # the stage solver with one LAPACK call per state (the previous version)
    jax.clear_caches()  # soft_nash is jitted: drop its trace so that the swap takes effect
    try:
        previous = median_seconds(solve_and_occupancy(game), *rewards, repeats=repeats)
    finally:
        equilibrium.solve_small = solve_small
        jax.clear_caches()
    print("\nNewton-step linear systems: solve_small (vectorised elimination) vs jnp.linalg.solve (LAPACK per state)")
    print_table(["what", "solve_small s", "jnp.linalg.solve s", "ratio linalg / solve_small"],
                [[f"[256, {ACTIONS}, {ACTIONS}] solve", alone[0], alone[1], alone[1] / alone[0]],
                 ["S=256 solve + occupancy", ours, previous, previous / ours]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-log2-states", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    sparse = random_tabular_game(0, num_states=256, num_learner_actions=ACTIONS, num_expert_actions=ACTIONS,
                                 horizon=HORIZON, discount=0.95, num_successors=SUCCESSORS, sparse=True)
    dense = sparse.to_dense()
    rewards = (sparse.learner_true_reward, sparse.expert_reward)
    sparse_time = median_seconds(solve_and_occupancy(sparse), *rewards, repeats=args.repeats)
    dense_time = median_seconds(solve_and_occupancy(dense), *rewards, repeats=args.repeats)
    np_args = (np.asarray(dense.dynamics.transitions, np.float64), np.asarray(rewards[0], np.float64),
               np.asarray(rewards[1], np.float64), np.asarray(dense.initial, np.float64), dense.discount)
    numpy_time = median_seconds(numpy_reference, *np_args, repeats=1, warmup=0)
    check = np.abs(np.asarray(solve_and_occupancy(sparse)(*rewards)) - numpy_reference(*np_args)).max()
    print(f"\nS=256, A=10x10, T={HORIZON}, K={SUCCESSORS}, library stage solver ({ITERATIONS} extragradient + "
          f"Newton steps) vs NumPy ({NUMPY_ITERATIONS} extragradient steps) "
          f"(max |sparse - numpy| occupancy = {check:.2e})")
    print_table(["form", "seconds per solve+occupancy", "ratio to sparse"],
                [["sparse (JAX)", sparse_time, 1.0], ["dense (JAX)", dense_time, dense_time / sparse_time],
                 ["NumPy reference (dense)", numpy_time, numpy_time / sparse_time]])
    print(f"goal: dense/sparse >= 10 -> {'MET' if dense_time / sparse_time >= 10 else 'NOT MET'}")
    small_solve_comparison(sparse, args.repeats)

    rows = []
    base = None
    for log2 in range(8, args.max_log2_states + 1, 2):
        game = random_tabular_game(log2, num_states=2 ** log2, num_learner_actions=ACTIONS,
                                   num_expert_actions=ACTIONS, horizon=HORIZON, discount=0.95,
                                   num_successors=SUCCESSORS, sparse=True)
        seconds = median_seconds(solve_and_occupancy(game), game.learner_true_reward, game.expert_reward,
                                 repeats=args.repeats)
        per_state = seconds / 2 ** log2
        base = base or per_state
        memory = game.dynamics.successor_states.nbytes + game.dynamics.successor_probs.nbytes
        dense_ratio = "—"
        if log2 <= 10:  # the dense tensor is S²·A floats: 400 MiB at S=1024, 6.4 GiB at S=4096
            dense_game = game.to_dense()
            dense_ratio = median_seconds(solve_and_occupancy(dense_game), game.learner_true_reward,
                                         game.expert_reward, repeats=args.repeats) / seconds
            del dense_game
        rows.append([2 ** log2, seconds, per_state * 1e6, per_state / base, memory / 2 ** 20,
                     memory / (2 ** log2 * ACTIONS * ACTIONS * SUCCESSORS), dense_ratio])
    print("\nSparse soft_nash solve + occupancy vs S (linear growth means a flat 'per-state ratio')")
    print_table(["S", "seconds", "µs per state", "per-state ratio to S=256", "dynamics MiB", "bytes per (s,a,k)",
                 "dense/sparse time"],
                rows)


if __name__ == "__main__":
    main()
