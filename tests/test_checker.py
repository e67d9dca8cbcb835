"""The checker: shape inference, data binding, use of stdlib and relative files, domains."""

import re

import numpy as np
import pytest

import gradlang
from gradlang.check.shapes import infer
from gradlang.errors import DataError, GradlangError, TypeError_
from gradlang.ir import printer


def test_shapes_are_inferred_symbolically():
    prog = gradlang.compile("data X: real[N, D]\ndata y: real[N]\nparam w: real[D]\n"
                            "let r = X @ w - y\nlet big = r[:, None] * X\nminimize mean(r^2)")
    text = printer.program(prog.ir, infer)
    assert "subtract(matmul(data:X, param:w) : real[N], data:y) : real[N]" in text
    assert ": real[N, D]" in text


def test_broadcasting_mismatch_names_both_types():
    with pytest.raises(TypeError_) as info:
        gradlang.compile("data a: real[N]\ndata b: real[M]\nparam w: real\nminimize sum(a + b) * w")
    assert info.value.message == "cannot add real[N] and real[M]"
    assert (info.value.span.line, info.value.span.col) == (4, 14)


def test_sizes_derived_from_a_dim_are_named_not_placeholders():
    # a slice of an N-vector is N - 1 long, a concatenation of two is 2 * N: the printed IR and the
    # messages say so, not the checker's placeholder numbers (100002, 200006)
    prog = gradlang.compile("data y: real[N]\nparam w: real\nlet d = y[1:] - y[:-1]\n"
                            "let c = concatenate([y, y])\nminimize sumsq(w * d) + sumsq(w * c)")
    text = printer.program(prog.ir, infer)
    assert "subtract(data:y[1:] : real[N - 1]" in text and ") : real[2 * N]" in text
    assert re.search(r"\d{6}", text) is None  # no placeholder anywhere
    with pytest.raises(TypeError_) as info:
        gradlang.compile("data y: real[N]\nparam w: real\nminimize sum(w * (y[1:] + y))")
    assert info.value.message == "cannot add real[N - 1] and real[N]"


def test_all_errors_of_the_checker_are_reported_together():
    with pytest.raises(GradlangError) as info:
        gradlang.compile("param w: real\nlet a = foo\nlet b = bar\nminimize w^2")
    assert len(info.value.diagnostics) == 2


def test_data_shape_mismatch_names_array_declared_and_actual():
    prog = gradlang.compile("data X: real[N, D]\ndata y: real[N]\nparam w: real[D]\nminimize mean((X @ w - y)^2)")
    with pytest.raises(DataError) as info:
        prog.fit(data={"X": np.zeros((10, 3)), "y": np.zeros(9)}, steps=1)
    err = info.value
    assert err.message == "data 'y' has shape (9,) but is declared real[N]"
    assert "N = 10, bound by 'X'" in err.diagnostics[0].help
    assert err.span.line == 2


def test_data_rank_mismatch():
    prog = gradlang.compile("data X: real[N, D]\nparam w: real[D]\nminimize sum(X @ w)")
    with pytest.raises(DataError, match=r"has shape \(10,\) but is declared real\[N, D\]"):
        prog.fit(data={"X": np.zeros(10)}, steps=1)


def test_int_data_with_fractions_is_rejected():
    prog = gradlang.compile("data k: int[N]\nparam w: real\nminimize w^2 + sum(k)")
    with pytest.raises(DataError, match="fractional"):
        prog.fit(data={"k": np.array([1.5, 2.0])}, steps=1)


def test_param_with_unbound_dim():
    with pytest.raises(TypeError_, match="size 'Q' of param w is not known"):
        gradlang.compile("param w: real[Q]\nminimize sumsq(w)")


def test_use_stdlib_and_relative_file(tmp_path):
    (tmp_path / "lib.grad").write_text("const two = 2\nfn double(x) = two * x\n")
    main = tmp_path / "main.grad"
    main.write_text('use "lib.grad"\nuse losses\nparam w: real = 1\nminimize huber(double(w) - 4)\n'
                    "solve { optimizer = sgd(lr = 0.1); steps = 200 }")
    res = gradlang.compile(main).fit()
    np.testing.assert_allclose(res.params["w"], 2.0, atol=1e-3)


def test_stdlib_losses_match_numpy():
    z = np.linspace(-3, 3, 7)
    y = (z > 0).astype(float)
    prog = gradlang.compile("use losses\ndata z: real[N]\ndata y: real[N]\nparam w: real\n"
                            "minimize w^2\nreport lg = logistic(z, y)\nreport hg = hinge(z, y)\n"
                            "report hb = huber(z, 1.5)\nreport sq = squared(z)")
    res = prog.fit(data={"z": z, "y": y}, steps=1)
    np.testing.assert_allclose(res.reports["lg"], np.logaddexp(0, z) - y * z, rtol=1e-5)
    np.testing.assert_allclose(res.reports["hg"], np.maximum(0, 1 - (2 * y - 1) * z), rtol=1e-5)
    np.testing.assert_allclose(res.reports["hb"], np.where(np.abs(z) <= 1.5, 0.5 * z**2, 1.5 * (np.abs(z) - 0.75)),
                               rtol=1e-5)
    np.testing.assert_allclose(res.reports["sq"], 0.5 * z**2, rtol=1e-5)


@pytest.mark.parametrize("domain, check", [
    ("positive[3]", lambda v: np.all(v > 0)),
    ("simplex[3]", lambda v: np.isclose(v.sum(), 1) and np.all(v >= 0)),
    ("interval(-1, 2)[3]", lambda v: np.all((v > -1) & (v < 2))),
    ("greater(4)[3]", lambda v: np.all(v > 4)),
    ("less(-4)[3]", lambda v: np.all(v < -4)),
    ("positive_ordered[3]", lambda v: np.all(v > 0) and np.all(np.diff(v) > 0)),
    ("lower_cholesky[3, 3]", lambda v: np.allclose(v, np.tril(v)) and np.all(np.diag(v) > 0)),
    ("corr_cholesky[3, 3]", lambda v: np.allclose(np.diag(v @ v.T), 1)),
    ("positive_definite[3, 3]", lambda v: np.all(np.linalg.eigvalsh(v) > 0)),
])
def test_every_domain_keeps_its_values_inside(domain, check):
    prog = gradlang.compile(f"param p: {domain}\nminimize sum(p^2) + sum(sin(3 * p))\n"
                            "solve { optimizer = adam(lr = 0.1); steps = 100 }")
    res = prog.fit()
    assert check(np.asarray(res.params["p"], dtype=np.float64))


def test_const_array_and_indexing():
    res = gradlang.compile("const v = [[1, 2], [3, 4]]\nparam x: real = 0\n"
                           "minimize (x - v[1, 0] - v[-1, -1])^2\nreport col = v[:, 1]\n"
                           "solve { optimizer = sgd(lr = 0.25); steps = 100 }").fit()
    np.testing.assert_allclose(res.params["x"], 7.0, atol=1e-4)
    np.testing.assert_allclose(res.reports["col"], [2, 4])


def test_a_size_bound_by_the_data_is_a_value():
    # N is bound from y's shape; ones(N) / N and arange(N) use it as a number
    prog = gradlang.compile("data y: real[N]\nparam c: real = 0\n"
                            "minimize sum((y - c)^2 * ones(N) / N) + sum(arange(N) * 0)")
    y = np.array([1.0, 2.0, 6.0], np.float32)
    np.testing.assert_allclose(float(prog.fit(data={"y": y}, steps=0).objective), np.mean(y**2), rtol=1e-6)
    r = prog.fit(data={"y": y})
    np.testing.assert_allclose(float(r.params["c"]), y.mean(), rtol=1e-3)
    text = printer.program(prog.ir, infer)
    assert "dim:N" in text


def test_a_const_cannot_use_a_size_bound_by_the_data():
    with pytest.raises(GradlangError) as info:
        gradlang.compile("data y: real[N]\nconst half = N / 2\nminimize sum(y) * half")
    assert "a size bound by the data" in info.value.message
    assert (info.value.span.line, info.value.span.col) == (2, 14)
