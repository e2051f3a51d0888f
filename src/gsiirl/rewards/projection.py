"""Euclidean projection onto the parameter ball ``{θ : ||θ|| <= radius}``."""

import jax
import jax.numpy as jnp


def project_to_ball(theta: jax.Array, radius: float = 1.0) -> jax.Array:
    """Project a flat parameter vector [d] onto the ball of the given radius (identity inside it)."""
    norm = jnp.linalg.norm(theta)
    scale = jnp.minimum(1.0, radius / jnp.maximum(norm, 1e-30))
    return theta * scale
