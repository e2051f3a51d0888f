"""Test configuration: double precision so that analytic-vs-autodiff-vs-finite-difference checks are tight."""

import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("MPLBACKEND", "Agg")
# The suite is dominated by XLA compilation of small test-sized programs (≈ 80 % of its time), not by
# running them; LLVM's optimisation passes are the bulk of that. Tests check the maths, not the
# compiler, so they compile at backend optimisation level 0 (same semantics, slower code, ≈ 40 % less
# wall time). Set GSIIRL_TEST_XLA_OPT=default to test with production compiler settings.
if os.environ.get("GSIIRL_TEST_XLA_OPT", "0") != "default":
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
