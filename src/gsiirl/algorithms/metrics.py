"""Evaluation metrics: what "learned" means (DESIGN §5).

All functions are pure and jit-able. Shape checks use static shapes and run under ``jax.jit`` too;
checks on *values* (index ranges, non-negative weights, discount range) run only when the inputs are
concrete (not traced), since a traced value cannot raise.

* :func:`epic_distance` — EPIC pseudometric (Gleave et al. 2021) between two reward tables, invariant to
  potential shaping and positive rescaling.
* :func:`expert_policy_kl` — visitation-weighted KL(true expert ‖ learned expert).
* :func:`expert_value_difference` — true-reward return of the true minus the learned expert policy.
* :func:`discounted_trajectory_returns` and :func:`return_correlations` — MA-AIRL style Pearson and
  Spearman correlations between returns of sampled trajectories under the learned and the true reward.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import rel_entr

__all__ = [
    "epic_distance",
    "expert_policy_kl",
    "expert_value_difference",
    "discounted_trajectory_returns",
    "return_correlations",
]

# A canonicalised reward whose standard deviation is below this many machine epsilons times the largest
# |reward| is treated as constant (equivalent to the zero reward); see `epic_distance`.
DEGENERATE_STD_EPS_FACTOR = 64.0


def _is_concrete(*values) -> bool:
    return not any(isinstance(v, jax.core.Tracer) for v in values)


def _float_array(name: str, value) -> jax.Array:
    array = jnp.asarray(value)
    if not (jnp.issubdtype(array.dtype, jnp.floating) or jnp.issubdtype(array.dtype, jnp.integer)
            or array.dtype == jnp.bool_):
        raise ValueError(f"{name}: expected a real numeric array, got dtype {array.dtype}")
    return array.astype(jnp.result_type(float))


def _check_discount(discount) -> None:
    if _is_concrete(discount):
        value = float(np.asarray(discount))
        if not (0.0 <= value <= 1.0):
            raise ValueError(f"discount: expected a number in [0, 1], got {value!r}")


def _weights(name: str, value, shape: tuple[int, ...]) -> jax.Array:
    """Validated coverage weights of the given shape, normalised to sum to 1 (uniform if None)."""
    if value is None:
        return jnp.full(shape, 1.0 / np.prod(shape), dtype=jnp.result_type(float))
    weights = _float_array(name, value)
    if weights.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {tuple(weights.shape)}")
    if _is_concrete(weights):
        host = np.asarray(weights)
        if not np.all(np.isfinite(host)) or np.any(host < 0) or host.sum() <= 0:
            raise ValueError(f"{name}: expected finite non-negative weights with a positive sum")
    return weights / jnp.sum(weights)


# ---------------------------------------------------------------------------------------------------
# EPIC
# ---------------------------------------------------------------------------------------------------

def _degenerate(std: jax.Array, reward: jax.Array) -> jax.Array:
    scale = jnp.max(jnp.abs(reward))
    return std <= DEGENERATE_STD_EPS_FACTOR * jnp.finfo(reward.dtype).eps * scale


def _combine(squared_standardised_gap, std_a, std_b, reward_a, reward_b) -> jax.Array:
    """Pearson distance from ||Ĉa − Ĉb||² (standardised), with the degenerate cases of `epic_distance`."""
    # sqrt((1 − ρ)/2) = ||Ĉa − Ĉb|| / 2 for standardised Ĉ; computed this way it is exactly 0 (to
    # rounding) for equivalent rewards instead of sqrt(rounding error).
    distance = 0.5 * jnp.sqrt(jnp.maximum(squared_standardised_gap, 0.0))
    distance = jnp.clip(distance, 0.0, 1.0)
    deg_a, deg_b = _degenerate(std_a, reward_a), _degenerate(std_b, reward_b)
    return jnp.where(deg_a & deg_b, 0.0, jnp.where(deg_a | deg_b, jnp.sqrt(0.5), distance))


def _epic_state_action(reward_a, reward_b, discount, state_w, action_w) -> jax.Array:
    """EPIC for two [S, A] rewards without s' dependence, in closed form (no [S, A, S] tensor).

    Canonical form: C(s,a,s') = X(s,a) + γ m(s') − γ E[m], with m(s) = E_A R(s,A), X = R − m.
    Under D_S × D_A × D_S the two parts are independent and X has zero mean given s, so for
    standardised rewards ||Ĉa − Ĉb||² = E_{S,A}[(Xa/σa − Xb/σb)²] + γ² Var_S'(ma/σa − mb/σb),
    σ² = E_{S,A}[X²] + γ² Var_S(m).
    """
    def parts(reward):
        m = reward @ action_w  # [S]
        x = reward - m[:, None]
        m_centred = m - state_w @ m
        var = state_w @ ((x ** 2) @ action_w) + discount ** 2 * (state_w @ m_centred ** 2)
        return x, m_centred, jnp.sqrt(var)

    x_a, m_a, std_a = parts(reward_a)
    x_b, m_b, std_b = parts(reward_b)
    safe_a, safe_b = jnp.where(std_a > 0, std_a, 1.0), jnp.where(std_b > 0, std_b, 1.0)
    gap_x = x_a / safe_a - x_b / safe_b
    gap_m = m_a / safe_a - m_b / safe_b
    squared = state_w @ ((gap_x ** 2) @ action_w) + discount ** 2 * (state_w @ gap_m ** 2)
    return _combine(squared, std_a, std_b, reward_a, reward_b)


def _epic_transition(reward_a, reward_b, discount, state_w, action_w) -> jax.Array:
    """EPIC for two [S, A, S'] rewards; materialises the canonical [S, A, S'] tables."""
    def canonical(reward):
        # C(R)(s,a,s') = R(s,a,s') + E[γ R(s',A,S') − R(s,A,S') − γ R(S,A,S')]   (Gleave et al., Def. 4.1)
        expected_from = jnp.einsum("sat,a,t->s", reward, action_w, state_w)  # E_{A,S'} R(s, A, S')
        overall = state_w @ expected_from
        return (reward + discount * expected_from[None, None, :] - expected_from[:, None, None]
                - discount * overall)

    coverage = state_w[:, None, None] * action_w[None, :, None] * state_w[None, None, :]

    def standardise(canon):
        centred = canon - jnp.sum(coverage * canon)
        std = jnp.sqrt(jnp.sum(coverage * centred ** 2))
        return centred / jnp.where(std > 0, std, 1.0), std

    hat_a, std_a = standardise(canonical(reward_a))
    hat_b, std_b = standardise(canonical(reward_b))
    squared = jnp.sum(coverage * (hat_a - hat_b) ** 2)
    return _combine(squared, std_a, std_b, reward_a, reward_b)


def epic_distance(reward_a, reward_b, discount, state_weights=None, action_weights=None) -> jax.Array:
    """EPIC pseudometric (Gleave et al. 2021) between two joint rewards; a scalar in [0, 1].

    Args:
        reward_a, reward_b: each either a state-action reward ``r(s, a_l, a_e)`` [S, A_l, A_e] or a
            transition reward ``r(s, a_l, a_e, s')`` [S, A_l, A_e, S]. The two may differ in form.
        discount: γ in [0, 1] used by the canonicalisation.
        state_weights: coverage distribution D_S over states [S] (default uniform); normalised to sum 1.
        action_weights: coverage distribution D_A over joint actions [A_l, A_e] (default uniform).

    Returns:
        ``sqrt((1 − ρ) / 2)`` where ρ is the Pearson correlation of the canonicalised rewards
        ``C(R)(s,a,s') = R(s,a,s') + E[γR(s',A,S') − R(s,A,S') − γR(S,A,S')]`` (S, S' ~ D_S, A ~ D_A
        independent) under the coverage distribution D_S × D_A × D_S over (s, a, s').

    Invariances: 0 for ``reward_b = c · reward_a`` (c > 0) and for potential shaping
    ``r'(s,a,s') = r(s,a) + γΦ(s') − Φ(s)``; 1 for ``reward_b = −reward_a``. Our tables have no s'
    dependence, so a shaped reward can only be written as a transition reward: pass it as the
    [S, A_l, A_e, S] form (a state-action table is treated as constant in s'). Adding a constant to a
    state-action table gives 0 directly (a constant is shaping with a constant Φ, and ρ ignores offsets);
    adding a state-only term f(s) does not in general (it is not shaping unless γ = 0).

    Two state-action tables are compared in closed form in O(S · A_l · A_e); if either is a transition
    reward, [S, A_l·A_e, S] canonical tables are built. Degenerate case: a reward whose canonical form
    is constant (std below ~64 machine epsilons times its largest |value|) is equivalent to the zero
    reward, for which ρ is undefined; the distance is then 0 if both rewards are degenerate and
    sqrt(1/2) (treated as uncorrelated) if exactly one is.
    """
    reward_a = _float_array("reward_a", reward_a)
    reward_b = _float_array("reward_b", reward_b)
    for name, reward in (("reward_a", reward_a), ("reward_b", reward_b)):
        if reward.ndim not in (3, 4) or (reward.ndim == 4 and reward.shape[3] != reward.shape[0]):
            raise ValueError(f"{name}: expected shape [S, A_l, A_e] or [S, A_l, A_e, S], "
                             f"got {tuple(reward.shape)}")
    if reward_a.shape[:3] != reward_b.shape[:3]:
        raise ValueError(f"reward_b: joint shape {tuple(reward_b.shape[:3])} does not match reward_a's "
                         f"{tuple(reward_a.shape[:3])}")
    _check_discount(discount)
    num_states, num_learner_actions, num_expert_actions = reward_a.shape[:3]
    num_joint = num_learner_actions * num_expert_actions
    state_w = _weights("state_weights", state_weights, (num_states,))
    action_w = _weights("action_weights", action_weights,
                        (num_learner_actions, num_expert_actions)).reshape(num_joint)
    discount = jnp.asarray(discount, dtype=reward_a.dtype)

    if reward_a.ndim == 3 and reward_b.ndim == 3:
        return _epic_state_action(reward_a.reshape(num_states, num_joint),
                                  reward_b.reshape(num_states, num_joint), discount, state_w, action_w)

    def as_transition(reward):
        flat = reward.reshape((num_states, num_joint) + reward.shape[3:])
        if reward.ndim == 3:
            flat = jnp.broadcast_to(flat[:, :, None], (num_states, num_joint, num_states))
        return flat

    return _epic_transition(as_transition(reward_a), as_transition(reward_b), discount, state_w, action_w)


# ---------------------------------------------------------------------------------------------------
# Policy and value metrics
# ---------------------------------------------------------------------------------------------------

def expert_policy_kl(state_visitation, true_expert, learned_expert) -> jax.Array:
    """Visitation-weighted KL divergence between the true and the learned expert policy; a scalar.

    ``(1/T) Σ_t Σ_s d_t(s) KL(π_e^true(·|s,t) ‖ π_e^learned(·|s,t))``.

    Args:
        state_visitation: d_t(s) [T, S], e.g. the state marginal of the occupancy under the true joint
            policy, ``gsiirl.solvers.occupancy.state_visitation(occupancy(game, policy))`` (rows
            normally sum to 1; not renormalised).
        true_expert: π_e^true [T, S, A_e].
        learned_expert: π_e^learned [T, S, A_e].

    Zero probabilities: terms with π^true = 0 contribute 0, and states with d_t(s) = 0 contribute 0
    whatever the policies there. If a visited state has π^learned(a) = 0 where π^true(a) > 0 the KL is
    genuinely infinite and ``inf`` is returned (never NaN).
    """
    visitation = _float_array("state_visitation", state_visitation)
    true_expert = _float_array("true_expert", true_expert)
    learned_expert = _float_array("learned_expert", learned_expert)
    if visitation.ndim != 2:
        raise ValueError(f"state_visitation: expected shape [T, S], got {tuple(visitation.shape)}")
    if true_expert.ndim != 3 or true_expert.shape[:2] != visitation.shape:
        raise ValueError(f"true_expert: expected shape [T, S, A_e] = {tuple(visitation.shape) + ('A_e',)}, "
                         f"got {tuple(true_expert.shape)}")
    if learned_expert.shape != true_expert.shape:
        raise ValueError(f"learned_expert: expected shape {tuple(true_expert.shape)}, "
                         f"got {tuple(learned_expert.shape)}")
    kl = jnp.sum(rel_entr(true_expert, learned_expert), axis=-1)  # [T, S]; rel_entr(0, q) = 0
    weighted = jnp.where(visitation > 0, visitation * kl, 0.0)
    return jnp.sum(weighted) / visitation.shape[0]


def expert_value_difference(true_expert_return, learned_expert_return) -> jax.Array:
    """Expert's expected value difference (DESIGN §5); a scalar (or array, elementwise).

    ``EVD = J_e(π_l, π_e^true) − J_e(π_l, π_e^learned)`` where ``J_e`` is the expected discounted
    return under the TRUE expert reward r_e, and the learner's policy π_l is held at the one that
    generated the data in both terms (so only the expert's policy differs). Compute each return with
    ``gsiirl.solvers.occupancy.expected_return(game, JointPolicy(learner, expert), game.expert_reward)``.
    If π_e^true is a best response to π_l under r_e the difference is ≥ 0 (for the soft-optimal
    expert of the entropy-regularised model it is ≥ 0 up to the entropy bonus); 0 means the learned
    reward induces an expert that is as good as the true one under the true reward.
    """
    true_value = _float_array("true_expert_return", true_expert_return)
    learned_value = _float_array("learned_expert_return", learned_expert_return)
    if true_value.shape != learned_value.shape:
        raise ValueError(f"learned_expert_return: expected shape {tuple(true_value.shape)}, "
                         f"got {tuple(learned_value.shape)}")
    return true_value - learned_value


# ---------------------------------------------------------------------------------------------------
# Return correlations over sampled trajectories (MA-AIRL)
# ---------------------------------------------------------------------------------------------------

def discounted_trajectory_returns(reward_table, states, learner_actions, expert_actions, discount) -> jax.Array:
    """Discounted return ``Σ_t γ^t r(s_t, a_l_t, a_e_t)`` of each trajectory; shape [N].

    Args:
        reward_table: r [S, A_l, A_e] (one player's reward, true or learned).
        states, learner_actions, expert_actions: integer indices [N, T].
        discount: γ in [0, 1].
    """
    reward_table = _float_array("reward_table", reward_table)
    if reward_table.ndim != 3:
        raise ValueError(f"reward_table: expected shape [S, A_l, A_e], got {tuple(reward_table.shape)}")
    indices = {}
    for axis, (name, value) in enumerate((("states", states), ("learner_actions", learner_actions),
                                          ("expert_actions", expert_actions))):
        array = jnp.asarray(value)
        if not jnp.issubdtype(array.dtype, jnp.integer):
            raise ValueError(f"{name}: expected an integer array, got dtype {array.dtype}")
        if array.ndim != 2:
            raise ValueError(f"{name}: expected shape [N, T], got {tuple(array.shape)}")
        if indices and array.shape != indices["states"].shape:
            raise ValueError(f"{name}: expected shape {tuple(indices['states'].shape)} (as states), "
                             f"got {tuple(array.shape)}")
        size = reward_table.shape[axis]
        if _is_concrete(array) and array.size and (int(array.min()) < 0 or int(array.max()) >= size):
            raise ValueError(f"{name}: indices must lie in [0, {size}), got range "
                             f"[{int(array.min())}, {int(array.max())}]")
        indices[name] = array
    _check_discount(discount)
    horizon = indices["states"].shape[1]
    weights = jnp.asarray(discount, dtype=reward_table.dtype) ** jnp.arange(horizon)  # γ^t
    rewards = reward_table[indices["states"], indices["learner_actions"], indices["expert_actions"]]
    return rewards @ weights


def _average_ranks(values: jax.Array) -> jax.Array:
    """1-based ranks with ties given the average of the ranks they span (scipy's 'average')."""
    ordered = jnp.sort(values)
    below = jnp.searchsorted(ordered, values, side="left")       # #{j: x_j < x_i}
    at_or_below = jnp.searchsorted(ordered, values, side="right")  # #{j: x_j <= x_i}
    return (below + 1 + at_or_below).astype(values.dtype) / 2.0


def _pearson(x: jax.Array, y: jax.Array) -> jax.Array:
    x_centred, y_centred = x - jnp.mean(x), y - jnp.mean(y)
    norm = jnp.sqrt(jnp.sum(x_centred ** 2) * jnp.sum(y_centred ** 2))
    return jnp.clip(jnp.sum(x_centred * y_centred) / norm, -1.0, 1.0)


def return_correlations(learned_returns, true_returns) -> tuple[jax.Array, jax.Array]:
    """Pearson and Spearman correlation between returns under the learned and the true reward.

    Args:
        learned_returns: [N] returns of N sampled trajectories under the learned reward.
        true_returns: [N] returns of the same trajectories under the true reward (N >= 2).

    Returns:
        ``(pearson, spearman)`` scalars. Spearman is the Pearson correlation of average ranks (ties
        share the mean of their ranks, as ``scipy.stats.spearmanr``). If either input is constant the
        correlation is undefined and NaN is returned (as scipy does).
    """
    learned = _float_array("learned_returns", learned_returns)
    true = _float_array("true_returns", true_returns)
    if learned.ndim != 1 or learned.shape[0] < 2:
        raise ValueError(f"learned_returns: expected shape [N] with N >= 2, got {tuple(learned.shape)}")
    if true.shape != learned.shape:
        raise ValueError(f"true_returns: expected shape {tuple(learned.shape)}, got {tuple(true.shape)}")
    pearson = _pearson(learned, true)
    spearman = _pearson(_average_ranks(learned), _average_ranks(true))
    return pearson, spearman
