"""A small array's sum as the sum of its 32-entry slices (gradlang/lib/small_sums.py): the same
value as jnp.sum's, the same dtype, and fewer kernels where XLA:CPU splits jnp.sum's in two."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradlang
from gradlang.lib.small_sums import FUSED_MAX, TREE_WINDOW, mean, sum_, total


@pytest.mark.parametrize("n", [1, 31, 32, 33, 50, 64, 65, 100, 255, 256, 257, 1000])
def test_total_is_the_sum_of_every_entry(n):
    x = np.random.default_rng(n).normal(size=n).astype(np.float32)
    np.testing.assert_allclose(total(jnp.asarray(x)), np.sum(x.astype(np.float64)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(total(jnp.asarray(x.reshape(1, n))), np.sum(x.astype(np.float64)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.bool_])
def test_sum_and_mean_keep_numpys_dtypes_and_axes(dtype):
    x = jnp.asarray((np.arange(7 * 9) % 5).reshape(7, 9).astype(dtype))
    assert sum_(x).dtype == jnp.sum(x).dtype and mean(x).dtype == jnp.mean(x).dtype
    np.testing.assert_allclose(sum_(x), jnp.sum(x), rtol=1e-6)
    np.testing.assert_allclose(mean(x), jnp.mean(x), rtol=1e-6)
    for kwargs in ({"axis": 0}, {"axis": 1, "keepdims": True}):  # along an axis: jnp's own
        np.testing.assert_array_equal(sum_(x, **kwargs), jnp.sum(x, **kwargs))
        np.testing.assert_array_equal(mean(x, **kwargs), jnp.mean(x, **kwargs))


def test_its_gradient_is_the_sums():
    w = jnp.linspace(-1.0, 1.0, 50)
    np.testing.assert_allclose(jax.grad(lambda v: total(v ** 2))(w), 2 * w, rtol=1e-6)


def _kernels(fn, *args) -> tuple[int, bool]:
    text = jax.jit(fn).lower(*args).compile().as_text()
    return text.count("fusion("), "reduce-window" in text


@pytest.mark.parametrize("n", [TREE_WINDOW + 1, 50, FUSED_MAX])
def test_where_xla_splits_jnp_sum_in_two_the_slices_compile_into_their_consumer(n):
    """Compiled with what consumes it (a bound on the step count), jnp.sum(w^2) is a tree of
    kernels on XLA:CPU (a reduce-window, then the windows' sum with the consumer); total's
    slices' sums are one kernel with the consumer."""
    w = jnp.ones(n)

    def consume(s):
        return jnp.where(jnp.isfinite(s), s * 2.0, 0.0)

    plain, split = _kernels(lambda v: consume(jnp.sum(v * v)), w)
    ours, ours_split = _kernels(lambda v: consume(total(v * v)), w)
    assert not ours_split and ours <= plain
    if split:  # this XLA rewrites the reduction: ours saves its extra kernel
        assert ours < plain


def test_a_programs_sums_of_small_arrays_are_numpys():
    """sum, mean, sumsq, norm1 and norm2 of a program over 50 entries: the same values as NumPy's."""
    w = np.linspace(-2.0, 3.0, 50).astype(np.float32)
    prog = gradlang.compile("""
data w: real[50]
param c: real = 0
report s = sum(w)
report m = mean(w)
report q = sumsq(w)
report a = norm1(w)
report r = norm2(w)
minimize (c - 1)^2
solve { steps = 1 }
""")
    reports = prog.fit(data={"w": w}).reports
    w64 = w.astype(np.float64)
    expected = {"s": w64.sum(), "m": w64.mean(), "q": (w64 ** 2).sum(), "a": np.abs(w64).sum(),
                "r": np.sqrt((w64 ** 2).sum())}
    for name, value in expected.items():
        np.testing.assert_allclose(reports[name], value, rtol=1e-5, atol=1e-6)


def test_a_loop_compiled_without_the_rewriter_keeps_its_sums_whole():
    """Under a loop compiled without XLA's tree reduction rewriter (compile=fast) every reduction is
    one kernel already and slices only cost: there ``total`` is jnp.sum (``whole_sums``)."""
    from gradlang.backend.compile_options import fast_compile, keeps_tree_reductions
    from gradlang.lib.small_sums import whole_sums

    def reductions(fn):
        return str(jax.make_jaxpr(lambda v: fn(v))(jnp.ones(50))).count("reduce_sum")  # a new trace each

    assert reductions(total) == 2
    with whole_sums():
        assert reductions(total) == 1
        with whole_sums(False):  # an inner scope never slices what an outer one keeps whole
            assert reductions(total) == 1
    assert reductions(total) == 2
    assert keeps_tree_reductions({}) and keeps_tree_reductions({"xla_cpu_prefer_vector_width": 512})
    assert not keeps_tree_reductions({"xla_disable_hlo_passes": "tree_reduction_rewriter"})
    assert keeps_tree_reductions(fast_compile()) == (fast_compile() == {})
