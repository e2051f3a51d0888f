"""Configuration and result objects of ``gsiirl.fit`` (validated, JSON-serialisable, saved atomically)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

from gsiirl.io.atomic import atomic_write_pair, pending_path, read_paired
from gsiirl.solvers.equilibrium import EQUILIBRIUM_MODELS, JointPolicy
from gsiirl.validation import is_finite_real_scalar

RESULT_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class FitConfig:
    """Options of :func:`gsiirl.fit` (defaults: Theorem 2 schedules; DESIGN §4).

    equilibrium: "soft_nash" | "joint_soft"; temperature: α; regularization: λ (eq. 1);
    radius: ball radius of θl and θe; iterations: stage fixed-point iterations of soft_nash;
    num_trajectories: trajectories per interaction; data: "sampled" | "expected" (exact occupancy of the
    interaction, the infinite-data limit; needs a simulated expert);
    inner_steps: t_k (None: ⌈(k+1)^{1/4}/2⌉); inner_step_size: β; outer_step_size: α_k (None:
    1/(L_f √K)); lipschitz: L_f; perturbation_scale: c in p(k) = c/k; num_spsa_samples: n_spsa;
    lower_gradient: "lemma1" (paper) | "autodiff" (the exact gradient of eq. 1) | "auto" (lemma1 for
    GSIIRL's inner loop with SPSA, autodiff for MA-IRL — with one reward model shared by both players
    Lemmas 1 and 3 give both θ's the same gradient, so MA-IRL could not tell whose reward explains which
    behaviour; docs/design_decisions.md — and for the exact / finite-difference hypergradients, which
    differentiate the exact minimiser of eq. 1 and refuse "lemma1");
    schedule: "theorem2" (α_k = outer_step_size or 1/(L_f √K), p(k) = c/k) | "spall" (Spall's gains
    a_k = a/(A+k+1)^0.602, c_k = c/(k+1)^0.101 with a = outer_step_size or 0.1, c = perturbation_scale);
    sequential_evaluations: run SPSA's 2 + 2n solves one at a time (memory of one solve, for very large
    games) instead of as one vmapped batch;
    cross_term: SPSA's estimate of Lemma 2's ∇²θlθe L — "fixed_data" (the paper's eq. 4, D(θl) held
    fixed), "data_dependent" (the total derivative: D re-collected at θl ± pΔl; needs a traceable
    expert such as SimulatedExpert; docs/design_decisions.md) or "auto" (data_dependent when the
    expert is traceable, fixed_data for a real expert, whose extra interactions would cost a study).
    """

    equilibrium: str = "soft_nash"
    temperature: float = 1.0
    regularization: float = 0.1
    radius: float = 1.0
    iterations: int = 60
    num_trajectories: int = 200
    data: str = "sampled"
    inner_steps: int | None = None
    inner_step_size: float = 0.5
    outer_step_size: float | None = None
    lipschitz: float = 1.0
    perturbation_scale: float = 1.0
    num_spsa_samples: int = 4
    lower_gradient: str = "auto"
    schedule: str = "theorem2"
    sequential_evaluations: bool = False
    cross_term: str = "auto"

    def __post_init__(self) -> None:
        def positive(name, integer=False, allow_none=False, what=""):
            value = getattr(self, name)
            if value is None and allow_none:
                return
            # finite: an infinite radius, temperature, λ or step makes every reward table NaN, which
            # would surface later as a NaN "learner_reward" instead of naming this option
            bad = not is_finite_real_scalar(value) or not value > 0
            if integer and not bad:
                bad = int(value) != value
            if bad:
                kind = "a positive integer" if integer else "a finite positive number"
                raise ValueError(f"{name}: expected {kind}{what}, got {value!r}")

        for name in ("temperature", "radius", "inner_step_size", "lipschitz", "perturbation_scale"):
            positive(name)
        positive("outer_step_size", allow_none=True)
        for name in ("iterations", "num_trajectories", "num_spsa_samples"):
            positive(name, integer=True)
        positive("inner_steps", integer=True, allow_none=True)
        positive("regularization", what=" (λ > 0)")
        if self.equilibrium not in EQUILIBRIUM_MODELS:
            raise ValueError(f"equilibrium: expected one of {EQUILIBRIUM_MODELS}, got {self.equilibrium!r}")
        if self.data not in ("sampled", "expected"):
            raise ValueError(f"data: expected 'sampled' or 'expected', got {self.data!r}")
        if self.cross_term not in ("auto", "fixed_data", "data_dependent"):
            raise ValueError(f"cross_term: expected 'auto', 'fixed_data' or 'data_dependent', got {self.cross_term!r}")
        if not isinstance(self.sequential_evaluations, bool):
            raise ValueError(f"sequential_evaluations: expected True or False, got {self.sequential_evaluations!r}")
        if self.schedule not in ("theorem2", "spall"):
            raise ValueError(f"schedule: expected 'theorem2' or 'spall', got {self.schedule!r}")
        if self.lower_gradient not in ("lemma1", "autodiff", "auto"):
            raise ValueError(f"lower_gradient: expected 'lemma1', 'autodiff' or 'auto', got {self.lower_gradient!r}")

    @classmethod
    def from_options(cls, **options) -> "FitConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - names)
        if unknown:
            raise ValueError(f"{unknown[0]}: unknown option; valid options are {sorted(names)}")
        return cls(**options)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class FitResult:
    """theta_l [d_l], theta_e [d_e] (None for "marl"), the final JointPolicy, the per-iteration
    ``history`` {metric: [value per outer iteration]}, and the ``config`` used.

    ``history[name][k]`` is measured after iteration k's inner loop, before θl's step (line 15); the
    returned ``theta_l`` and ``policy`` are after the last step (docs/user_guide.md §3 lists the metrics)."""

    theta_l: Any
    theta_e: Any
    policy: JointPolicy
    history: dict[str, list[float]]
    config: dict[str, Any]

    def save(self, path) -> tuple[Path, Path]:
        """Write ``<path>.json`` (schema, config, history) and ``<path>.npz`` (arrays), each atomically.

        ``path`` may end in ``.json`` or ``.npz`` (replaced) or not (the suffix is appended, so
        ``runs/lr0.5`` gives ``runs/lr0.5.json``). The JSON records the SHA-256 of the ``.npz``, so
        :meth:`load` rejects a pair that was not written together (files from different runs); the
        ``.npz`` is staged as ``<path>.npz.pending`` until the ``.json`` is in place, so a save killed at any
        moment leaves the previous pair or the new one (:func:`gsiirl.io.atomic.atomic_write_pair`).
        Non-finite history values are stored as JSON ``null``.
        """
        import hashlib
        import io

        json_path, arrays_path = _result_paths(path)
        arrays = {"policy_learner": np.asarray(self.policy.learner), "policy_expert": np.asarray(self.policy.expert)}
        if self.policy.joint is not None:
            arrays["policy_joint"] = np.asarray(self.policy.joint)
        for name in ("theta_l", "theta_e"):
            if getattr(self, name) is not None:
                arrays[name] = np.asarray(getattr(self, name))
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        payload = buffer.getvalue()
        history = {name: [float(v) if np.isfinite(v) else None for v in values]
                   for name, values in self.history.items()}
        document = {"schema_version": RESULT_SCHEMA_VERSION, "config": self.config, "history": history,
                    "arrays": arrays_path.name, "arrays_sha256": hashlib.sha256(payload).hexdigest()}
        try:  # serialise before writing anything, so a bad config value leaves no orphan .npz
            text = json.dumps(document, indent=1, allow_nan=False, default=_json_scalar)
        except (TypeError, ValueError) as error:
            raise ValueError(f"config: not JSON-serialisable ({error})") from None
        atomic_write_pair(arrays_path, payload, json_path, text.encode())  # a crash never leaves a mixed pair
        return json_path, arrays_path

    @classmethod
    def load(cls, path) -> "FitResult":
        """Read a result written by :meth:`save` (``path`` as given to it, or its ``.json``/``.npz``).

        Raises FileNotFoundError if the ``.json`` or ``.npz`` file does not exist (as
        :func:`gsiirl.io.load_trajectories`), ValueError naming the problem if one is malformed or the
        two files were not written together. ``null`` history values come back as NaN."""
        import hashlib

        json_path, arrays_path = _result_paths(path)
        for required in (json_path, arrays_path):
            if not required.exists() and not (required == arrays_path and pending_path(arrays_path).exists()):
                raise FileNotFoundError(f"{required}: no such gsiirl result file (written by FitResult.save)")
        try:
            document = json.loads(json_path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"{json_path}: not a readable gsiirl result file ({error})") from None
        if not isinstance(document, dict) or document.get("schema_version") != RESULT_SCHEMA_VERSION:
            raise ValueError(f"{json_path}: schema_version: expected {RESULT_SCHEMA_VERSION}")
        for field in ("config", "history"):
            if not isinstance(document.get(field), dict):
                raise ValueError(f"{json_path}: {field}: expected an object")
        expected_digest = document.get("arrays_sha256")
        payload = read_paired(arrays_path, expected_digest)  # completes a save that stopped after its .json
        if expected_digest is not None and hashlib.sha256(payload).hexdigest() != expected_digest:
            raise ValueError(f"{arrays_path}: arrays_sha256: does not match {json_path.name}; the two files "
                             "were not written by the same save (a different run, or an interrupted save)")
        try:
            import io

            with np.load(io.BytesIO(payload)) as arrays:
                loaded = {name: jnp.asarray(arrays[name]) for name in arrays.files}
        except Exception as error:  # numpy raises several types for damaged archives
            raise ValueError(f"{arrays_path}: not a readable gsiirl array file ({error})") from None
        for name in ("policy_learner", "policy_expert"):
            if name not in loaded:
                raise ValueError(f"{arrays_path}: {name}: missing array")
        policy = JointPolicy(loaded["policy_learner"], loaded["policy_expert"], loaded.get("policy_joint"))
        history = {name: [float("nan") if v is None else v for v in values]
                   for name, values in document["history"].items()}
        return cls(loaded.get("theta_l"), loaded.get("theta_e"), policy, history, document["config"])


def _result_paths(path) -> tuple[Path, Path]:
    """(``<path>.json``, ``<path>.npz``): a ``.json``/``.npz`` suffix is replaced, anything else kept."""
    path = Path(path)
    if path.suffix in (".json", ".npz"):
        return path.with_suffix(".json"), path.with_suffix(".npz")
    return path.with_name(path.name + ".json"), path.with_name(path.name + ".npz")


def _json_scalar(value):
    """JSON fallback for NumPy/JAX scalars in a config (e.g. ``seed=np.int64(3)``)."""
    if isinstance(value, np.generic) or (hasattr(value, "shape") and getattr(value, "shape", None) == ()):
        return np.asarray(value).item()
    raise TypeError(f"{type(value).__name__} {value!r}")
