"""Seeded random tabular games for tests, demos and benchmarks."""

from __future__ import annotations

import numpy as np

from gsiirl.games.tabular import TabularGame
from gsiirl.validation import check_count


def random_tabular_game(
    seed: int,
    num_states: int = 8,
    num_learner_actions: int = 2,
    num_expert_actions: int = 2,
    horizon: int = 4,
    discount: float = 0.9,
    num_successors: int | None = None,
    reward_scale: float = 1.0,
    sparse: bool = False,
) -> TabularGame:
    """A random game: Dirichlet transitions (restricted to ``num_successors`` random successors when
    given), uniform-random rewards in [-reward_scale, reward_scale], a random initial distribution.

    With ``sparse=True`` the game stores successor indices [S, A_l, A_e, K] (K = num_successors, or S).
    """
    for name, value, low in (("seed", seed, 0), ("num_states", num_states, 1),
                             ("num_learner_actions", num_learner_actions, 1),
                             ("num_expert_actions", num_expert_actions, 1)):
        check_count(name, value, low)
    rng = np.random.default_rng(seed)
    shape = (num_states, num_learner_actions, num_expert_actions)
    k = num_states if num_successors is None else int(num_successors)
    if not 1 <= k <= num_states:
        raise ValueError(f"num_successors: expected an integer in [1, {num_states}], got {num_successors!r}")
    successors = np.stack(
        [rng.choice(num_states, size=k, replace=False) for _ in range(int(np.prod(shape)))]
    ).reshape(shape + (k,)).astype(np.int32)
    probs = rng.dirichlet(np.ones(k), size=shape).astype(np.float64)
    common = dict(
        initial=rng.dirichlet(np.ones(num_states)),
        horizon=horizon,
        discount=discount,
        learner_reward=rng.uniform(-reward_scale, reward_scale, shape[:2]),
        learner_oracle=rng.uniform(-reward_scale, reward_scale, shape),
        expert_reward=rng.uniform(-reward_scale, reward_scale, shape),
    )
    game = TabularGame(successor_states=successors, successor_probs=probs, **common)
    return game if sparse else game.to_dense()
