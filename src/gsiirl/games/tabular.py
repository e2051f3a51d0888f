"""Finite-horizon two-player tabular Markov games (DESIGN §2).

Index conventions used everywhere in the library:

* ``S`` states, ``A_l`` learner actions, ``A_e`` expert actions, ``T`` horizon, ``K`` successors.
* Joint reward / occupancy tables are ``[S, A_l, A_e]``.
* Transitions are stored either dense ``[S, A_l, A_e, S]`` or sparse as successor indices and
  probabilities ``[S, A_l, A_e, K]``; :class:`DenseDynamics` and :class:`SparseDynamics` give the two
  operations every solver needs (expectation of a next-state value, push-forward of a mass).
"""

from __future__ import annotations

from typing import NamedTuple, Union

import jax
import jax.numpy as jnp
import numpy as np

PROBABILITY_TOLERANCE = 1e-5


class DenseDynamics(NamedTuple):
    """Dense transition tensor ``P[s, a_l, a_e, s']``, shape [S, A_l, A_e, S]."""

    transitions: jax.Array


class SparseDynamics(NamedTuple):
    """Sparse successors: ``P(successor_states[s,a_l,a_e,k] | s,a) = successor_probs[s,a_l,a_e,k]``.

    Both arrays have shape [S, A_l, A_e, K]; unused slots carry probability 0.
    """

    successor_states: jax.Array
    successor_probs: jax.Array


Dynamics = Union[DenseDynamics, SparseDynamics]


def expected_next_value(dynamics: Dynamics, next_value: jax.Array) -> jax.Array:
    """``E[V(s') | s, a_l, a_e]`` for a value ``[S]`` (or ``[S, n]``): returns [S, A_l, A_e] (or [..., n])."""
    if isinstance(dynamics, DenseDynamics):
        return jnp.tensordot(dynamics.transitions, next_value, axes=([3], [0]))
    gathered = next_value[dynamics.successor_states]  # [S, A_l, A_e, K, ...]
    # a contraction over K rather than sum(probs * gathered): the same sum, but XLA's CPU code for
    # the broadcast-multiply-reduce is 5x slower, 20x under vmap (session 12, docs/results.md)
    return jnp.einsum("slek,slek...->sle...", dynamics.successor_probs, gathered)


def push_forward(dynamics: Dynamics, mass: jax.Array) -> jax.Array:
    """Next-state distribution ``Σ_{s,a} mass[s,a] P(s'|s,a)`` for a joint mass [S, A_l, A_e] -> [S]."""
    if isinstance(dynamics, DenseDynamics):
        return jnp.tensordot(mass, dynamics.transitions, axes=([0, 1, 2], [0, 1, 2]))
    num_states = mass.shape[0]
    weights = (mass[..., None] * dynamics.successor_probs).reshape(-1)
    return jax.ops.segment_sum(weights, dynamics.successor_states.reshape(-1), num_segments=num_states)


def _as_float_array(name: str, value, shape: tuple[int, ...] | None) -> jax.Array:
    array = np.asarray(value)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ValueError(f"{name}: expected a numeric array, got dtype {array.dtype}")
    if np.iscomplexobj(array):
        raise ValueError(f"{name}: expected a real-valued array, got complex dtype {array.dtype}")
    if shape is not None and array.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: contains NaN or infinite values")
    dtype = jnp.result_type(float)
    largest = float(np.max(np.abs(array))) if array.size else 0.0
    if largest > float(jnp.finfo(dtype).max):  # e.g. 1e39 would become inf in float32, JAX's default
        raise ValueError(f"{name}: values beyond the range of {np.dtype(dtype).name} (largest magnitude "
                         f"{largest:.3g})")
    return jnp.asarray(array, dtype=dtype)


def _check_distribution(name: str, probs: np.ndarray, axis: tuple[int, ...]) -> None:
    if np.any(probs < -PROBABILITY_TOLERANCE):
        raise ValueError(f"{name}: probabilities must be >= 0 (min {probs.min():.3g})")
    totals = probs.sum(axis=axis)
    deviation = np.abs(totals - 1.0)
    worst = float(np.max(deviation)) if totals.size else 0.0
    if worst > PROBABILITY_TOLERANCE * max(1, probs.shape[-1]) ** 0.5 + PROBABILITY_TOLERANCE:
        index = np.unravel_index(int(np.argmax(deviation)), totals.shape)
        where = f"row {tuple(int(i) for i in index)}" if index else "it"  # a 1-D distribution has no rows
        raise ValueError(f"{name}: {'rows' if index else 'entries'} must sum to 1 ({where} sums to "
                         f"{float(totals[index]):.6g})")


@jax.tree_util.register_pytree_node_class
class TabularGame:
    """A finite-horizon two-player Markov game given by arrays, validated on construction.

    Args:
        initial: initial state distribution, [S].
        horizon: T >= 1 (number of decision stages).
        discount: gamma in (0, 1].
        learner_reward: expert-independent learner reward ``r_li``, [S, A_l].
        learner_oracle: values of the expert-dependent learner reward ``r_ld``, [S, A_l, A_e]
            (the learner may only *query* these).
        expert_reward: hidden true expert reward ``r_e``, [S, A_l, A_e] (used only to simulate the expert).
        transitions: dense ``P[s, a_l, a_e, s']``, [S, A_l, A_e, S]; or give the sparse pair
        successor_states / successor_probs: [S, A_l, A_e, K] integer indices and probabilities.
    """

    def __init__(
        self,
        *,
        initial,
        horizon: int,
        discount: float,
        learner_reward,
        learner_oracle,
        expert_reward,
        transitions=None,
        successor_states=None,
        successor_probs=None,
    ) -> None:
        if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
            raise ValueError(f"horizon: expected an integer T >= 1, got {horizon!r}")
        try:
            if isinstance(discount, (str, bytes, bool)):
                raise TypeError
            discount_value = float(discount)
        except (TypeError, ValueError):
            raise ValueError(f"discount: expected a number in (0, 1], got {discount!r}") from None
        if not (0.0 < discount_value <= 1.0):
            raise ValueError(f"discount: expected a number in (0, 1], got {discount!r}")

        dense_given = transitions is not None
        sparse_given = successor_states is not None or successor_probs is not None
        if dense_given == sparse_given:
            raise ValueError(
                "transitions: give either dense `transitions` [S, A_l, A_e, S] or both "
                "`successor_states` and `successor_probs` [S, A_l, A_e, K], not both and not neither"
            )

        oracle = _as_float_array("learner_oracle", learner_oracle, None)
        if oracle.ndim != 3:
            raise ValueError(f"learner_oracle: expected shape [S, A_l, A_e], got {tuple(oracle.shape)}")
        num_states, num_learner_actions, num_expert_actions = oracle.shape
        if min(oracle.shape) < 1:
            raise ValueError(f"learner_oracle: every dimension must be >= 1, got {tuple(oracle.shape)}")
        joint_shape = (num_states, num_learner_actions, num_expert_actions)

        self.learner_oracle = oracle
        self.expert_reward = _as_float_array("expert_reward", expert_reward, joint_shape)
        self.learner_reward = _as_float_array("learner_reward", learner_reward, joint_shape[:2])
        self.initial = _as_float_array("initial", initial, (num_states,))
        _check_distribution("initial", np.asarray(self.initial), axis=(0,))

        if dense_given:
            dense = _as_float_array("transitions", transitions, joint_shape + (num_states,))
            _check_distribution("transitions", np.asarray(dense), axis=(3,))
            self.dynamics: Dynamics = DenseDynamics(dense)
        else:
            if successor_states is None or successor_probs is None:
                raise ValueError("successor_states/successor_probs: both must be given for the sparse form")
            indices = np.asarray(successor_states)
            if not np.issubdtype(indices.dtype, np.integer):
                raise ValueError(f"successor_states: expected an integer array, got dtype {indices.dtype}")
            if indices.ndim != 4 or indices.shape[:3] != joint_shape:
                raise ValueError(f"successor_states: expected shape {joint_shape + ('K',)}, got {indices.shape}")
            if indices.size and (indices.min() < 0 or indices.max() >= num_states):
                raise ValueError(f"successor_states: indices must lie in [0, {num_states}), got range "
                                 f"[{indices.min()}, {indices.max()}]")
            probs = _as_float_array("successor_probs", successor_probs, indices.shape)
            _check_distribution("successor_probs", np.asarray(probs), axis=(3,))
            self.dynamics = SparseDynamics(jnp.asarray(indices, dtype=jnp.int32), probs)

        self.horizon = int(horizon)
        self.discount = discount_value

    # -- pytree: arrays are leaves, horizon and discount compile-time constants ---------------------
    def tree_flatten(self):
        children = (self.dynamics, self.initial, self.learner_reward, self.learner_oracle, self.expert_reward)
        return children, (self.horizon, self.discount)

    @classmethod
    def tree_unflatten(cls, static, children):
        game = object.__new__(cls)
        (game.dynamics, game.initial, game.learner_reward, game.learner_oracle, game.expert_reward) = children
        game.horizon, game.discount = static
        return game

    # -- sizes -----------------------------------------------------------------------------------
    @property
    def num_states(self) -> int:
        return int(self.learner_oracle.shape[0])

    @property
    def num_learner_actions(self) -> int:
        return int(self.learner_oracle.shape[1])

    @property
    def num_expert_actions(self) -> int:
        return int(self.learner_oracle.shape[2])

    @property
    def joint_shape(self) -> tuple[int, int, int]:
        return (self.num_states, self.num_learner_actions, self.num_expert_actions)

    @property
    def is_sparse(self) -> bool:
        return isinstance(self.dynamics, SparseDynamics)

    # -- ground-truth reward tables ----------------------------------------------------------------
    @property
    def learner_true_reward(self) -> jax.Array:
        """``r_ld + r_li`` as a joint table [S, A_l, A_e] (what the learner is judged by)."""
        return self.learner_oracle + self.learner_reward[:, :, None]

    def learner_reward_with(self, expert_dependent: jax.Array) -> jax.Array:
        """``r_ld^θl + r_li`` for an estimated expert-dependent table [S, A_l, A_e]."""
        return expert_dependent + self.learner_reward[:, :, None]

    def to_sparse(self) -> "TabularGame":
        """The same game with sparse successors (K = max number of nonzero successors)."""
        if self.is_sparse:
            return self
        dense = np.asarray(self.dynamics.transitions)
        k = max(1, int((dense > 0).sum(axis=3).max()))
        order = np.argsort(-dense, axis=3, kind="stable")[..., :k]
        probs = np.take_along_axis(dense, order, axis=3)
        return self._replace_dynamics(successor_states=order.astype(np.int32), successor_probs=probs)

    def to_dense(self) -> "TabularGame":
        """The same game with a dense [S, A_l, A_e, S] transition tensor."""
        if not self.is_sparse:
            return self
        idx = np.asarray(self.dynamics.successor_states)
        probs = np.asarray(self.dynamics.successor_probs)
        dense = np.zeros(self.joint_shape + (self.num_states,), dtype=probs.dtype)
        s, al, ae, _ = np.indices(idx.shape)
        np.add.at(dense, (s, al, ae, idx), probs)
        return self._replace_dynamics(transitions=dense)

    def with_rewards(self, *, learner_reward=None, learner_oracle=None, expert_reward=None) -> "TabularGame":
        """A copy with some reward tables replaced (re-validated)."""
        kwargs = self._dynamics_kwargs()
        return TabularGame(
            initial=self.initial,
            horizon=self.horizon,
            discount=self.discount,
            learner_reward=self.learner_reward if learner_reward is None else learner_reward,
            learner_oracle=self.learner_oracle if learner_oracle is None else learner_oracle,
            expert_reward=self.expert_reward if expert_reward is None else expert_reward,
            **kwargs,
        )

    def _dynamics_kwargs(self) -> dict:
        if self.is_sparse:
            return {"successor_states": self.dynamics.successor_states, "successor_probs": self.dynamics.successor_probs}
        return {"transitions": self.dynamics.transitions}

    def _replace_dynamics(self, **dynamics) -> "TabularGame":
        return TabularGame(
            initial=self.initial,
            horizon=self.horizon,
            discount=self.discount,
            learner_reward=self.learner_reward,
            learner_oracle=self.learner_oracle,
            expert_reward=self.expert_reward,
            **dynamics,
        )

    def __repr__(self) -> str:
        form = "sparse" if self.is_sparse else "dense"
        return (f"TabularGame(S={self.num_states}, A_l={self.num_learner_actions}, "
                f"A_e={self.num_expert_actions}, T={self.horizon}, gamma={self.discount}, {form})")
