"""XLA options of the loop: the machine's (512-bit vectors where they run at full speed)."""

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


def test_the_loop_compiles_with_the_machines_options():
    """The chunk's jit carries ``wide_vectors()`` (the fits' numbers under it: every other test,
    least squares against the normal equations in tests/test_examples.py among them)."""
    prog = gradlang.compile("param w: real = 0\nminimize (w - 1)^2\nsolve { steps = 5 }\n")
    prog.fit()
    (loop,) = prog._loops.values()
    assert loop.compiler_options == wide_vectors()
