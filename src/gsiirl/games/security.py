"""Cyber-security attack-graph game (paper §8.3 and Appendix A.10.3; DESIGN §6 "Security").

A seeded generator draws a directed attack graph over ``n`` nodes (machines) and ``m`` edges (exploits).
Node ``entry`` starts compromised and every node is reachable from it. The state is the compromised
set as a bit mask (``2**n`` states; bit ``i`` set means node ``i`` is compromised). Each stage the
attacker (expert) picks one edge to attack and the defender (learner) picks one edge to block — **one
action per edge for each player** (``A_l = A_e = m``). The paper's "action cardinality 8" for a graph
with 10 edges is inconsistent with its own description, so we follow the description.

Attack on ``i -> j`` succeeds with the edge's probability when ``i`` is compromised, ``j`` is not and the
defender does not block that edge; otherwise the state is unchanged. Successors are stored sparsely
(``K = 2``: the success and the failure successor).

Rewards (expected over the success draw, so that they are functions of ``(s, a_l, a_e)``):

* attacker ``r_e = value[j] * P(j newly compromised | s, a) - attack_cost[edge]``;
* defender ``r_ld = -r_e`` (the queried oracle) and ``r_li = -block_cost[blocked edge]`` (known).

Reward features (DESIGN §2): one feature per node ("expected newly compromised", ``P(j newly
compromised | s, a)``), one per edge "attacked" and one per edge "blocked": ``d = n + 2m``. Both true
rewards are exactly linear in them: ``θ_e* = (value, -attack_cost, 0) / scale`` and ``θ_l* = -θ_e*``
for ``r_ld``. ``scale`` is chosen so that ``||θ*|| = representation_norm`` (default 0.9, strictly inside
the unit ball); models multiply by ``scale`` (see :class:`SecurityReward`).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from gsiirl.rewards.models import PytreeModel

from gsiirl.games.tabular import TabularGame

MAX_NODES = 20
DENSE_FEATURE_LIMIT = 50_000_000  # entries of [S, A_l, A_e, d] above which dense features are refused


@dataclass(frozen=True)
class AttackGraph:
    """A directed attack graph with per-node values and per-edge costs / success probabilities.

    Attributes:
        num_nodes: n.
        entry: index of the initially compromised node.
        sources, targets: [m] int edge endpoints (edge e is ``sources[e] -> targets[e]``).
        node_values: [n] value gained by compromising each node (0 for the entry).
        attack_costs, block_costs, success_probs: [m] per-edge parameters.
    """

    num_nodes: int
    entry: int
    sources: np.ndarray
    targets: np.ndarray
    node_values: np.ndarray
    attack_costs: np.ndarray
    block_costs: np.ndarray
    success_probs: np.ndarray

    @property
    def num_edges(self) -> int:
        return int(self.sources.shape[0])

    @property
    def num_states(self) -> int:
        return 2 ** self.num_nodes

    @property
    def initial_state(self) -> int:
        return 1 << self.entry

    def to_dict(self) -> dict:
        """JSON-serialisable description (for results files and figures)."""
        return {
            "num_nodes": self.num_nodes,
            "entry": self.entry,
            "edges": [[int(i), int(j)] for i, j in zip(self.sources, self.targets)],
            "node_values": [float(v) for v in self.node_values],
            "attack_costs": [float(v) for v in self.attack_costs],
            "block_costs": [float(v) for v in self.block_costs],
            "success_probs": [float(v) for v in self.success_probs],
        }


def _check_int(name: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise ValueError(f"{name}: expected an integer in [{low}, {high}], got {value!r}")
    return int(value)


def _check_range(name: str, value) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a (low, high) pair of numbers, got {value!r}") from None
    if not (np.isfinite(low) and np.isfinite(high) and low <= high):
        raise ValueError(f"{name}: expected finite low <= high, got {value!r}")
    return low, high


def generate_attack_graph(
    seed: int,
    num_nodes: int = 8,
    num_edges: int | None = None,
    *,
    value_range=(1.0, 3.0),
    attack_cost_range=(0.1, 0.5),
    block_cost_range=(0.1, 0.5),
    success_range=(0.4, 0.9),
) -> AttackGraph:
    """Draw a random attack graph from ``seed`` (numpy PCG64; the same seed gives the same graph).

    Construction: node 0 is the entry; a random spanning arborescence (node ``j``'s parent drawn
    uniformly among nodes ``< j``, after a random relabelling of the non-entry nodes) makes every
    node reachable; the remaining ``m - (n - 1)`` edges are drawn uniformly without replacement among
    the other ordered pairs ``i -> j`` with ``i != j`` and ``j != entry``.

    Args:
        seed: integer seed.
        num_nodes: n in [2, 20] (2**n states).
        num_edges: m in [n - 1, (n - 1)**2]; default ``n + 2`` (10 for the paper's 8 nodes).
    """
    num_nodes = _check_int("num_nodes", num_nodes, 2, MAX_NODES)
    max_edges = (num_nodes - 1) ** 2
    if num_edges is None:
        num_edges = min(num_nodes + 2, max_edges)
    num_edges = _check_int("num_edges", num_edges, num_nodes - 1, max_edges)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {seed!r}")
    ranges = {name: _check_range(name, value) for name, value in [
        ("value_range", value_range), ("attack_cost_range", attack_cost_range),
        ("block_cost_range", block_cost_range), ("success_range", success_range)]}
    if not (0.0 < ranges["success_range"][0] and ranges["success_range"][1] <= 1.0):
        raise ValueError(f"success_range: probabilities must lie in (0, 1], got {success_range!r}")

    rng = np.random.default_rng(int(seed))
    entry = 0
    order = np.concatenate([[entry], 1 + rng.permutation(num_nodes - 1)])  # discovery order
    edges: list[tuple[int, int]] = []
    for position in range(1, num_nodes):
        parent = order[rng.integers(0, position)]
        edges.append((int(parent), int(order[position])))
    existing = set(edges)
    candidates = [(i, j) for i in range(num_nodes) for j in range(num_nodes)
                  if i != j and j != entry and (i, j) not in existing]
    extra = rng.choice(len(candidates), size=num_edges - len(edges), replace=False)
    edges.extend(candidates[k] for k in sorted(extra))
    edges = [edges[k] for k in rng.permutation(len(edges))]

    node_values = rng.uniform(*ranges["value_range"], size=num_nodes)
    node_values[entry] = 0.0
    return AttackGraph(
        num_nodes=num_nodes,
        entry=entry,
        sources=np.array([i for i, _ in edges], dtype=np.int32),
        targets=np.array([j for _, j in edges], dtype=np.int32),
        node_values=node_values,
        attack_costs=rng.uniform(*ranges["attack_cost_range"], size=num_edges),
        block_costs=rng.uniform(*ranges["block_cost_range"], size=num_edges),
        success_probs=rng.uniform(*ranges["success_range"], size=num_edges),
    )


def compromise_probability(graph: AttackGraph, dtype=np.float32) -> np.ndarray:
    """``P(target of a_e newly compromised | s, a_l, a_e)``: [S, A_l, A_e] (A_l = A_e = m)."""
    states = np.arange(graph.num_states, dtype=np.int64)[:, None]
    source_on = (states >> graph.sources[None, :]) & 1  # [S, m]
    target_on = (states >> graph.targets[None, :]) & 1
    feasible = (source_on == 1) & (target_on == 0)  # attack on edge e can succeed in s
    not_blocked = ~np.eye(graph.num_edges, dtype=bool)  # [A_l, A_e]
    return (feasible[:, None, :] & not_blocked[None]).astype(dtype) * graph.success_probs.astype(dtype)


def security_game(graph: AttackGraph, *, horizon: int = 10, discount: float = 0.95) -> TabularGame:
    """The attack-graph Markov game as a sparse :class:`TabularGame` (K = 2 successors).

    Slot 0 is the "success" successor ``s | (1 << target)`` with the success probability (or ``s``
    with probability 1 when the attack cannot succeed); slot 1 is ``s`` with the rest.
    """
    num_states, m = graph.num_states, graph.num_edges
    p_new = compromise_probability(graph, np.float64)  # [S, m, m]
    states = np.arange(num_states, dtype=np.int64)[:, None, None]
    success_state = states | (np.int64(1) << graph.targets[None, None, :].astype(np.int64))
    possible = p_new > 0
    successors = np.empty((num_states, m, m, 2), dtype=np.int32)
    successors[..., 0] = np.where(possible, success_state, states)
    successors[..., 1] = np.broadcast_to(states, (num_states, m, m))
    probs = np.empty((num_states, m, m, 2), dtype=np.float32)
    probs[..., 0] = np.where(possible, p_new, 1.0)
    probs[..., 1] = 1.0 - probs[..., 0]

    expert_reward = p_new * graph.node_values[graph.targets][None, None, :] - graph.attack_costs[None, None, :]
    initial = np.zeros(num_states, dtype=np.float32)
    initial[graph.initial_state] = 1.0
    return TabularGame(
        initial=initial,
        horizon=horizon,
        discount=discount,
        learner_reward=np.broadcast_to(-graph.block_costs[None, :], (num_states, m)).astype(np.float32),
        learner_oracle=(-expert_reward).astype(np.float32),
        expert_reward=expert_reward.astype(np.float32),
        successor_states=successors,
        successor_probs=probs,
    )


def feature_names(graph: AttackGraph) -> list[str]:
    """Names of the ``d = n + 2m`` reward features, in parameter order."""
    edges = [f"{i}->{j}" for i, j in zip(graph.sources, graph.targets)]
    return ([f"compromised[{j}]" for j in range(graph.num_nodes)]
            + [f"attacked[{e}]" for e in edges] + [f"blocked[{e}]" for e in edges])


def raw_true_parameters(graph: AttackGraph) -> tuple[np.ndarray, np.ndarray]:
    """Unscaled true weights ``(θ_ld, θ_e)`` [d] with ``r = φ · θ`` (``θ_ld = -θ_e``)."""
    expert = np.concatenate([graph.node_values, -graph.attack_costs, np.zeros(graph.num_edges)])
    return -expert, expert


def reward_features(graph: AttackGraph) -> np.ndarray:
    """Dense unscaled features φ [S, A_l, A_e, n + 2m] (float32); refuses sizes over DENSE_FEATURE_LIMIT.

    For large graphs use :class:`SecurityReward`, which computes ``φ · θ`` without materialising φ.
    """
    n, m, num_states = graph.num_nodes, graph.num_edges, graph.num_states
    size = num_states * m * m * (n + 2 * m)
    if size > DENSE_FEATURE_LIMIT:
        raise ValueError(f"graph: dense features would have {size:,} entries (> {DENSE_FEATURE_LIMIT:,}); "
                         "use SecurityReward, which never materialises them")
    p_new = compromise_probability(graph)
    node_of_edge = np.eye(n, dtype=np.float32)[graph.targets]  # [m, n]
    node_part = p_new[..., None] * node_of_edge[None, None]  # [S, A_l, A_e, n]
    attack_part = np.broadcast_to(np.eye(m, dtype=np.float32)[None, None], (num_states, m, m, m))
    block_part = np.broadcast_to(np.eye(m, dtype=np.float32)[None, :, None], (num_states, m, m, m))
    return np.concatenate([node_part, attack_part, block_part], axis=-1)


def feature_scale(graph: AttackGraph, representation_norm: float = 0.9) -> float:
    """The multiplier ``scale`` such that the true weights ``θ* = θ_raw / scale`` have norm ``representation_norm``."""
    if not 0.0 < representation_norm <= 1.0:
        raise ValueError(f"representation_norm: expected a number in (0, 1], got {representation_norm!r}")
    _, expert = raw_true_parameters(graph)
    return float(np.linalg.norm(expert) / representation_norm)


@jax.tree_util.register_pytree_node_class
class SecurityReward(PytreeModel):
    """Linear reward model ``r^θ = scale · φ · θ`` over the security features, without materialising φ.

    ``table(θ) = scale · (P_new · θ_node[target(a_e)] + θ_attack[a_e] + θ_block[a_l])``: memory is one
    [S, A_l, A_e] table, so it serves n = 16 (65,536 states) where dense φ would need ~10^9 entries.
    Follows the :class:`gsiirl.rewards.RewardModel` protocol (feature expectations come from autodiff).
    """

    # a pytree: the per-graph arrays (and scale) are leaves, so graphs of one size share a compilation;
    # ``graph`` is host-side information and is not carried into compiled code
    _array_fields = ("compromise", "targets", "scale")
    _static_fields = ("num_nodes", "num_edges", "num_params", "joint_shape")

    def __init__(self, graph: AttackGraph, scale: float | None = None, representation_norm: float = 0.9) -> None:
        self.graph = graph
        self.scale = feature_scale(graph, representation_norm) if scale is None else float(scale)
        self.num_nodes, self.num_edges = graph.num_nodes, graph.num_edges
        self.num_params = self.num_nodes + 2 * self.num_edges
        self.joint_shape = (graph.num_states, self.num_edges, self.num_edges)
        self.compromise = jnp.asarray(compromise_probability(graph))
        self.targets = jnp.asarray(graph.targets)

    def table(self, theta: jax.Array) -> jax.Array:
        """θ [n + 2m] -> reward table [S, A_l, A_e]."""
        n, m = self.num_nodes, self.num_edges
        node, attack, block = theta[:n], theta[n:n + m], theta[n + m:]
        return self.scale * (self.compromise * node[self.targets][None, None, :]
                             + attack[None, None, :] + block[None, :, None])

    def true_parameters(self) -> tuple[jax.Array, jax.Array]:
        """``(θ_l*, θ_e*)`` [d] reproducing ``r_ld`` and ``r_e`` exactly under this model."""
        learner, expert = raw_true_parameters(self.graph)
        return jnp.asarray(learner / self.scale), jnp.asarray(expert / self.scale)

    def init(self, key: jax.Array, radius: float = 1.0) -> jax.Array:
        """A random θ: uniform direction, norm uniform in [0.5, 1] · radius."""
        direction_key, radius_key = jax.random.split(key)
        direction = jax.random.normal(direction_key, (self.num_params,))
        direction = direction / jnp.maximum(jnp.linalg.norm(direction), 1e-12)
        return direction * radius * jax.random.uniform(radius_key, (), minval=0.5, maxval=1.0)
