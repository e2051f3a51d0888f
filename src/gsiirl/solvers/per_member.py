"""Optimizer state per member of a stacked parameter tree (MADDPG's agents or critics).

MADDPG stacks the actors of all agents (and the critics) on a leading axis and updates them with one
optimizer. With one optax state for the stack, a member restarted from fresh weights
(:mod:`gsiirl.solvers.maddpg_reset`) would inherit the others' step count: Adam's bias correction then
takes the zeroed moments at face value and the restarted member's first updates are 2–6× larger than a
fresh Adam's (measured for step counts 400–5,000). :func:`per_member` keeps one state per member.
"""

from __future__ import annotations

import jax
import optax


def per_member(transform: optax.GradientTransformation) -> optax.GradientTransformation:
    """``transform`` (optax's Adam) run on every member (agent or critic: the leading axis of every leaf) on
    its own, so each member has its own state, e.g. Adam's step count, and a restarted member's Adam starts
    again from step 0 as a fresh one would (:mod:`gsiirl.solvers.maddpg_reset`). Adam is elementwise, so
    this is one joint Adam's arithmetic as long as no member has restarted (up to XLA's rounding)."""
    return optax.GradientTransformation(
        jax.vmap(transform.init),
        lambda updates, state, params=None: jax.vmap(transform.update)(updates, state, params))
