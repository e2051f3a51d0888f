"""The lower level of GSIIRL: maximum-likelihood IRL of the expert's reward (paper eq. 1, §6.1).

``L(θl, θe) = −Σ_{ζ∈D} Σ_t γ^t ln π_t^{θl,θe}(a^t | s^t) / |D| + λ/2 ||θe||²``

The data ``D`` enter only through their per-stage empirical occupancy [T, S, A_l, A_e] (frequencies
over trajectories), so sampled data and exact expectations (the infinite-data limit) share one code
path. The log-likelihood is that of the joint action (learner's and expert's), as DESIGN §1 states.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp

from gsiirl.games.tabular import TabularGame
from gsiirl.rewards import project_to_ball
from gsiirl.rewards.models import RewardModel
from gsiirl.solvers.equilibrium import (DEFAULT_ITERATIONS, EQUILIBRIUM_MODELS, JointPolicy, joint_soft,
                                        soft_nash)
from gsiirl.solvers.occupancy import _forward, feature_expectation
from gsiirl.solvers.sampling import discount_weights

LOWER_GRADIENTS = ("lemma1", "autodiff")


def _is_pytree(model) -> bool:
    leaves = jax.tree_util.tree_leaves(model)
    return not (len(leaves) == 1 and leaves[0] is model)


class _Opaque:
    """A non-pytree reward model carried as a compile-time constant (hashed by identity)."""

    def __init__(self, model):
        self.model = model

    # equal (and hashed) by the wrapped model's identity, so repeated flattening hits the jit cache
    def __eq__(self, other):
        return isinstance(other, _Opaque) and other.model is self.model

    def __hash__(self):
        return id(self.model)


@jax.tree_util.register_pytree_node_class
@dataclass(frozen=True, eq=False)
class LowerLevelProblem:
    """Everything the learner knows: the game's dynamics, r_li, its reward models and the model of play.

    Attributes:
        game: the tabular game (its hidden ``expert_reward`` is never read here; ``learner_oracle``
            is read only through :meth:`upper_objective`, i.e. as queried values).
        learner_model: reward model for r_ld^θl (θl [d_l]).
        expert_model: reward model for r_e^θe (θe [d_e]).
        equilibrium: "soft_nash" or "joint_soft".
        temperature: α > 0.
        regularization: λ ≥ 0 of eq. 1.
        iterations: stage fixed-point iterations of ``soft_nash``.
    """

    game: TabularGame
    learner_model: RewardModel
    expert_model: RewardModel
    equilibrium: str = "soft_nash"
    temperature: float = 1.0
    regularization: float = 0.01
    iterations: int = DEFAULT_ITERATIONS

    def __post_init__(self) -> None:
        if self.equilibrium not in EQUILIBRIUM_MODELS:
            raise ValueError(f"equilibrium: expected one of {EQUILIBRIUM_MODELS}, got {self.equilibrium!r}")
        if not self.temperature > 0:
            raise ValueError(f"temperature: expected a positive number, got {self.temperature!r}")
        if not self.regularization >= 0:
            raise ValueError(f"regularization: expected a number >= 0, got {self.regularization!r}")
        for name, model in (("learner_model", self.learner_model), ("expert_model", self.expert_model)):
            missing = [attribute for attribute in ("num_params", "table", "init") if not hasattr(model, attribute)]
            if missing:
                raise TypeError(f"{name}: a reward model needs num_params, table(theta) -> [S, A_l, A_e] and "
                                f"init(key, radius) -> [num_params] (gsiirl.rewards.models.RewardModel); "
                                f"{type(model).__name__} lacks {', '.join(missing)}")
            table = model.table(jnp.zeros(model.num_params))
            shape = tuple(jnp.shape(table))
            if shape != self.game.joint_shape:
                raise ValueError(f"{name}: table has shape {shape}, the game needs {self.game.joint_shape}")
            dtype, game_dtype = jnp.result_type(table), jnp.result_type(self.game.expert_reward)
            if not jnp.issubdtype(dtype, jnp.floating):
                raise ValueError(f"{name}: table(theta) returned dtype {dtype}, expected a floating-point table "
                                 f"(it is differentiated)")
            if dtype != game_dtype:  # the solver's loops carry the game's dtype; a mix fails deep inside lax.scan
                raise ValueError(f"{name}: table(theta) returned dtype {dtype}, but the game's arrays are "
                                 f"{game_dtype} (jax_enable_x64 decides); return tables of the game's dtype")

    # -- pytree: the game's and the models' arrays are leaves (one compilation serves many games) -------
    def tree_flatten(self):
        models = tuple(m if _is_pytree(m) else None for m in (self.learner_model, self.expert_model))
        opaque = tuple(None if _is_pytree(m) else _Opaque(m) for m in (self.learner_model, self.expert_model))
        static = (self.equilibrium, self.temperature, self.regularization, self.iterations, opaque)
        return (self.game,) + models, static

    @classmethod
    def tree_unflatten(cls, static, children):
        problem = object.__new__(cls)
        game, learner_model, expert_model = children
        *settings, opaque = static
        learner_model = learner_model if opaque[0] is None else opaque[0].model
        expert_model = expert_model if opaque[1] is None else opaque[1].model
        for name, value in zip(("game", "learner_model", "expert_model", "equilibrium", "temperature",
                                "regularization", "iterations"), (game, learner_model, expert_model, *settings)):
            object.__setattr__(problem, name, value)
        return problem

    # -- policies -------------------------------------------------------------------------------
    def solve(self, learner_reward: jax.Array, expert_reward: jax.Array):
        """Equilibrium for explicit reward tables [S, A_l, A_e] (learner's includes r_li)."""
        game = self.game
        if self.equilibrium == "joint_soft":
            return joint_soft(game.dynamics, learner_reward, expert_reward, game.discount, self.temperature,
                              game.horizon)
        return soft_nash(game.dynamics, learner_reward, expert_reward, game.discount, self.temperature,
                         game.horizon, self.iterations)

    def learner_reward_table(self, theta_l: jax.Array) -> jax.Array:
        """r_ld^θl + r_li, [S, A_l, A_e]."""
        return self.game.learner_reward_with(self.learner_model.table(theta_l))

    def solution(self, theta_l: jax.Array, theta_e: jax.Array):
        """The equilibrium of (r_ld^θl + r_li, r_e^θe): policy, values and per-stage fixed-point residual."""
        return self.solve(self.learner_reward_table(theta_l), self.expert_model.table(theta_e))

    def policy(self, theta_l: jax.Array, theta_e: jax.Array) -> JointPolicy:
        """π^{θl,θe}: the equilibrium policy of (r_ld^θl + r_li, r_e^θe)."""
        return self.solution(theta_l, theta_e).policy

    def discounted_occupancy(self, policy: JointPolicy) -> jax.Array:
        game = self.game
        return _forward(game.dynamics, game.initial, policy, game.discount, True)

    # -- eq. 1 ----------------------------------------------------------------------------------
    def negative_log_likelihood(self, policy: JointPolicy, data_occupancy: jax.Array) -> jax.Array:
        """−Σ_t γ^t Σ_{s,a} data_t(s,a) ln π_t(a|s) for per-stage data frequencies [T, S, A_l, A_e]."""
        weights = discount_weights(self.game.horizon, self.game.discount)
        return -jnp.sum(weights[:, None, None, None] * data_occupancy * policy.log_joint_probs())

    def loss(self, theta_l: jax.Array, theta_e: jax.Array, data_occupancy: jax.Array) -> jax.Array:
        """L(θl, θe) of eq. 1 (per trajectory), scalar."""
        nll = self.negative_log_likelihood(self.policy(theta_l, theta_e), data_occupancy)
        return nll + 0.5 * self.regularization * jnp.sum(theta_e ** 2)

    # -- Lemma 1 / Lemma 3 ----------------------------------------------------------------------
    def feature_expectations(self, theta_l, theta_e, weights):
        """(μ_l, μ_e) = Σ weights ∇θ r^θ for discounted weights [S, A_l, A_e]: ([d_l], [d_e])."""
        mu_l = feature_expectation(self.learner_model.table, theta_l, weights)
        mu_e = feature_expectation(self.expert_model.table, theta_e, weights)
        return mu_l, mu_e

    def evaluate_pair(self, theta_l, theta_e, data_occupancy, method: str = "lemma1"):
        """One solve -> (f(θl, θe), data part of ∇θl L [d_l], data part of ∇θe L [d_e]).

        ``method`` "lemma1" uses Lemmas 3/1; "autodiff" differentiates the likelihood of eq. 1.
        """
        if method == "autodiff":
            def nll(tl, te):
                policy = self.policy(tl, te)
                upper = jnp.sum(self.discounted_occupancy(policy) * self.game.learner_true_reward)
                return self.negative_log_likelihood(policy, data_occupancy), upper
            (grad_l, grad_e), upper = jax.grad(nll, argnums=(0, 1), has_aux=True)(theta_l, theta_e)
            return upper, grad_l, grad_e
        if method != "lemma1":
            raise ValueError(f"lower_gradient: expected one of {LOWER_GRADIENTS}, got {method!r}")
        policy = self.policy(theta_l, theta_e)
        model_weights = self.discounted_occupancy(policy)
        upper = jnp.sum(model_weights * self.game.learner_true_reward)
        weights = discount_weights(self.game.horizon, self.game.discount)
        data_weights = jnp.sum(weights[:, None, None, None] * data_occupancy, axis=0)
        mu_l, mu_e = self.feature_expectations(theta_l, theta_e, model_weights - data_weights)
        return upper, mu_l / self.temperature, mu_e / self.temperature

    def lemma_gradients(self, theta_l, theta_e, data_occupancy):
        """Data parts of ∇θl L and ∇θe L by Lemmas 3 and 1: ((μ_l(π) − μ̂_l)/α, (μ_e(π) − μ̂_e)/α).

        Exact for ``joint_soft``; for ``soft_nash`` Lemma 1 is exact for the expert's likelihood with
        the learner's policy held fixed (DESIGN §3). λθe is NOT included. Returns ([d_l], [d_e]).
        """
        policy = self.policy(theta_l, theta_e)
        weights = discount_weights(self.game.horizon, self.game.discount)
        data_weights = jnp.sum(weights[:, None, None, None] * data_occupancy, axis=0)
        model_weights = self.discounted_occupancy(policy)
        mu_l, mu_e = self.feature_expectations(theta_l, theta_e, model_weights - data_weights)
        return mu_l / self.temperature, mu_e / self.temperature

    def expert_gradient(self, theta_l, theta_e, data_occupancy, method: str = "lemma1") -> jax.Array:
        """∇θe L [d_e]: by Lemma 1 ((μ_e − μ̂_e)/α + λθe) or by automatic differentiation of eq. 1."""
        if method == "lemma1":
            return self.lemma_gradients(theta_l, theta_e, data_occupancy)[1] + self.regularization * theta_e
        if method == "autodiff":
            return jax.grad(self.loss, argnums=1)(theta_l, theta_e, data_occupancy)
        raise ValueError(f"lower_gradient: expected one of {LOWER_GRADIENTS}, got {method!r}")

    # -- eq. 2 ----------------------------------------------------------------------------------
    def upper_objective(self, theta_l: jax.Array, theta_e: jax.Array) -> jax.Array:
        """f(θl, θe): the learner's TRUE return (queried r_ld + r_li) under π^{θl,θe} (eq. 2), scalar."""
        policy = self.policy(theta_l, theta_e)
        return jnp.sum(self.discounted_occupancy(policy) * self.game.learner_true_reward)


@partial(jax.jit, static_argnames=("method",))  # steps traced: one program for every t_k
def inner_loop(problem: LowerLevelProblem, theta_l, theta_e, data_occupancy, *, steps: int, step_size,
               radius, method: str = "lemma1"):
    """Algorithm 1 lines 5–8: ``steps`` projected gradient steps on θe from a warm start. Returns θe [d_e]."""

    def body(_, theta):
        gradient = problem.expert_gradient(theta_l, theta, data_occupancy, method)
        return project_to_ball(theta - step_size * gradient, radius)

    return jax.lax.fori_loop(0, steps, body, theta_e)
