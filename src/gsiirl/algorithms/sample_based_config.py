"""Configuration of the sample-based back-end and the small pure helpers it shares with the
experiments (reward-parameter batches, the θ's recorded in a history)."""

from __future__ import annotations

from dataclasses import dataclass, field

import jax
import jax.numpy as jnp

from gsiirl.games.continuous import RewardParams
from gsiirl.solvers.maddpg import MADDPGConfig

CROSS_TERMS = ("fixed_data", "data_dependent")


@dataclass(frozen=True)
class SampleBasedConfig:
    """Hyper-parameters of the sample-based back-end (validated on construction)."""

    maddpg: MADDPGConfig = field(default_factory=lambda: MADDPGConfig(iterations=2))
    warmup_iterations: int = 60  # MADDPG cycles from scratch before the first outer iteration
    data_episodes: int = 256  # |D(θl)| trajectories per interaction
    evaluation_episodes: int = 256  # rollouts for μ(π), f and the metrics
    temperature: float = 1.0  # α in Lemma 1/3: ∇L = (μ(π) − μ̂(D)) / α
    regularization: float = 0.01  # λ
    radius: float = 1.5  # both θ's live in the ball of this radius
    initial_radius: float | None = None  # random initial θ's have norms in [0.5, 1]·this (None: radius)
    inner_step_size: float = 0.05  # β
    outer_step_size: float | None = None  # None: 1 / (L_f √K) (Theorem 2)
    lipschitz: float = 1.0
    spsa_samples: int = 2
    perturbation_scale: float = 1.0  # p(k) = max(scale / (k+1), floor)
    perturbation_floor: float = 0.0
    max_hypergradient_norm: float | None = None  # clip ‖∇F‖ before the step (Monte-Carlo SPSA is noisy)
    hypergradient_terms: str = "lemma2"  # "lemma2": ∇θl f − C H⁻¹ ∇θe f; "direct": ∇θl f only (ablation)
    # "fixed_data": the paper's eq. 4 cross term (D(θl) held fixed); "data_dependent": the total
    # derivative, D re-collected at θl ± pΔl (two more trainings per iteration; docs/design_decisions.md)
    cross_term: str = "data_dependent"
    greedy_evaluation: bool = True  # metrics with deterministic (argmax) policies, as the paper
    # before every warm-started fine-tune (not the warm-up, not the SPSA members): restart a team whose
    # policy is worse than uniformly random play on its own reward (gsiirl.solvers.maddpg_reset)
    reset_worse_than_random: bool = False

    def __post_init__(self) -> None:
        for name in ("greedy_evaluation", "reset_worse_than_random"):  # a string "false" would be truthy
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}: expected True or False, got {getattr(self, name)!r}")
        if not isinstance(self.maddpg, MADDPGConfig):
            raise ValueError(f"maddpg: expected a MADDPGConfig, got {type(self.maddpg).__name__}")
        for name in ("warmup_iterations", "data_episodes", "evaluation_episodes", "spsa_samples"):
            if isinstance(getattr(self, name), bool) or int(getattr(self, name)) < 1:
                raise ValueError(f"{name}: expected a positive integer, got {getattr(self, name)}")
        for name in ("temperature", "regularization", "radius", "inner_step_size", "lipschitz",
                     "perturbation_scale"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"{name}: expected a positive number, got {getattr(self, name)}")
        if self.initial_radius is not None and not 0 < self.initial_radius <= self.radius:
            raise ValueError(f"initial_radius: expected a number in (0, radius = {self.radius}] or None, "
                             f"got {self.initial_radius}")
        if self.outer_step_size is not None and not self.outer_step_size > 0:
            raise ValueError(f"outer_step_size: expected a positive number or None, got {self.outer_step_size}")
        if self.max_hypergradient_norm is not None and not self.max_hypergradient_norm > 0:
            raise ValueError(f"max_hypergradient_norm: expected a positive number or None, "
                             f"got {self.max_hypergradient_norm}")
        if self.hypergradient_terms not in ("lemma2", "direct"):
            raise ValueError(f"hypergradient_terms: expected 'lemma2' or 'direct', got {self.hypergradient_terms!r}")
        if self.cross_term not in CROSS_TERMS:
            raise ValueError(f"cross_term: expected one of {list(CROSS_TERMS)}, got {self.cross_term!r}")
        if self.perturbation_floor < 0:
            raise ValueError(f"perturbation_floor: expected >= 0, got {self.perturbation_floor}")


def _params(theta_l, theta_e, use_true_ld, use_true_e) -> RewardParams:
    batch = jnp.shape(theta_l)[:-1]
    flag = lambda v: jnp.full(batch, float(v), jnp.float32)
    return RewardParams(jnp.asarray(theta_l, jnp.float32), jnp.asarray(theta_e, jnp.float32),
                        flag(use_true_ld), flag(use_true_e))


def final_thetas(history: list[dict]) -> tuple[jax.Array, jax.Array]:
    """(θl [n_l], θe [n_e]) recorded in the last metrics row of a GSIIRL / MA-IRL history: the rewards
    whose policy that row reports (``theta_l_0…``, ``theta_e_0…``)."""
    last = history[-1] if history else {}
    theta_l = [last[f"theta_l_{i}"] for i in range(sum(k.startswith("theta_l_") for k in last))]
    theta_e = [last[f"theta_e_{i}"] for i in range(sum(k.startswith("theta_e_") for k in last))]
    if not theta_l or not theta_e:
        raise ValueError("history: expected theta_l_* and theta_e_* in the last row (a GSIIRL or MA-IRL run)")
    return jnp.asarray(theta_l, jnp.float32), jnp.asarray(theta_e, jnp.float32)
