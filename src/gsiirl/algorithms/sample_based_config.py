"""Configuration of the sample-based back-end and the small pure helpers it shares with the
experiments (reward-parameter batches, the θ's recorded in a history)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp

from gsiirl.games.continuous import RewardParams, non_finite_outputs
from gsiirl.solvers.maddpg import MADDPGConfig, validate_config
from gsiirl.validation import is_finite_real_scalar, is_integer, is_positive_number

CROSS_TERMS = ("fixed_data", "data_dependent")
MA_IRL_GRADIENTS = ("joint", "best_response")
# metrics that are finite in any sound run: a NaN / inf in one means the game produced one
_MUST_BE_FINITE = ("learner_return", "expert_return", "upper_objective", "hypergradient_norm",
                   "direct_gradient_norm", "expert_loss")


@dataclass(frozen=True)
class SampleBasedConfig:
    """Hyper-parameters of the sample-based back-end (validated on construction; a bad field raises
    ValueError naming it). The experiments' settings are in ``gsiirl.experiments.hri.DEFAULT_OPTIONS`` and
    ``gsiirl.experiments.mpe.DEFAULT_OPTIONS``; docs/simulators.md §3 says which to start from on a new game.

    Attributes:
        maddpg: the policy solver (:class:`gsiirl.solvers.maddpg.MADDPGConfig`); ``maddpg.iterations``
            MADDPG cycles are one warm-started fine-tune (one inner step of Algorithm 1).
        warmup_iterations: MADDPG cycles from scratch before the first outer iteration (a multiple of
            ``maddpg.iterations``).
        data_episodes: |D(θl)|, trajectories collected per interaction with the expert.
        evaluation_episodes: rollouts for μ(π), f and the reported metrics.
        temperature: α in Lemmas 1/3, ∇L = (μ(π) − μ̂(D)) / α: the likelihood's temperature.
        regularization: λ, the ridge weight of the lower-level loss. The hypergradient scales like 1/λ
            (Lemma 2's H⁻¹), so a small λ gives huge, noisy ‖∇F‖ (HRI uses 0.5, MPE 1.0; before
            session 17 the default was 0.01).
        hessian_regularization: the ridge added to the SPSA Hessian of Lemma 2's implicit term (and the
            floor of its eigenvalues); None: ``regularization``, the exact Hessian of the regularised loss.
            A larger value damps the implicit term (damped implicit differentiation) without shrinking θe
            more in the inner loop (docs/hri.md, "Session 24").
        radius: both θ's are projected onto the ball of this radius.
        initial_radius: random initial θ's have norms in [0.5, 1]·this (None: ``radius``).
        inner_step_size: β, the projected gradient step on θe (lines 5–8).
        outer_step_size: α of the ascent on θl (line 15); None: 1 / (L_f √K) (Theorem 2).
        lipschitz: L_f in that default step.
        spsa_samples: n, SPSA directions per outer iteration (2 + 2n perturbed trainings).
        perturbation_scale: SPSA perturbation p(k) = max(scale / (k+1), floor).
        perturbation_floor: the floor of p(k) (Monte-Carlo f needs perturbations that change the policy).
        max_hypergradient_norm: clip ‖∇F‖ to this before the step (None: no clipping).
        hypergradient_terms: "lemma2" (∇θl f − C H⁻¹ ∇θe f) or "direct" (∇θl f only, an ablation).
        cross_term: Lemma 2's cross term C — "fixed_data" (the paper's eq. 4, D(θl) held fixed) or
            "data_dependent" (the total derivative: D re-collected at θl ± pΔl, two more trainings).
        greedy_evaluation: report metrics of the argmax policies (the paper's deterministic policies).
        reset_worse_than_random: before every warm-started fine-tune, restart a team whose policy is worse
            than uniformly random play on its own reward (:mod:`gsiirl.solvers.maddpg_reset`).
        ma_irl_gradient: where MA-IRL's Monte-Carlo likelihood gradients (Lemmas 1/3) take μ(π) —
            "joint": both from the model pair π^{θl,θe} (the same vector for both θ's when the teams share
            features); "best_response": μ_l from the learner team trained on θl against the demonstrator's
            expert policy held fixed, μ_e from the expert trained on θe against the demonstrator's learner
            policy held fixed (each player's likelihood with the other's policy known; docs/design_decisions.md).
    """

    maddpg: MADDPGConfig = field(default_factory=lambda: MADDPGConfig(iterations=2))
    warmup_iterations: int = 60  # MADDPG cycles from scratch before the first outer iteration
    data_episodes: int = 256  # |D(θl)| trajectories per interaction
    evaluation_episodes: int = 256  # rollouts for μ(π), f and the metrics
    temperature: float = 1.0  # α in Lemma 1/3: ∇L = (μ(π) − μ̂(D)) / α
    regularization: float = 0.5  # λ (the hypergradient scales like 1/λ; docs/simulators.md §3)
    hessian_regularization: float | None = None  # ridge of the implicit term's Hessian (None: λ)
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
    # MA-IRL's μ(π): "joint" (the model pair) or "best_response" (each team against the other's demonstrated policy)
    ma_irl_gradient: str = "joint"

    def __post_init__(self) -> None:
        for name in ("greedy_evaluation", "reset_worse_than_random"):  # a string "false" would be truthy
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}: expected True or False, got {getattr(self, name)!r}")
        validate_config(self.maddpg)
        # counts become array shapes and loop bounds: 2.5 or "4" would fail deep inside JAX
        for name in ("warmup_iterations", "data_episodes", "evaluation_episodes", "spsa_samples"):
            if not is_integer(getattr(self, name)) or getattr(self, name) < 1:
                raise ValueError(f"{name}: expected a positive integer, got {getattr(self, name)!r}")
        if self.warmup_iterations % self.maddpg.iterations:
            raise ValueError(f"warmup_iterations: expected a multiple of maddpg.iterations "
                             f"({self.maddpg.iterations}), got {self.warmup_iterations}; note that "
                             f"MADDPGConfig() defaults to iterations=8 while this config's default maddpg is "
                             f"MADDPGConfig(iterations=2): set maddpg's iterations or warmup_iterations")
        for name in ("temperature", "regularization", "radius", "inner_step_size", "lipschitz",
                     "perturbation_scale"):
            if not (is_finite_real_scalar(getattr(self, name)) and getattr(self, name) > 0):
                raise ValueError(f"{name}: expected a finite positive number, got {getattr(self, name)!r}")
        if self.initial_radius is not None and not (is_positive_number(self.initial_radius)
                                                    and self.initial_radius <= self.radius):
            raise ValueError(f"initial_radius: expected a number in (0, radius = {self.radius}] or None, "
                             f"got {self.initial_radius}")
        if self.hessian_regularization is not None and not is_positive_number(self.hessian_regularization):
            raise ValueError(f"hessian_regularization: expected a positive number or None, "
                             f"got {self.hessian_regularization}")
        if self.outer_step_size is not None and not is_positive_number(self.outer_step_size):
            raise ValueError(f"outer_step_size: expected a positive number or None, got {self.outer_step_size}")
        if self.max_hypergradient_norm is not None and not is_positive_number(self.max_hypergradient_norm):
            raise ValueError(f"max_hypergradient_norm: expected a positive number or None, "
                             f"got {self.max_hypergradient_norm}")
        if self.hypergradient_terms not in ("lemma2", "direct"):
            raise ValueError(f"hypergradient_terms: expected 'lemma2' or 'direct', got {self.hypergradient_terms!r}")
        if self.cross_term not in CROSS_TERMS:
            raise ValueError(f"cross_term: expected one of {list(CROSS_TERMS)}, got {self.cross_term!r}")
        if self.ma_irl_gradient not in MA_IRL_GRADIENTS:
            raise ValueError(f"ma_irl_gradient: expected one of {list(MA_IRL_GRADIENTS)}, got {self.ma_irl_gradient!r}")
        floor = self.perturbation_floor
        if not (is_finite_real_scalar(floor) and floor >= 0):
            raise ValueError(f"perturbation_floor: expected a finite number >= 0, got {floor!r}")


def _params(theta_l, theta_e, use_true_ld, use_true_e, frozen=None) -> RewardParams:
    """A batch [...] of :class:`RewardParams` (θ's [..., P]); ``frozen`` [..., 2] or None."""
    batch = jnp.shape(theta_l)[:-1]
    flag = lambda v: jnp.full(batch, float(v), jnp.float32)
    return RewardParams(jnp.asarray(theta_l, jnp.float32), jnp.asarray(theta_e, jnp.float32),
                        flag(use_true_ld), flag(use_true_e),
                        None if frozen is None else jnp.broadcast_to(jnp.asarray(frozen, jnp.float32), batch + (2,)))


def final_thetas(history: list[dict]) -> tuple[jax.Array, jax.Array]:
    """(θl [P_l], θe [P_e]) recorded in the last metrics row of a GSIIRL / MA-IRL history: the rewards
    whose policy that row reports (``theta_l_0…``, ``theta_e_0…``)."""
    last = history[-1] if history else {}
    theta_l = [last[f"theta_l_{i}"] for i in range(sum(k.startswith("theta_l_") for k in last))]
    theta_e = [last[f"theta_e_{i}"] for i in range(sum(k.startswith("theta_e_") for k in last))]
    if not theta_l or not theta_e:
        raise ValueError("history: expected theta_l_* and theta_e_* in the last row (a GSIIRL or MA-IRL run)")
    return jnp.asarray(theta_l, jnp.float32), jnp.asarray(theta_e, jnp.float32)


def require_finite(method: str, iteration: int, seed: int, row: dict, game=None) -> None:
    """Raise ValueError if a metric of ``row`` that is finite in any sound run (the returns, f, ‖∇F‖,
    the expert's loss, the θ's) is NaN or infinite — instead of a run that silently carries NaN θ's.
    With ``game``, the message names the game functions that return NaN/inf under random play."""
    for name, value in row.items():
        if (name in _MUST_BE_FINITE or name.startswith(("theta_l_", "theta_e_"))) and not math.isfinite(value):
            raise ValueError(f"{method}: outer iteration {iteration}, seed {seed} (0-based in its group): {name} is "
                             f"{value}. {_non_finite_source(game)}")


def _non_finite_source(game) -> str:
    generic = ("check that the observations, r_li, the queried r_ld, r_e and both feature functions return finite "
               "numbers (jax.config.update('jax_debug_nans', True) stops at the operation that makes the first NaN)")
    if game is None:
        return "A NaN or inf came from the game: " + generic
    try:
        culprits = non_finite_outputs(jax.random.PRNGKey(0), game)
    except Exception:  # noqa: BLE001 - a diagnosis must not hide the error it explains
        return "A NaN or inf came from the game: " + generic
    if culprits:
        return "Uniformly random play in the game already gives NaN or inf from: " + "; ".join(culprits) + "."
    return ("Uniformly random play gives finite values from every game function, so the NaN or inf comes from "
            "states only the learned policies reach, or from the learning itself (step sizes): " + generic)
