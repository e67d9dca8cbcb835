"""Proximal methods: the split_prox pass (the split visible in the IR, misfits located) and the
proximal / fista solvers against references (scikit-learn's coordinate-descent lasso, closed forms).
"""

import subprocess
import sys

import jax
import numpy as np
import pytest
from sklearn.linear_model import Lasso

import gradlang
from gradlang.check import check
from gradlang.errors import GradlangError
from gradlang.ir import nodes as ir
from gradlang.passes import run_passes
from gradlang.source import Source
from gradlang.syntax.parser import parse

LASSO = """
data X: real[N, D]
data y: real[N]
fn l1(x) = sum(abs(x))
prox l1(v, t) = sign(v) * relu(abs(v) - t)
param w: real[D] = 0
param b: real = 0
minimize 0.5 * mean((X @ w + b - y)^2) + {lam} * l1(w)
solve {{ method = {method}; steps = {steps}{extra} }}
"""


def _diabetes():
    d = np.load("examples/data/diabetes.npz")
    X, y = d["X"].astype(np.float64), d["y"].astype(np.float64)
    X, y = (X - X.mean(0)) / X.std(0), (y - y.mean()) / y.std()
    return {"X": X.astype(np.float32), "y": y.astype(np.float32)}, X, y


def _ir(text):
    source = Source(text)
    return run_passes(check(parse(source), source))


def test_the_split_is_visible_in_the_ir_and_leaves_the_objective_as_written():
    program = _ir(LASSO.format(lam=0.1, method="fista", steps=10, extra=""))
    split = program.split
    assert [(t.param, t.fn, t.user) for t in split.terms] == [("w", "l1", True)]
    assert split.terms[0].weight == ir.Lit(0.1)
    assert not any(isinstance(n, ir.Block) and n.origin == "l1" for n in _walk(split.smooth))
    # the objective as written is untouched: smooth part + terms is its value
    data, _, _ = _diabetes()
    prog = gradlang.compile(LASSO.format(lam=0.1, method="fista", steps=10, extra=""))
    model, arrays = prog.bind(data)
    u = model.init(jax.random.PRNGKey(0), arrays)
    u = {"w": np.linspace(-1, 1, 10).astype(np.float32), "b": np.float32(0.3)}
    from gradlang.backend.prox import ProxApplication

    whole = float(model.objective_values(u, arrays)[0])
    parts = float(model.smooth_loss(u, arrays)) + float(ProxApplication(model.program, model.dims, arrays)
                                                          .terms_value(model.constrain(u)))
    assert parts == pytest.approx(whole, rel=1e-6)
    # under method = gradient nothing is split
    assert _ir(LASSO.format(lam=0.1, method="gradient", steps=10, extra="")).split is None


def _walk(e):
    from gradlang.ir.visit import walk

    return walk(e)


@pytest.mark.parametrize("method", ["proximal", "fista"])
def test_lasso_on_diabetes_matches_coordinate_descent(method):
    data, X, y = _diabetes()
    lam = 0.05
    result = gradlang.compile(LASSO.format(lam=lam, method=method, steps=3000 if method == "proximal" else 800,
                                           extra="")).fit(data=data)
    reference = Lasso(alpha=lam, tol=1e-14, max_iter=200000).fit(X, y)
    objective = 0.5 * np.mean((X @ reference.coef_ + reference.intercept_ - y) ** 2) + lam * np.abs(reference.coef_).sum()
    assert result.objective == pytest.approx(objective, rel=1e-5)
    np.testing.assert_allclose(result.params["w"], reference.coef_, atol=2e-4)
    assert (np.abs(result.params["w"]) == 0).sum() == (np.abs(reference.coef_) < 1e-8).sum()  # exact zeros


def test_fista_with_tol_stops_early_at_the_optimum():
    data, X, y = _diabetes()
    result = gradlang.compile(LASSO.format(lam=0.05, method="fista", steps=5000, extra="; tol = 1e-5")).fit(data=data)
    assert result.steps < 5000
    reference = Lasso(alpha=0.05, tol=1e-14, max_iter=200000).fit(X, y)
    np.testing.assert_allclose(result.params["w"], reference.coef_, atol=1e-3)


@pytest.mark.parametrize("method", ["proximal", "fista", "admm", "pdhg"])
def test_a_short_budget_compiles_for_compile_time_with_the_same_optimum(method, monkeypatch):
    """split_prox writes compile=fast for a budget of at most FAST_COMPILE_STEPS steps: the loop's
    chunk and the init are compiled with ``fast_compile()`` (XLA's elemental emitter, no tree
    reductions), and the fit reaches the optimum that XLA's defaults reach; a longer budget keeps
    XLA's defaults."""
    from gradlang.backend.compile_options import fast_compile, wide_vectors
    from gradlang.backend.solvers import _prox_step
    from gradlang.passes.split_prox import FAST_COMPILE_STEPS

    data, _, _ = _diabetes()
    steps = {"proximal": 3000, "fista": 800, "admm": 400, "pdhg": 2000}[method]
    text = LASSO.format(lam=0.05, method=method, steps=steps, extra="")
    assert dict(_ir(text).split.options)["compile"] == "fast"
    long = _ir(LASSO.format(lam=0.05, method=method, steps=FAST_COMPILE_STEPS + 1, extra=""))
    assert "compile" not in dict(long.split.options)
    # the printed plan: the method's settings, its steps its own (no optimizer)
    from gradlang.ir import printer

    printed = printer.program(_ir(text))
    assert "  method: " in printed and "compile=fast" in printed and f"solve: method={method} " in printed
    assert "optimizer" not in printed, printed
    import importlib

    module = importlib.import_module(f"gradlang.backend.solvers.{'proximal' if method == 'fista' else method}")
    init_options = []
    monkeypatch.setattr(module, "compiled_init", lambda solver, u, data, options=None: (
        init_options.append(options), _prox_step.compiled_init(solver, u, data, options))[1])
    program = gradlang.compile(text)
    fast = program.fit(data=data)
    (loop,) = program._loops.values()
    assert init_options and all(init_options[0].get(k) == v for k, v in fast_compile().items())
    assert fast_compile() == loop.solver.compile_options
    assert loop.compiler_options == {**wide_vectors(), **fast_compile()}  # the machine's, then the plan's
    if jax.default_backend() == "cpu":
        assert fast_compile() == {"xla_cpu_use_fusion_emitters": False,
                                  "xla_disable_hlo_passes": "tree_reduction_rewriter"}
    monkeypatch.setattr(_prox_step, "loop_options", lambda decision: {})  # XLA's own options
    plain_program = gradlang.compile(text)
    plain = plain_program.fit(data=data)
    assert next(iter(plain_program._loops.values())).compiler_options == wide_vectors()
    assert fast.objective == pytest.approx(plain.objective, rel=1e-6)
    np.testing.assert_allclose(fast.params["w"], plain.params["w"], atol=1e-5)


@pytest.mark.parametrize("method", ["fista", "admm", "pdhg"])
def test_the_final_objective_is_the_last_steps_at_the_final_iterate(method):
    """A prox-family step reports the objectives at the iterate it returns (values_at_new_state):
    the run's final objective is the last step's, which is the objective at the final parameters
    (the program's own objective function there), with no executable of its own."""
    data, _, _ = _diabetes()
    program = gradlang.compile(LASSO.format(lam=0.05, method=method, steps=7, extra=""))
    result = program.fit(data=data)
    (loop,) = program._loops.values()
    assert loop.solver.values_at_new_state
    assert result.objective == result.history["objective"][-1]
    assert result.objective == pytest.approx(float(program.objective_fn(result.params, data)), rel=1e-6)
    assert loop.objectives._cache_size() == 0


@pytest.mark.parametrize("method", ["proximal", "fista"])
def test_the_placeholder_state_is_the_inits_shape_and_the_loop_compiles_once(method, caplog):
    """``state_like`` (what the runtime lowers the loop from, before the init is traced) has the
    init's structure, shapes, dtypes and weak types; so the chunk compiled ahead is the one the run
    calls (compiled once, on the worker)."""
    import logging

    data, _, _ = _diabetes()
    program = gradlang.compile(LASSO.format(lam=0.05, method=method, steps=50, extra=""))
    model, arrays = program.bind(data)
    from gradlang.backend.solvers import make_solver

    solver = make_solver(model, None, program.ir.solve)
    u = model.init(jax.random.PRNGKey(0), arrays)
    real, like = (jax.eval_shape(f, u, arrays) for f in (solver._init, solver.state_like))
    assert jax.tree.structure(real) == jax.tree.structure(like)
    assert [(x.shape, x.dtype, x.weak_type) for x in jax.tree.leaves(real)] == \
        [(x.shape, x.dtype, x.weak_type) for x in jax.tree.leaves(like)]
    jax.config.update("jax_log_compiles", True)
    try:
        with caplog.at_level(logging.WARNING):
            gradlang.compile(LASSO.format(lam=0.05, method=method, steps=50, extra="")).fit(data=data)
    finally:
        jax.config.update("jax_log_compiles", False)
    chunks = [r for r in caplog.records if "Finished XLA compilation of jit(_chunk)" in r.getMessage()]
    assert len(chunks) == 1 and chunks[0].threadName != "MainThread", [r.threadName for r in chunks]


def test_fast_compile_reductions_stay_accurate():
    """Without XLA:CPU's tree reduction rewriter a float32 sum is still accurate (XLA's reduction
    loop is not a naive sequential sum, whose error would be ~1e-4 here): within 1e-6 of the
    float64 sum of 1e6 uniforms, and of a row-wise sum, as with XLA's defaults."""
    import jax.numpy as jnp

    from gradlang.backend.compile_options import fast_compile

    x = np.random.default_rng(0).random(1_000_000).astype(np.float32)
    total = float(jax.jit(lambda v: jnp.sum(v * v), compiler_options=fast_compile())(x))
    assert total == pytest.approx(np.sum(x.astype(np.float64) ** 2), rel=1e-6)
    rows = np.asarray(jax.jit(lambda v: jnp.mean(v.reshape(1000, 1000), axis=1), compiler_options=fast_compile())(x))
    np.testing.assert_allclose(rows, x.astype(np.float64).reshape(1000, 1000).mean(1), rtol=1e-6)


MISFITS = [
    ("param x: real[3] = 1\nminimize sumsq(x - 2) + nonneg(x)", "nonneg(...) is the indicator of a set"),
    ("param x: real[3] = 1\nminimize sumsq(x) - 0.1 * norm1(x)\nsolve { method = fista }",
     "-norm1(...) is concave"),
    ("data D: real[2, 3]\nparam x: real[3] = 1\nminimize sumsq(x) + 0.1 * norm1(D @ x)\nsolve { method = fista }",
     "norm1(K @ x) is a prox term through a linear map, which method = fista cannot take"),
    ("param x: positive[3] = 1\nminimize sumsq(x - 2) + 0.1 * norm1(x)\nsolve { method = proximal }",
     "a proximal method moves x freely, and its domain is positive"),
    ("data y: real[N]\nparam x: real = 1\nminimize mean((y - x)^2) + 0.1 * norm1(x)\nsolve { method = fista; batch = 4 }",
     "method = fista takes full steps on the whole data"),
]


@pytest.mark.parametrize("text, message", MISFITS, ids=["indicator", "concave", "linear-map", "domain", "batch"])
def test_a_term_a_proximal_method_cannot_take_is_a_located_error(tmp_path, text, message):
    path = tmp_path / "p.grad"
    path.write_text(text + "\n")
    out = subprocess.run([sys.executable, "-m", "gradlang.cli", "check", str(path)], capture_output=True,
                         text=True, check=False)
    assert out.returncode == 1, out.stderr
    assert f"{path}:" in out.stderr and message in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


SPLITTING_MISFITS = [
    ("param x: real[3] = 1\nminimize sumsq(x) + 0.1 * norm1(x^2)\nsolve { method = admm }", "2:27",
     "norm1(...) of an expression of the parameters is not smooth, and method = admm cannot take its prox",
     "method = admm or pdhg take a term c * f(K @ p)"),
    ("param x: real[3] = 1\nminimize sumsq(x - 2) + k_sparse(x, 1)\nsolve { method = pdhg }", "2:25",
     "k_sparse(...) is not convex, and method = pdhg splits only convex terms", "method = proximal or fista take"),
    ("param x: real[3] = 1\nminimize sumsq(x - 2) + 0.1 * norm1(x)\nsolve { method = admm(rho = -1) }", "3:29",
     "rho must be a positive number", "e.g. admm(rho = 1.0)"),
    ("param x: real[3] = 1\nminimize sumsq(x - 2) + 0.1 * norm1(x)\nsolve { method = pdhg(rho = 1) }", "3:23",
     "method = pdhg has no argument 'rho'", "it takes none"),
    ("data y: real[3]\nparam x: real[3] = 1\nminimize sumsq(x) + 0.1 * norm1(x - y)\nsolve { method = fista }", "3:27",
     "norm1(x + c) is a prox term through an affine map, which method = fista cannot take",
     "method = admm or pdhg take c * norm1(K @ p + b)"),
    ("param x: real[3] = 1\nminimize sumsq(x - 2) + 0.1 * norm1(x)\nsolve { method = fista; optimizer = sgd(lr = 0.1) }",
     "3:37", "method = fista takes its own steps (a backtracking line search), not an optimizer's",
     "leave optimizer out, or use method = gradient to follow sgd"),
]


@pytest.mark.parametrize("text, where, message, hint", SPLITTING_MISFITS, ids=["nonlinear", "nonconvex", "rho",
                                                                                "pdhg-argument", "affine", "optimizer"])
def test_a_term_or_setting_a_splitting_method_cannot_take_is_a_located_error(text, where, message, hint):
    with pytest.raises(GradlangError) as err:
        gradlang.compile(text)
    rendered = str(err.value)
    assert f":{where}:" in rendered and message in rendered and hint in rendered, rendered


def test_a_prox_must_name_a_declared_function():
    with pytest.raises(GradlangError, match="prox huber is the proximal operator of a function huber"):
        _ir("prox huber(v, t) = v\nparam x: real = 1\nminimize x^2")
    with pytest.raises(GradlangError, match="takes two arguments"):
        _ir("fn f(x) = sum(x^2)\nprox f(v) = v\nparam x: real = 1\nminimize f(x)")


SPEC = __import__("pathlib").Path(__file__).resolve().parent.parent.parent / "shared" / "spec"


@pytest.mark.skipif(not (SPEC / "proximal.grad").exists(), reason="../shared is absent")
@pytest.mark.parametrize("method", ["fista", "proximal"])
def test_spec_berhu_plus_l1_composed_prox_reaches_the_cvxpy_optimum(method):
    """berhu + norm1 on one parameter: composed (soft-threshold, then berhu's declared prox); the
    reference writes berhu(x) = min_{0 < z <= 1} x^2 / (2z) + z / 2 for CVXPY."""
    import cvxpy as cp

    text = (SPEC / "proximal.grad").read_text().replace("method = fista", f"method = {method}")
    data = dict(np.load(SPEC / "data" / "proximal.npz"))
    result = gradlang.compile(text).fit(data=data, steps=3000)
    A, b = data["A"].astype(np.float64), data["b"].astype(np.float64)
    x, z = cp.Variable(A.shape[1]), cp.Variable(A.shape[1])
    berhu = sum(cp.quad_over_lin(x[i], z[i]) / 2 + z[i] / 2 for i in range(A.shape[1]))
    problem = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(A @ x - b) / A.shape[0] + 0.05 * berhu + 0.01 * cp.norm1(x)),
                         [z <= 1])
    problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-10, tol_gap_rel=1e-10)
    assert result.objective == pytest.approx(problem.value, rel=1e-5)
    np.testing.assert_allclose(result.params["x"], x.value, atol=5e-4)


@pytest.mark.parametrize("extra, rule", [("0.1 * norm1(x) + 0.5 * tv1d(x)", "fused"),
                                         ("0.3 * norm1(x) + nonneg(x)", "then_nonneg"),
                                         ("0.2 * sumsq(x) + 0.3 * norm1(x)", "scaled")])
def test_two_terms_on_one_parameter_compose_to_the_cvxpy_optimum(extra, rule):
    import cvxpy as cp

    rng = np.random.default_rng(4)
    y = np.repeat(rng.normal(size=5), 6) + 0.3 * rng.normal(size=30)
    text = f"data y: real[N]\nparam x: real[N] = 0\nminimize 0.5 * sumsq(x - y) + {extra}\nsolve {{ method = fista; steps = 600 }}"
    assert _ir(text).split.composed[0].rule == rule
    result = gradlang.compile(text).fit(data={"y": y.astype(np.float32)})
    x = cp.Variable(30)
    terms = {"fused": 0.1 * cp.norm1(x) + 0.5 * cp.norm1(cp.diff(x)), "then_nonneg": 0.3 * cp.norm1(x),
             "scaled": 0.2 * cp.sum_squares(x) + 0.3 * cp.norm1(x)}[rule]
    problem = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(x - y) + terms), [x >= 0] if rule == "then_nonneg" else [])
    problem.solve(solver=cp.CLARABEL)
    assert result.objective == pytest.approx(problem.value, rel=1e-5)
    np.testing.assert_allclose(result.params["x"], x.value, atol=1e-3)


def test_a_prox_terms_argument_may_be_a_let_of_data_and_consts():
    # group ids computed by a let (issue 11 gallery: the helper's "let groups" program was refused)
    rng = np.random.default_rng(2)
    data = {"X": rng.normal(size=(40, 6)).astype(np.float32), "y": rng.normal(size=40).astype(np.float32)}
    by_let = ("data X: real[N, 6]\ndata y: real[N]\nlet groups = tile(arange(3), 2)\nparam w: real[6] = 0\n"
              "minimize 0.5 * mean((X @ w - y)^2) + 0.2 * group_norm(w, groups)\nsolve { method = fista; steps = 200 }")
    by_const = by_let.replace("let groups = tile(arange(3), 2)", "const groups = [0, 1, 2, 0, 1, 2]")
    assert [t.fn for t in _ir(by_let).split.terms] == ["group_norm"]
    a, b = (gradlang.compile(t).fit(data=data) for t in (by_let, by_const))
    assert np.array_equal(a.params["w"], b.params["w"]) and a.objective == b.objective
    # the ids as data (traced inside the step): the same run
    by_data = by_let.replace("let groups = tile(arange(3), 2)", "data groups: int[6]")
    c = gradlang.compile(by_data).fit(data={**data, "groups": np.array([0, 1, 2, 0, 1, 2], np.int32)})
    assert np.array_equal(a.params["w"], c.params["w"])


def test_group_ids_of_another_length_are_a_located_error_with_the_declared_sizes():
    # data-bound ids: the checker evaluates at placeholder sizes, which must not leak into the message
    text = ("data X: real[N, 6]\ndata y: real[N]\ndata g: int[K]\nparam w: real[6] = 0\n"
            "minimize 0.5 * mean((X @ w - y)^2) + 0.2 * group_norm(w, g)\nsolve { method = fista; steps = 5 }")
    with pytest.raises(GradlangError) as err:
        gradlang.compile(text)
    message = str(err.value)
    assert ":5:44:" in message and "cannot apply group_norm to (real[6], int[K])" in message
    assert "one group id per entry of x" in message
    assert not any(int(n) > 6 for n in __import__("re").findall(r"\d+", message.split("help:")[1])), message
