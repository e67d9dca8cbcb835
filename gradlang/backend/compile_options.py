"""XLA options for executables whose compilation costs more than their run.

``once()``: for an executable that runs once a fit (a solver's init, a Laplace start, the
posterior's draws, k̂'s and PSIS's weights): ``xla_backend_optimization_level = 0``, LLVM's
optimisations off (kidiq's 1000 guide draws compile in 0.29 s instead of 0.6 s and run in 0.5 ms
instead of 0.1-0.9 ms).

``fast_compile()``: for a loop that a plan expects to be short (``VIDefaults.loop_compile``):
``xla_cpu_use_fusion_emitters = False`` (XLA:CPU, jax 0.6 and later), fused loops emitted by XLA's
elemental emitter, which compiles in about half the time of the fusion emitters (kidiq's VI-default
chunk: 0.7 s instead of 1.4, on a 2-core CPU while its Laplace start compiled beside it) and runs a
step 1-4% slower (kidiq, logearn_height_male), 5% (logistic VI, N = 20000) to 14% (lasso's fista):
a loss for a loop that runs long, so not the default.  The posterior's guide draws take it
with ``once()`` (affine maps and transforms: bit for bit the same on the posteriordb ports, and
0.10 s of compiling instead of 0.21 for kidiq's 1000).  Not ``once()`` itself: it halves the
Laplace start's compilation too (0.41 -> 0.17 s), but on gp_pois_regr, whose kernel matrix is at
the edge of float32, the start it found left the fit's k̂ at 64-74 instead of 0.75-1.3; the
loop's numbers on the same model were unchanged.

Only a top-level ``jax.jit`` takes compiler options: inside another trace such a function is traced
inline (``traced.tracing``).
"""

from __future__ import annotations

from functools import cache

import jax


@cache
def fast_compile() -> dict:
    """XLA's elemental emitter, where XLA:CPU has the choice (else nothing)."""
    if jax.default_backend() == "cpu" and tuple(jax.__version_info__[:2]) >= (0, 6):
        return {"xla_cpu_use_fusion_emitters": False}
    return {}


@cache
def once() -> dict:
    """No LLVM optimisations (callers only read the dict)."""
    return {"xla_backend_optimization_level": 0}
