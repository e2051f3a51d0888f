"""How the learner talks to the world: the expert and the r_ld oracle (DESIGN §8).

GSIIRL only ever reaches the expert through :class:`Expert` and the expert-dependent reward through
:class:`Oracle`, so replacing the simulation by a human study is one class each.
"""

from __future__ import annotations

from typing import Protocol

import jax
import jax.numpy as jnp
import numpy as np

from gsiirl.games.tabular import TabularGame
from gsiirl.solvers.equilibrium import DEFAULT_ITERATIONS, JointPolicy, solve_equilibrium
from gsiirl.solvers.occupancy import _forward
from gsiirl.solvers.sampling import Trajectories, sample_trajectories


class Expert(Protocol):
    """A black box that plays with the learner and returns the joint trajectories.

    ``interact(key, learner_reward, learner_policy, num_trajectories)``: the learner announces the reward
    table [S, A_l, A_e] its policy is computed from (r_ld^θl + r_li) and that policy ([T, S, A_l]); the
    expert returns ``num_trajectories`` trajectories of joint play (:class:`Trajectories`, [N, T] each).
    A human-study implementation would run episodes with the robot executing ``learner_policy``.
    ``fit(method="ma-irl")`` asks once for demonstrations with both TRUE rewards: ``learner_reward`` is the
    true table and ``learner_policy`` uniform (the learner's equilibrium policy needs the hidden r_e), so a
    demonstration source should ignore it (docs/user_guide.md §2).
    """

    def interact(self, key: jax.Array, learner_reward: jax.Array, learner_policy: jax.Array,
                 num_trajectories: int) -> Trajectories: ...


class Oracle(Protocol):
    """Returns queried values of the expert-dependent learner reward r_ld at given (s, a_l, a_e).

    ``query(states [M], learner_actions [M], expert_actions [M]) -> values [M]``, e.g. a table
    lookup, a simulator function, or an emotion classifier's score.
    """

    def query(self, states, learner_actions, expert_actions) -> np.ndarray: ...


class TableOracle:
    """An oracle backed by a table [S, A_l, A_e] (the simulated measurement)."""

    def __init__(self, table) -> None:
        self.table = np.asarray(table)
        if self.table.ndim != 3 or self.table.dtype.kind not in "iuf":
            raise ValueError(f"table: expected a numeric array [S, A_l, A_e], got "
                             f"{self.table.dtype} of shape {self.table.shape}")
        self.num_queries = 0

    def query(self, states, learner_actions, expert_actions) -> np.ndarray:
        states, learner_actions, expert_actions = (np.asarray(x) for x in (states, learner_actions, expert_actions))
        self.num_queries += int(states.size)
        return self.table[states, learner_actions, expert_actions]


class RecordedDemonstrations:
    """Joint trajectories recorded beforehand (e.g. :func:`gsiirl.io.load_trajectories`), as an :class:`Expert`
    for passive IRL: ``fit(game, method="ma-irl", expert=RecordedDemonstrations(trajectories))``.

    ``interact`` returns the whole recording, whatever it is asked (``num_trajectories`` and the learner's
    policy are ignored: a recording has the size it has). It does not respond to the learner, so
    ``method="gsiirl"``, whose data must come from playing the learner's current policy, refuses it.
    The arrays are checked against the game when ``fit`` uses them (:func:`check_trajectories`).
    """

    def __init__(self, trajectories) -> None:
        if not isinstance(trajectories, tuple) or len(trajectories) != 3:
            raise ValueError(f"trajectories: expected Trajectories(states, learner_actions, expert_actions), got "
                             f"{type(trajectories).__name__}")
        self.trajectories = Trajectories(*(np.asarray(array) for array in trajectories))

    def interact(self, key, learner_reward, learner_policy, num_trajectories: int) -> Trajectories:
        return self.trajectories


def query_full_table(oracle: Oracle, joint_shape: tuple[int, int, int]) -> jax.Array:
    """Query the oracle once at every (s, a_l, a_e) of a tabular game: [S, A_l, A_e].

    The tabular learner needs r_ld on the whole table (its policy is computed everywhere), so this is
    one call with all S·A_l·A_e triples, not queries at visited states only.
    """
    if isinstance(oracle, TableOracle) and oracle.table.shape != tuple(joint_shape):
        raise ValueError(f"oracle: TableOracle table has shape {oracle.table.shape}, but the game's "
                         f"[S, A_l, A_e] is {tuple(joint_shape)}")
    s, al, ae = np.indices(joint_shape)
    raw = np.asarray(oracle.query(s.ravel(), al.ravel(), ae.ravel()))
    if raw.dtype.kind not in "iuf":
        raise ValueError(f"oracle: query must return numbers, got an array of dtype {raw.dtype}")
    values = raw.astype(float)
    if values.shape != (s.size,):
        raise ValueError(f"oracle: query was asked at {s.size} (s, a_l, a_e) triples and must return "
                         f"{s.size} values [M], got shape {values.shape}")
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        first = np.unravel_index(bad[0], joint_shape)
        raise ValueError(f"oracle: query returned {bad.size} non-finite value(s) (NaN or inf), first at "
                         f"(s, a_l, a_e) = {tuple(int(i) for i in first)}: {values[bad[0]]}")
    dtype = np.dtype(jnp.result_type(float))
    too_large = np.flatnonzero(np.abs(values) > np.finfo(dtype).max)  # would become inf in float32
    if too_large.size:
        first = np.unravel_index(too_large[0], joint_shape)
        raise ValueError(f"oracle: query returned {too_large.size} value(s) beyond the range of {dtype.name}, "
                         f"first at (s, a_l, a_e) = {tuple(int(i) for i in first)}: {values[too_large[0]]:.3g}")
    return jnp.asarray(values.reshape(joint_shape), dtype=dtype)


def check_trajectories(trajectories, game: TabularGame, source: str = "expert.interact") -> Trajectories:
    """Validate trajectories from outside (an expert's ``interact``, user demonstrations): three
    integer arrays [N, T], N >= 1, T = the game's horizon, indices inside the game's sizes.
    Returns them as a :class:`Trajectories` of int32.

    Raises ValueError naming the source and field (``expert.interact: states: ...``), so bad data
    stops the run instead of silently becoming a wrong (or all-NaN) occupancy.
    """
    prefix = source
    if not isinstance(trajectories, tuple) or len(trajectories) != 3:
        raise ValueError(f"{prefix}: expected Trajectories(states, learner_actions, expert_actions), got "
                         f"{type(trajectories).__name__}")
    sizes = {"states": game.num_states, "learner_actions": game.num_learner_actions,
             "expert_actions": game.num_expert_actions}
    arrays = []
    for name, value in zip(sizes, trajectories):
        array = np.asarray(value)
        if array.dtype.kind not in "iu":
            raise ValueError(f"{prefix}: {name}: expected integer indices, got dtype {array.dtype}")
        if array.ndim != 2 or array.shape[1] != game.horizon:
            raise ValueError(f"{prefix}: {name}: expected shape [N, T] with T = horizon = {game.horizon}, "
                             f"got {array.shape}")
        if array.shape[0] < 1:
            raise ValueError(f"{prefix}: {name}: no trajectories (N = 0)")
        if arrays and array.shape != arrays[0].shape:
            raise ValueError(f"{prefix}: {name}: shape {array.shape} differs from states {arrays[0].shape}")
        if array.min() < 0 or array.max() >= sizes[name]:
            raise ValueError(f"{prefix}: {name}: indices must lie in [0, {sizes[name]}), got range "
                             f"[{array.min()}, {array.max()}]")
        arrays.append(jnp.asarray(array, dtype=jnp.int32))
    return Trajectories(*arrays)


@jax.tree_util.register_pytree_node_class
class SimulatedExpert:
    """An expert who plays the equilibrium of (learner's announced reward, the hidden TRUE r_e).

    This is the paper's data model D(θl): trajectories from the equilibrium of the MG with r_ld^θl + r_li
    and the true r_e (§5). It can also return the exact per-stage occupancy (``expected_data``), the
    infinite-data limit, which the ``exact`` hypergradient differentiates.

    ``iterations`` defaults to the solver's (10); the expert ``fit`` builds when none is given uses the
    run's ``iterations`` option (default 60), so pass ``iterations=`` to reproduce that expert exactly.
    """

    def __init__(self, game: TabularGame, *, equilibrium: str = "soft_nash", temperature: float = 1.0,
                 iterations: int = DEFAULT_ITERATIONS) -> None:
        self.game = game
        self.equilibrium = equilibrium
        self.temperature = temperature
        self.iterations = iterations

    def tree_flatten(self):
        return (self.game,), (self.equilibrium, self.temperature, self.iterations)

    @classmethod
    def tree_unflatten(cls, static, children):
        expert = object.__new__(cls)
        expert.game = children[0]
        expert.equilibrium, expert.temperature, expert.iterations = static
        return expert

    def joint_solution(self, learner_reward: jax.Array):
        """The equilibrium (policy and per-stage fixed-point residual) the expert plays for the learner's
        reward table [S, A_l, A_e]: an :class:`gsiirl.solvers.equilibrium.EquilibriumResult`."""
        return solve_equilibrium(self.game, learner_reward, self.game.expert_reward, model=self.equilibrium,
                                 temperature=self.temperature, iterations=self.iterations)

    def joint_policy(self, learner_reward: jax.Array) -> JointPolicy:
        """The data-generating joint policy for the learner's reward table [S, A_l, A_e]."""
        return self.joint_solution(learner_reward).policy

    def interact(self, key, learner_reward, learner_policy, num_trajectories: int) -> Trajectories:
        return sample_trajectories(key, self.game, self.joint_policy(learner_reward), num_trajectories)

    def expected_data(self, learner_reward: jax.Array) -> jax.Array:
        """Exact per-stage occupancy [T, S, A_l, A_e] of the interaction (differentiable)."""
        policy = self.joint_policy(learner_reward)
        return _forward(self.game.dynamics, self.game.initial, policy, self.game.discount, False)
