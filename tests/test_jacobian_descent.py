"""Jacobian descent in programs: the vector objective's plan, one step against the aggregator applied
to an analytic Jacobian, Pareto stationarity at the end of a run, and located errors."""

import numpy as np
import pytest
from scipy.optimize import minimize

import gradlang
from gradlang.errors import GradlangError

PROGRAM = """
dim D = 5
data X: real[N, D]
data y1: real[N]
data y2: real[N]
param w: real[D] = {init}
minimize {{
  task1: mean((X @ w - y1)^2)
  task2: mean((X @ w - y2)^2)
  small: 0.1 * sumsq(w)
}}
solve {{ optimizer = sgd(lr = {lr}); steps = {steps}; aggregator = {agg} }}
"""


def _data(seed=0, n=40, d=5):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    return {"X": X, "y1": (X @ rng.normal(size=d)).astype(np.float32),
            "y2": (X @ rng.normal(size=d) + 0.1 * rng.normal(size=n)).astype(np.float32)}


def _jacobian(w, data):
    """The three gradients by hand: 2/N X^T (X w - y) twice, and 0.2 w."""
    X, n = data["X"].astype(np.float64), len(data["X"])
    return np.stack([2 / n * X.T @ (X @ w - data["y1"]), 2 / n * X.T @ (X @ w - data["y2"]), 0.2 * w])


@pytest.mark.parametrize("agg", ["upgrad", "mgda", "dualproj", "cagrad(c = 0.3)", "pcgrad", "imtl_g"])
def test_one_step_moves_along_the_aggregated_analytic_jacobian(agg):
    data, w0, lr = _data(), np.array([0.3, -0.2, 0.5, 0.1, -0.4]), 0.05
    result = gradlang.compile(PROGRAM.format(init=w0.tolist(), lr=lr, steps=1, agg=agg)).fit(data=data)
    name, params = (agg.split("(")[0], {"c": 0.3}) if "(" in agg else (agg, {})
    d = np.asarray(gradlang.aggregate(name, _jacobian(w0, data), **params))
    np.testing.assert_allclose(result.params["w"], w0 - lr * d, rtol=2e-4, atol=2e-6)


def _min_norm_combination(J):
    """min over the simplex of ||lambda^T J||: zero exactly at a Pareto-stationary point."""
    m = len(J)
    out = minimize(lambda a: np.sum((a @ J) ** 2), np.full(m, 1 / m), method="SLSQP",
                   bounds=[(0, 1)] * m, constraints={"type": "eq", "fun": lambda a: a.sum() - 1},
                   options={"ftol": 1e-16, "maxiter": 500})
    return float(np.sqrt(out.fun))


def test_upgrad_run_ends_pareto_stationary():
    data = _data()
    result = gradlang.compile(PROGRAM.format(init=1, lr=0.05, steps=3000, agg="upgrad")).fit(data=data)
    J = _jacobian(result.params["w"].astype(np.float64), data)
    assert _min_norm_combination(J) < 1e-3
    assert _min_norm_combination(_jacobian(np.ones(5), data)) > 0.1  # the start was far from it
    assert set(result.objectives) == {"task1", "task2", "small"}


def test_the_plan_shows_the_aggregator_and_mistakes_are_located():
    from gradlang.check import check
    from gradlang.passes import run_passes
    from gradlang.source import Source
    from gradlang.syntax.parser import parse

    text = PROGRAM.format(init=0, lr=0.05, steps=3, agg="cagrad(c = 0.4)")
    source = Source(text)
    plan = run_passes(check(parse(source), source)).aggregate
    assert plan.aggregator.value == "cagrad" and plan.names == ("task1", "task2", "small")
    with pytest.raises(GradlangError, match="unknown aggregator 'upgrd'") as err:
        gradlang.compile(PROGRAM.format(init=0, lr=0.05, steps=3, agg="upgrd"))
    assert "did you mean 'upgrad'" in err.value.render() and err.value.diagnostics[0].span.line == 12
    with pytest.raises(GradlangError, match="wrong arguments to aggregator cagrad") as err:
        gradlang.compile(PROGRAM.format(init=0, lr=0.05, steps=3, agg="cagrad(k = 2)"))
    assert err.value.diagnostics[0].span.line == 12


def test_the_conflict_report_is_the_cosines_of_the_analytic_gradients():
    data = _data()
    result = gradlang.compile(PROGRAM.format(init=1, lr=0.05, steps=200, agg="upgrad")).fit(data=data)
    J = _jacobian(result.params["w"].astype(np.float64), data)
    unit = J / np.linalg.norm(J, axis=1, keepdims=True)
    C = unit @ unit.T
    names = ["task1", "task2", "small"]
    for i, a in enumerate(names):
        for j, b in enumerate(names[i + 1:], i + 1):
            assert result.conflicts[f"{a}|{b}"] == pytest.approx(C[i, j], abs=1e-4)
    # at every log point, the m x m matrix at that step's parameters
    assert len(result.history["conflict"]) == len(result.history["step"])
    assert np.allclose(np.diag(np.asarray(result.history["conflict"][-1])), 1.0, atol=1e-5)
    assert result.to_json()["conflicts"] == result.conflicts


@pytest.mark.parametrize("agg", ["upgrad", "graddrop"])
def test_the_history_conflict_is_that_of_the_gradients_the_last_step_aggregated(agg, monkeypatch):
    """At a log point the conflict matrix is the cosines of the gradients the step before it
    aggregated (at that step's parameters: the parameters after one step fewer), from the step's
    own Gramian: no Jacobian of its own is computed for it (one over the full data at every log
    point cost a minibatched fit most of its time).  graddrop reads J, not its Gramian, which is
    then computed for the report."""
    from gradlang.backend.solvers import conflict

    data, steps = _data(), 30
    source = PROGRAM.format(init=1, lr=0.05, steps=steps, agg=agg).replace("aggregator", "log_every = 10; aggregator")
    before = gradlang.compile(source).fit(data=data, steps=steps - 1)  # the last step's parameters
    J = _jacobian(before.params["w"].astype(np.float64), data)
    unit = J / np.linalg.norm(J, axis=1, keepdims=True)

    def no_jacobian(*args, **kwargs):
        raise AssertionError("the history's conflict computed a Jacobian of its own")

    monkeypatch.setattr(conflict, "cosines", no_jacobian)
    result = gradlang.compile(source).fit(data=data, steps=steps)
    assert result.history["step"][-1] == steps and len(result.history["conflict"]) == 3
    np.testing.assert_allclose(np.asarray(result.history["conflict"][-1]), unit @ unit.T, atol=1e-4)


def test_a_minibatched_history_conflict_reads_a_fixed_minibatch():
    """With ``batch`` and a linear aggregator (whose step computes no Jacobian), the history's
    conflict matrix is computed on ``conflict_rows``'s rows, the same at every log point, not on
    the full data: at the last log point (the final parameters), the analytic cosines on them."""
    from gradlang.backend.solvers.gradient import conflict_rows

    data = _data(n=40)
    source = PROGRAM.format(init=1, lr=0.05, steps=30, agg="mean").replace(
        "aggregator", "batch = 16; log_every = 10; aggregator")
    result = gradlang.compile(source).fit(data=data)
    rows = conflict_rows(40, 16)
    J = _jacobian(result.params["w"].astype(np.float64), {k: v[rows] for k, v in data.items()})
    unit = J / np.linalg.norm(J, axis=1, keepdims=True)
    np.testing.assert_allclose(np.asarray(result.history["conflict"][-1]), unit @ unit.T, atol=1e-4)
    full = _jacobian(result.params["w"].astype(np.float64), data)
    full = full / np.linalg.norm(full, axis=1, keepdims=True)
    assert np.abs(full @ full.T - unit @ unit.T).max() > 1e-3  # the test tells the two apart


EACH = """
data X: real[N, 2]
data y: real[N]
param w: real[2] = [0.3, -0.2]
{sense} each({value})
solve {{
  optimizer = sgd(lr = 0.1)
  steps = 1
  aggregator = {agg}{extra}
}}
"""


def _rows(n=5, seed=3):
    rng = np.random.default_rng(seed)
    return {"X": rng.normal(size=(n, 2)).astype(np.float32), "y": rng.normal(size=n).astype(np.float32)}


def _per_row_jacobian(w, X, y, sign=1.0):
    """J_i = d/dw of sign * (x_i w - y_i)^2, by jax.jacrev (float64)."""
    import jax
    import jax.numpy as jnp

    with jax.enable_x64(True):
        return np.asarray(jax.jacrev(lambda w: sign * (jnp.asarray(X, jnp.float64) @ w - y) ** 2)(
            jnp.asarray(w, jnp.float64)))


def _fit_each(sense="minimize", value="(X @ w - y)^2", agg="upgrad", extra="", data=None):
    return gradlang.compile(EACH.format(sense=sense, value=value, agg=agg, extra=extra)).fit(data=data or _rows())


def test_each_row_is_an_objective():
    """minimize each(v): one step is -lr UPGrad(J), J the per-row Jacobian (by jax.jacrev); maximize
    each(-v) the same step; with mean, the plain gradient of the mean loss 2/N Xᵀ(Xw - y).  The
    value logged (history, --out) is the entries' mean as written."""
    data, w0 = _rows(), np.array([0.3, -0.2])
    J = _per_row_jacobian(w0, data["X"], data["y"])
    d = np.asarray(gradlang.aggregate("upgrad", J))
    for sense, value in (("minimize", "(X @ w - y)^2"), ("maximize", "-(X @ w - y)^2")):
        r = _fit_each(sense, value)
        np.testing.assert_allclose(r.params["w"], w0 - 0.1 * d, rtol=1e-5, atol=1e-7)
    r = _fit_each(agg="mean")
    X, y = data["X"].astype(np.float64), data["y"]
    np.testing.assert_allclose(r.params["w"], w0 - 0.1 * 2 / 5 * X.T @ (X @ w0 - y), rtol=1e-5)
    assert not np.allclose(d, J.mean(axis=0), atol=1e-3)  # UPGrad is not the mean here
    w1 = r.params["w"].astype(np.float64)
    assert r.objectives["objective"] == pytest.approx(np.mean((X @ w1 - y) ** 2), rel=1e-5)
    assert r.to_json()["objectives"] == {"objective": pytest.approx(r.objectives["objective"])}


def test_each_with_batch_is_one_objective_per_minibatch_row():
    """With batch = 2 of N = 4 rows (drawn with replacement), the step is -lr UPGrad of the
    Jacobian of the 2 drawn rows: it equals that of one of the 16 possible minibatches, and not
    the step of the full data."""
    data, w0 = _rows(4, seed=8), np.array([0.3, -0.2])
    r = _fit_each(extra="\n  batch = 2", data=data)
    X, y = data["X"], data["y"]
    steps = {(i, j): w0 - 0.1 * np.asarray(gradlang.aggregate("upgrad", _per_row_jacobian(w0, X[[i, j]], y[[i, j]])))
             for i in range(4) for j in range(4)}
    hits = [k for k, w in steps.items() if np.allclose(r.params["w"], w, rtol=1e-5, atol=1e-7)]
    assert hits, (r.params["w"], steps)
    full = w0 - 0.1 * np.asarray(gradlang.aggregate("upgrad", _per_row_jacobian(w0, X, y)))
    assert not np.allclose(r.params["w"], full, atol=1e-4)


def test_each_mistakes_are_located():
    """each(...) of a scalar, under a proximal method, or with a stateful aggregator and batch:
    errors at check time, at the line of the mistake."""
    cases = [(dict(value="sum((X @ w - y)^2)"), "takes a real vector", 5),
             (dict(extra="\n  method = proximal"), "method = proximal does not take", 10),
             (dict(agg="nash_mtl", extra="\n  batch = 2"), "keeps a state per objective", 9)]
    for kw, message, line in cases:
        text = EACH.format(**{"sense": "minimize", "value": "(X @ w - y)^2", "agg": "upgrad", "extra": "", **kw})
        with pytest.raises(GradlangError, match=message) as err:
            gradlang.compile(text)
        assert err.value.diagnostics[0].span.line == line, err.value.render()


def test_named_objectives_in_history_out_and_progress(tmp_path):
    """Each named objective is kept by name: in the history at every log point, in --out
    ("objectives", "history"."objectives") equal to numpy's values at the written parameters, and
    in a progress callback that takes a fourth argument (a three-argument one still works)."""
    import json

    from gradlang.cli import main

    data = _data()
    text = PROGRAM.format(init=1, lr=0.05, steps=20, agg="upgrad").replace("aggregator = upgrad",
                                                                           "aggregator = upgrad; log_every = 5")
    (tmp_path / "jd.grad").write_text(text)
    np.savez(tmp_path / "jd.npz", **data)
    assert main(["run", str(tmp_path / "jd.grad"), "--data", str(tmp_path / "jd.npz"), "--quiet",
                 "--out", str(tmp_path / "r.json")]) == 0
    r = json.loads((tmp_path / "r.json").read_text())
    w, X = np.asarray(r["params"]["w"]), data["X"].astype(np.float64)
    expect = {"task1": np.mean((X @ w - data["y1"]) ** 2), "task2": np.mean((X @ w - data["y2"]) ** 2),
              "small": 0.1 * np.sum(w**2)}
    assert r["objectives"] == pytest.approx(expect, rel=1e-5)
    assert len(r["history"]["step"]) == 4
    assert set(r["history"]["objectives"]) == set(expect)
    assert all(len(v) == 4 for v in r["history"]["objectives"].values())

    seen, plain = [], []
    program = gradlang.compile(text)
    result = program.fit(data=data, progress=lambda done, total, obj, objectives: seen.append(objectives))
    program.fit(data=data, progress=lambda done, total, obj: plain.append(obj))
    assert seen and plain and set(seen[-1]) == set(expect)
    # the bar shows the last step's values, which the history keeps at that log point
    assert seen[-1] == pytest.approx({k: v[-1] for k, v in result.history["objectives"].items()}, rel=1e-6)
    from gradlang.show import progress

    bar, update = progress(quiet=False)
    update(20, 20, 1.5, seen[-1])
    assert "task2" in bar.tasks[0].fields["objective"]


# ---- the gallery: real data, several objectives, Pareto stationarity checked outside gradlang ----

def _gallery(name):
    from .conftest import ROOT

    return gradlang.compile(ROOT / "examples" / name).fit(), np.load(ROOT / "examples/data" / (
        "linnerud.npz" if "linnerud" in name else "breast_cancer.npz"))


def test_gallery_linnerud_rank_one_regression_ends_pareto_stationary():
    """examples/linnerud_multitarget.grad: the three targets' gradients, by hand in NumPy at the
    returned parameters (r_k = z c_k + b_k - y_k: 2/N (Xᵀr_k c_k, zᵀr_k e_k, Σr_k e_k)), have a
    convex combination of norm below 1e-3 (seen 7e-7), while each is 0.02 or more: a real trade-off."""
    r, d = _gallery("linnerud_multitarget.grad")
    X, Y = d["X"], d["Y"]
    a, c, b = (r.params[k].astype(np.float64) for k in "acb")
    z, n, rows = X @ a, len(X), []
    for k in range(3):
        res = z * c[k] + b[k] - Y[:, k]
        e = np.eye(3)[k]
        rows.append(np.concatenate([2 / n * X.T @ res * c[k], 2 / n * z @ res * e, 2 / n * res.sum() * e]))
    J = np.array(rows)
    assert _min_norm_combination(J) < 1e-3
    assert np.linalg.norm(J, axis=1).min() > 0.01
    assert r.objectives["waist"] == pytest.approx(np.mean((z * c[1] + b[1] - Y[:, 1]) ** 2), rel=1e-5)


def test_gallery_multitask_mlp_ends_pareto_stationary():
    """examples/multitask_mlp_linnerud.grad: the three heads' loss gradients, by jax.jacrev of the
    network written again in JAX (float64) at the returned parameters, have a convex combination of
    norm below 1e-3 (seen 4e-4), each gradient 0.03 or more."""
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    r, d = _gallery("multitask_mlp_linnerud.grad")
    X, Y = d["X"], d["Y"]
    with jax.enable_x64(True):
        p = {k: jnp.asarray(v, jnp.float64) for k, v in r.params.items()}
        flat, unravel = ravel_pytree(p)

        def losses(f):
            q = unravel(f)
            R = jnp.tanh(X @ q["W1"] + q["b1"]) @ q["W2"] + q["b2"] - Y
            return jnp.mean(R**2, axis=0)

        J = np.asarray(jax.jacrev(losses)(flat))
        assert np.asarray(losses(flat)) == pytest.approx([r.objectives[k] for k in ("weight", "waist", "pulse")],
                                                         rel=1e-4)
    assert _min_norm_combination(J) < 1e-3
    assert np.linalg.norm(J, axis=1).min() > 0.01


def test_gallery_fairness_tradeoff_is_pareto_optimal():
    """examples/fair_tradeoff_cancer.grad: the gradients of the logistic loss and of the squared
    group gap (by hand) combine to below 1e-3 (seen 3e-5); both objectives are convex, so with the
    weights λ of that combination the point minimises λ₁ fit + λ₂ fairness: SciPy's L-BFGS on that
    sum, from zero, finds no value lower by more than 1e-5.  Fairness cost accuracy: the gap is
    below 0.2 in logits (8.7 unconstrained) and the accuracy below 0.95."""
    r, d = _gallery("fair_tradeoff_cancer.grad")
    X, y = d["X"], d["y"]
    g = (X[:, 1] > 0).astype(float)
    dgap = g @ X / g.sum() - (1 - g) @ X / (1 - g).sum()

    def parts(theta):
        w, b = theta[:-1], theta[-1]
        z = X @ w + b
        s = 1 / (1 + np.exp(-z))
        fit = np.mean(np.logaddexp(0, z) - y * z) + 0.001 * w @ w
        gap = dgap @ w
        return (fit, gap**2), (np.append(X.T @ (s - y) / len(X) + 0.002 * w, np.mean(s - y)),
                               np.append(2 * gap * dgap, 0.0))

    theta = np.append(r.params["w"].astype(np.float64), float(r.params["b"]))
    (fit, fair), grads = parts(theta)
    J = np.stack(grads)
    assert _min_norm_combination(J) < 1e-3 and np.linalg.norm(J, axis=1).min() > 0.1
    lam = minimize(lambda a: np.sum((a @ J) ** 2), [0.5, 0.5], method="SLSQP", bounds=[(0, 1)] * 2,
                   constraints={"type": "eq", "fun": lambda a: a.sum() - 1}).x
    best = minimize(lambda t: (lam @ np.array(parts(t)[0]), lam @ np.stack(parts(t)[1])), np.zeros(len(theta)),
                    jac=True, method="L-BFGS-B", options={"gtol": 1e-10, "ftol": 1e-14}).fun
    assert lam @ np.array([fit, fair]) <= best + 1e-5
    assert abs(float(r.reports["logit_gap"])) < 0.2 and float(r.reports["accuracy"]) < 0.95


def test_a_stateful_aggregator_keeps_its_state_in_the_solver():
    """nash_mtl(update_weights_every = 2): two steps, the second reusing the first step's weights
    α₀ (the Nash solution at w₀, kept in the solver state) on the new Jacobian:
    w₂ = w₁ - lr α₀ᵀJ(w₁); recomputing them at w₁ would give another point."""
    data, w0, lr = _data(), np.array([0.3, -0.2, 0.5, 0.1, -0.4]), 0.05
    agg = "nash_mtl(update_weights_every = 2, max_norm = 0)"
    r = gradlang.compile(PROGRAM.format(init=w0.tolist(), lr=lr, steps=2, agg=agg)).fit(data=data)
    J0 = _jacobian(w0, data)
    d0 = np.asarray(gradlang.aggregate("nash_mtl", J0, max_norm=0.0))
    alpha0 = np.linalg.lstsq(J0.T, d0, rcond=None)[0]
    w1 = w0 - lr * d0
    w2 = w1 - lr * alpha0 @ _jacobian(w1, data)
    np.testing.assert_allclose(r.params["w"], w2, rtol=2e-4, atol=2e-6)
    fresh = w1 - lr * np.asarray(gradlang.aggregate("nash_mtl", _jacobian(w1, data), max_norm=0.0))
    assert not np.allclose(w2, fresh, atol=1e-5)


TWO_ARRAYS = """
data X: real[N, 3]
data Y: real[N, 2]
param W: real[3, 2] = [[0.3, -0.2], [0.5, 0.1], [-0.4, 0.2]]
param c: real[2] = [0.1, -0.3]
let R = X @ W + c[None, :] - Y
minimize {{
  a: mean(R[:, 0]^2)
  b: mean(R[:, 1]^2)
  small: 0.1 * sumsq(W)
}}
solve {{ optimizer = {opt}; steps = 3; aggregator = upgrad }}
"""


def _two_arrays_data():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(20, 3)).astype(np.float32)
    return {"X": X, "Y": (X @ rng.normal(size=(3, 2))).astype(np.float32)}


def test_adam_on_several_arrays_steps_as_written_by_hand():
    """Three steps on two parameter arrays against optax.adam leaf by leaf on jax.jacrev's
    Jacobian: adam, elementwise, runs on the raveled parameters (one update, not one an array)
    with the same numbers."""
    import jax
    import jax.numpy as jnp
    import optax
    from jax.flatten_util import ravel_pytree

    from gradlang.lib.aggregators import AGGREGATORS

    data = _two_arrays_data()
    prog = gradlang.compile(TWO_ARRAYS.format(opt="adam(lr = 0.05)"))
    p = {"W": jnp.array([[0.3, -0.2], [0.5, 0.1], [-0.4, 0.2]]), "c": jnp.array([0.1, -0.3])}

    def losses(p):
        R = data["X"] @ p["W"] + p["c"][None, :] - data["Y"]
        return jnp.stack([jnp.mean(R[:, 0] ** 2), jnp.mean(R[:, 1] ** 2), 0.1 * jnp.sum(p["W"] ** 2)])

    tx, unravel, upgrad = optax.adam(0.05), ravel_pytree(p)[1], AGGREGATORS.get("upgrad").value()

    @jax.jit
    def step(p, state):
        J = jax.jacrev(lambda x: losses(unravel(x)))(ravel_pytree(p)[0])
        updates, state = tx.update(unravel(upgrad(J)[0]), state, p)
        return optax.apply_updates(p, updates), state

    state = tx.init(p)
    for _ in range(3):
        p, state = step(p, state)
    r = prog.fit(data=data)
    for k in ("W", "c"):
        np.testing.assert_allclose(r.params[k], p[k], rtol=1e-5, atol=1e-6)
    assert next(iter(prog._loops.values())).solver.flat


RAVELED = "on the raveled parameters"


@pytest.mark.parametrize("opt, aggregator, constraint, raveled", [
    ("adam(lr = 0.05)", "upgrad", "", True),
    ("sgd(lr = 0.05)", "mgda", "", True),
    ("adam(lr = 0.05)", "mean", "", False),       # a linear aggregator: the gradient, leaf by leaf
    ("lamb(lr = 0.05)", "upgrad", "", False),     # per-array trust ratios
    ("adam(lr = 0.05)", "upgrad", "subject to { c >= 0 }\n", False),  # a projection acts on the tree
])
def test_choose_optimizer_ravels_an_elementwise_optimizer_under_jacobian_descent(opt, aggregator, constraint, raveled,
                                                                                   tmp_path):
    """The decision is choose_optimizer's, in the IR, and the solver runs as the IR says."""
    from gradlang.emit import emit as emit_file

    def emit(text, stage):
        path = tmp_path / "p.grad"
        path.write_text(text)
        return emit_file(str(path), stage)

    text = TWO_ARRAYS.format(opt=opt).replace("aggregator = upgrad", f"aggregator = {aggregator}")
    text = text.replace("solve {", constraint + "solve {")
    printed = emit(text, "ir:choose_optimizer")
    assert (RAVELED in printed) is raveled, printed
    assert RAVELED not in emit(text, "ir:choose_vi_defaults")
    prog = gradlang.compile(text)
    prog.fit(data=_two_arrays_data(), steps=0)
    assert next(iter(prog._loops.values())).solver.flat is raveled


def test_an_optimizer_with_per_array_norms_keeps_the_arrays_apart():
    """lamb's trust ratio is a ratio of norms per array: on the raveled parameters it would be one
    ratio for all, so Jacobian descent leaves it leaf by leaf."""
    prog = gradlang.compile(TWO_ARRAYS.format(opt="lamb(lr = 0.05)"))
    prog.fit(data=_two_arrays_data(), steps=0)
    assert not next(iter(prog._loops.values())).solver.flat
