"""XLA options for executables whose compilation costs more than their run.

``once()``: for an executable that runs once a fit (a solver's init, a Laplace start, the
posterior's draws, k̂'s and PSIS's weights): ``xla_backend_optimization_level = 0``, LLVM's
optimisations off (kidiq's 1000 guide draws compile in 0.29 s instead of 0.6 s and run in 0.5 ms
instead of 0.1-0.9 ms).

``fast_compile()``: for a loop that a plan expects to be short (``VIDefaults.loop_compile``,
split_prox's ``compile=fast``): ``xla_cpu_use_fusion_emitters = False`` (XLA:CPU, jax 0.6 and
later), fused loops emitted by XLA's elemental emitter, and XLA:CPU's tree reduction rewriter off
(``xla_disable_hlo_passes = tree_reduction_rewriter``), which splits every reduction into two or
three reduce-windows, each a kernel of its own for LLVM to compile.  Together they compile a loop
in about half the time of XLA's defaults (lasso 1000 x 2000 under fista: 0.20 s instead of 0.43;
kidiq's VI-default chunk: 0.7-0.8 s instead of 1.4, on a 2-core CPU while its Laplace start compiled
beside it).  A step costs the same where it is a gemv or more (lasso: 164 us instead of 180; TV
n = 10000: equal), 1-4% more on kidiq and logearn_height_male, 5% on logistic VI (N = 20000),
4-15% on a 20000 x 50 ridge under Adam, and a fixed ~6 us more where a step is a few microseconds
(the cancer table's sparse logistic fista: 15 us instead of 9): a loss for a loop that runs long,
so not the default.  Reductions stay accurate without the rewriter (a float32 sum of 1e6 or 1e7
uniforms within 7e-8 of float64's, as with it); fits differ from XLA's defaults by float32
round-off at most (bit for bit on logearn_height_male's VI defaults; kidiq's last-bit).  The
posterior's guide draws take it with ``once()`` (affine maps and transforms: 0.10 s of compiling
instead of 0.21 for kidiq's 1000).  Not ``once()`` itself: it halves the Laplace
start's compilation too (0.41 -> 0.17 s), but on gp_pois_regr, whose kernel matrix is at the edge
of float32, the start it found left the fit's k̂ at 64-74 instead of 0.75-1.3; the loop's numbers
on the same model were unchanged.

``wide_vectors()``: for every loop, on a CPU whose 512-bit vectors run at full speed (AVX-512 on
AMD's Zen 4 and later): ``xla_cpu_prefer_vector_width = 512``.  XLA:CPU asks LLVM for 256-bit
vectors by default, because on Intel's Skylake-generation Xeons 512-bit instructions lower the
core's clock for everything around them; AMD's cores run them without that penalty.  On a 2-core
Zen 4 (per step, the chunk compiled both ways in one process): a 20000 x 50 ridge regression under
Adam (``benchmarks/core.py``) 122 us instead of 144; lasso 1000 x 2000 under fista 122 instead of
139; logistic VI (N = 20000) 118 instead of 123; Jacobian descent's multi-task step unchanged.  A
loop compiles 0-5% longer.  Where the machine's memory is busy with other work, a step that streams
its data (the ridge's 4 MB X, twice a step) waits on memory and gains nothing (162-165 us either
way), and the ~14 ms of compiling is a loss.  A reduction's float32 round-off may differ from XLA's default build in
the last bits (the order of partial sums follows the vector width).  Left alone where the user's
``XLA_FLAGS`` names a vector width.

Only a top-level ``jax.jit`` takes compiler options: inside another trace such a function is traced
inline (``traced.tracing``).
"""

from __future__ import annotations

import os
from functools import cache

import jax


@cache
def fast_compile() -> dict:
    """XLA's elemental emitter and no tree reductions, where XLA:CPU has the choice (else nothing)."""
    if jax.default_backend() == "cpu" and tuple(jax.__version_info__[:2]) >= (0, 6):
        return {"xla_cpu_use_fusion_emitters": False, "xla_disable_hlo_passes": "tree_reduction_rewriter"}
    return {}


def keeps_tree_reductions(options: dict) -> bool:
    """Whether a computation compiled with ``options`` keeps XLA's tree reduction rewriter (which
    ``fast_compile`` turns off): where it does, small sums are worth slicing (``lib.small_sums``)."""
    return "tree_reduction_rewriter" not in str(options.get("xla_disable_hlo_passes", ""))


def loop_options(decision: str | None) -> dict:
    """The XLA options of a loop compiled as a plan decided (``VIDefaults.loop_compile``,
    split_prox's ``compile``): ``fast_compile()`` for ``"fast"``, XLA's defaults otherwise."""
    return fast_compile() if decision == "fast" else {}


@cache
def once() -> dict:
    """No LLVM optimisations (callers only read the dict)."""
    return {"xla_backend_optimization_level": 0}


@cache
def wide_vectors() -> dict:
    """512-bit vectors where the CPU runs them at full speed (AVX-512 on AMD), else nothing."""
    if jax.default_backend() != "cpu" or "xla_cpu_prefer_vector_width" in os.environ.get("XLA_FLAGS", ""):
        return {}
    return {"xla_cpu_prefer_vector_width": 512} if _full_speed_avx512() else {}


def _full_speed_avx512(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether the CPU has AVX-512 (``avx512f``) and is AMD's, whose cores do not lower their clock
    for 512-bit instructions (read from Linux's ``/proc/cpuinfo``; False where it cannot be read)."""
    try:
        with open(cpuinfo) as f:
            text = f.read(1 << 16)  # the first processor's entry is enough
    except OSError:
        return False
    first = text.split("\n\n", 1)[0]
    fields = dict(line.split(":", 1) for line in first.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    return fields.get("vendor_id") == "AuthenticAMD" and "avx512f" in fields.get("flags", "").split()
