"""Running several seeds of one algorithm as one vmapped batch (the PureJaxRL pattern, DESIGN §9).

A *seed group* is a leading axis S over every per-seed array (keys [S, 2], parameters [S, n], MADDPG
states [S, ...]). :func:`seedwise` turns a per-seed function into its group version: ``vmap`` for
S > 1, and for a group of one the unbatched function between an index and an expand, so that a group
of one computes exactly (bit for bit) what the per-seed code computes.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp


def tree_index(tree, i):
    """Member ``i`` of every leaf's leading axis."""
    return jax.tree_util.tree_map(lambda x: x[i], tree)


def tree_expand(tree):
    """A leading axis of size one on every leaf."""
    return jax.tree_util.tree_map(lambda x: jnp.asarray(x)[None], tree)


def seedwise(function: Callable, batched: bool, jit: bool = True) -> Callable:
    """The group version of a per-seed ``function`` whose every argument and output has a leading seed
    axis: ``jax.vmap`` (jitted if ``jit``) when ``batched``; otherwise the per-seed function (jitted if
    ``jit``) on member 0, its outputs expanded back to a group of one."""
    if batched:
        vmapped = jax.vmap(function)
        return jax.jit(vmapped) if jit else vmapped
    single = jax.jit(function) if jit else function
    return lambda *args: tree_expand(single(*tree_index(args, 0)))


def split_each(keys: jax.Array, num: int) -> jax.Array:
    """``jax.random.split(key, num)`` for every key of a group: [S, 2] -> [S, num, 2] (exact integers)."""
    return jax.vmap(lambda key: jax.random.split(key, num))(keys)


def fold_in_each(keys: jax.Array, data: int) -> jax.Array:
    """``jax.random.fold_in(key, data)`` for every key of a group: [S, 2] -> [S, 2]."""
    return jax.vmap(lambda key: jax.random.fold_in(key, data))(keys)


def check_keys(keys) -> jax.Array:
    """A group of PRNG keys as a [S, 2] uint32 array (ValueError naming ``keys`` otherwise).

    Raw keys (``jax.random.PRNGKey``) pass through; typed threefry keys (``jax.random.key``) are turned
    into their raw words, which give the same random numbers.
    """
    keys = _raw_key_data(keys)
    if keys.ndim != 2 or keys.shape[0] < 1 or keys.shape[1] != 2 or keys.dtype != jnp.uint32:
        raise ValueError(f"keys: expected a [S, 2] uint32 array of PRNG keys (S >= 1), e.g. "
                         f"jnp.stack([jax.random.PRNGKey(s) for s in seeds]); got {keys.dtype}{list(keys.shape)}")
    return keys


def check_key(key) -> jax.Array:
    """One PRNG key as a [2] uint32 array (ValueError naming ``key`` otherwise); typed keys as in check_keys."""
    raw = _raw_key_data(key, "key")
    if raw.shape != (2,) or raw.dtype != jnp.uint32:
        raise ValueError(f"key: expected one PRNG key, e.g. jax.random.PRNGKey(seed) or jax.random.key(seed); "
                         f"got {_describe(key)}")
    return raw


def _raw_key_data(keys, name: str = "keys") -> jax.Array:
    """Typed threefry keys -> their raw uint32 words; anything else as an array, unchanged."""
    keys = jnp.asarray(keys)
    if jax.dtypes.issubdtype(keys.dtype, jax.dtypes.prng_key):
        implementation = str(jax.random.key_impl(keys))
        if implementation != "threefry2x32":
            raise ValueError(f"{name}: expected threefry2x32 keys (jax.random.key(seed)), got {implementation} keys")
        keys = jax.random.key_data(keys)
    return keys


def _describe(value) -> str:
    try:
        array = jnp.asarray(value)
        return f"{array.dtype}{list(array.shape)}"
    except TypeError:
        return type(value).__name__


def per_seed_floats(metrics: dict, size: int) -> list[dict[str, float]]:
    """{name: [S] array} -> one {name: float} dict per seed."""
    host = {name: jax.device_get(value) for name, value in metrics.items()}
    return [{name: float(value[s]) for name, value in host.items()} for s in range(size)]
