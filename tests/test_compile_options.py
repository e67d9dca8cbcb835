"""XLA options of the loop: the machine's (512-bit vectors where they run at full speed)."""

import numpy as np
import pytest

import gradlang
from gradlang.backend import compile_options
from gradlang.backend.compile_options import _full_speed_avx512, wide_vectors

AMD_ZEN4 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model name\t: AMD EPYC 9R14
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512dq avx512cd avx512bw avx512vl

processor\t: 1
vendor_id\t: AuthenticAMD
"""


@pytest.mark.parametrize(("text", "wide"), [
    (AMD_ZEN4, True),
    (AMD_ZEN4.replace("AuthenticAMD", "GenuineIntel"), False),  # Intel: XLA's 256 (clock lowered)
    (AMD_ZEN4.replace(" avx512f", ""), False),                   # AMD before Zen 4: no AVX-512F
    (AMD_ZEN4.replace("avx512f", "avx512foo"), False),            # a flag's name, not a prefix of it
])
def test_wide_vectors_only_on_a_cpu_that_runs_them_at_full_speed(tmp_path, text, wide):
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    assert _full_speed_avx512(str(path)) is wide


def test_an_unreadable_cpuinfo_leaves_xla_its_default(tmp_path):
    assert _full_speed_avx512(str(tmp_path / "absent")) is False


def test_a_vector_width_in_the_users_xla_flags_is_left_alone(monkeypatch):
    monkeypatch.setattr(compile_options, "_full_speed_avx512", lambda: True)
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_prefer_vector_width=256")
    assert wide_vectors.__wrapped__() == {}
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false")
    expected = {"xla_cpu_prefer_vector_width": 512} if compile_options.jax.default_backend() == "cpu" else {}
    assert wide_vectors.__wrapped__() == expected


def test_the_loop_compiles_with_the_machines_options_and_solves_least_squares():
    """The chunk carries ``wide_vectors()`` and its fit is the normal equations' solution."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 8)).astype(np.float32)
    y = (X @ rng.normal(size=8) + 0.1 * rng.normal(size=500)).astype(np.float32)
    prog = gradlang.compile("""
data X: real[N, D]
data y: real[N]
param w: real[D] = 0
minimize mean((X @ w - y)^2)
solve { optimizer = adam(lr = 0.05); steps = 3000 }
""")
    result = prog.fit(data={"X": X, "y": y})
    (loop,) = prog._loops.values()
    assert loop.compiler_options == wide_vectors()
    exact = np.linalg.lstsq(X.astype(np.float64), y.astype(np.float64), rcond=None)[0]
    np.testing.assert_allclose(result.params["w"], exact, atol=2e-4)
