"""Adam per member of a stacked parameter tree: a restarted member steps like a fresh Adam."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gsiirl.solvers.per_member import per_member


def stacked(key, members=3):
    first, second = jax.random.split(key)
    return [(jax.random.normal(first, (members, 4, 2)), jax.random.normal(second, (members, 2)))]


def member(tree, index):
    return jax.tree_util.tree_map(lambda leaf: leaf[index], tree)


def test_each_member_steps_as_its_own_adam_and_a_restarted_member_as_a_fresh_one():
    optimizer = per_member(optax.adam(0.01))
    params = stacked(jax.random.PRNGKey(0))
    gradients = [stacked(jax.random.PRNGKey(k)) for k in range(1, 9)]
    state = optimizer.init(params)
    separate = [optax.adam(0.01) for _ in range(3)]
    separate_states = [opt.init(member(params, m)) for m, opt in enumerate(separate)]
    for gradient in gradients[:6]:  # six steps: the stack's step count is 6 for every member
        steps, state = optimizer.update(gradient, state)
        for m, opt in enumerate(separate):
            expected, separate_states[m] = opt.update(member(gradient, m), separate_states[m])
            for got, want in zip(jax.tree_util.tree_leaves(member(steps, m)), jax.tree_util.tree_leaves(expected)):
                np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)
    # restart member 1 as maddpg_reset does: its whole optimizer state from a fresh init
    fresh = optimizer.init(params)
    restart = jnp.asarray([False, True, False])
    state = jax.tree_util.tree_map(
        lambda old, new: jnp.where(restart.reshape((-1,) + (1,) * (old.ndim - 1)), new, old), state, fresh)
    separate_states[1] = separate[1].init(member(params, 1))
    for gradient in gradients[6:]:
        steps, state = optimizer.update(gradient, state)
        for m, opt in enumerate(separate):
            expected, separate_states[m] = opt.update(member(gradient, m), separate_states[m])
            for got, want in zip(jax.tree_util.tree_leaves(member(steps, m)), jax.tree_util.tree_leaves(expected)):
                np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)
    # a fresh Adam's first step has size ≈ the learning rate in every coordinate (bias-corrected m/√v = ±1)
    first, _ = optimizer.update(gradients[0], optimizer.init(params))
    np.testing.assert_allclose(np.abs(np.asarray(first[0][0])), 0.01, rtol=1e-4)
