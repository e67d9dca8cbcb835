"""Constructs found missing by porting posteriordb models (issue 15): a distribution-valued
expression on the right of ``~`` (mixtures, lets and functions giving a distribution), observed
slices and gathers of data, arithmetic on data-bound sizes in declarations, and shape inference
that never materialises an array at its placeholder sizes."""

from __future__ import annotations

import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as nd
import pytest
from numpyro.infer.util import log_density

import gradlang
from gradlang.errors import GradlangError, InternalError

from .conftest import ROOT


def _model_log_joint(prog, data: dict, values: dict) -> float:
    """gradlang's model block as NumPyro sees it, at the latents ``values`` (constrained)."""
    model = prog.bind(data=data) if data is not None else prog.bind()
    lp, _ = log_density(model.ppl.model_fn, (model.data if hasattr(model, "data") else data, {}), {}, values)
    return float(lp)


# ---- 4. no arrays materialised at check time ------------------------------------------------------
BUILDERS = textwrap.dedent("""
    data x: real[N]
    param a: real = 0
    let K = exp(-(x[:, None] - x[None, :])^2) + 1e-6 * eye(N) + zeros([N, N]) + ones([N, N]) + full([N, N], 2.0)
    let r = arange(N) + arange(0, N, 1) + linspace(0, 1, N) + eye(N, N)[0] + diag(ones(N))[0] + tile(x, 2)[:N]
    minimize sum(K) + a^2 + sum(r)
    model {
      f: real[N] ~ mvnormal(zeros(N), covariance_matrix = K)
      x ~ normal(f, 1)
    }
""")


def test_shape_inference_builds_no_array_at_placeholder_sizes():
    """eye(N) etc. at N = 100_003 would need 40 GB each; checking is abstract, so it is quick."""
    prog = gradlang.compile(BUILDERS)
    x = np.linspace(-1, 1, 5).astype(np.float32)
    result = prog.fit(data={"x": x}, steps=2)
    assert np.isfinite(result.objective)


def test_gradlang_check_of_eye_n_runs_in_bounded_memory(tmp_path: Path):
    path = tmp_path / "gp.grad"
    path.write_text(BUILDERS)
    script = Path(sys.executable).parent / "gradlang"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "gradlang.cli"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = subprocess.run(cmd + ["check", str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    assert max(peak_kb, before) < 2_000_000, f"gradlang check peaked at {peak_kb / 1e6:.1f} GB"


def test_a_library_failure_during_shape_inference_is_an_internal_error(monkeypatch):
    """At placeholder sizes a runtime failure (an allocation) is gradlang's, not the program's."""
    from gradlang.lib import builtins

    def exhausted(x):
        with jax.ensure_compile_time_eval():
            return jnp.zeros((2**40, 2**10)) + x  # XLA refuses the allocation (a RuntimeError)

    monkeypatch.setitem(builtins.FUNCTIONS, "expm1", exhausted)
    with pytest.raises(InternalError):
        gradlang.compile("data y: real[N]\nparam w: real = 0\nminimize sum(expm1(y * w))\n")
