"""Solvers: the registry, the gradient solver's methods against Optax by hand, and ``tol``."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradlang
from gradlang.backend.solvers import SOLVERS, make_solver
from gradlang.backend.solvers.gradient import WINDOW
from gradlang.errors import ConfigError

LSQ = """
data X: real[N, D]
data y: real[N]
param w: real[D] = 0
minimize mean((X @ w - y)^2)
solve {{ optimizer = sgd(lr = 0.2); steps = 50000{tol} }}
"""


def _lsq_data():
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(200, 5)) * np.array([1, 0.7, 0.5, 0.3, 0.2])).astype(np.float32)
    y = (X @ np.array([1.0, -2.0, 0.5, 3.0, -1.0]) + 0.1 * rng.normal(size=200)).astype(np.float32)
    return {"X": X, "y": y}


@pytest.mark.parametrize("entry", SOLVERS.entries(), ids=lambda e: e.name)
def test_every_solver_is_documented_and_cited(entry):
    assert entry.summary and entry.cite


def test_gradient_solver_steps_as_optax_by_hand():
    """init/step/params of the solver are value_and_grad, opt.update, apply_updates; stats hold
    the objective as written (maximised: not negated)."""
    prog = gradlang.compile("param x: real[2] = [3, -1]\nmaximize -sumsq(x - [1, 2])\n"
                            "solve { optimizer = adam(lr = 0.1) }")
    model, arrays = prog.bind(None)
    solver = make_solver(model, optax.adam(0.1), prog.ir.solve)
    u = model.init(jax.random.PRNGKey(0), arrays)
    state = solver.init(u, arrays, None)
    opt = optax.adam(0.1)
    p, s = {"x": jnp.array([3.0, -1.0])}, opt.init({"x": jnp.array([3.0, -1.0])})
    for t in range(5):
        state, stats = solver.step(state, arrays, jnp.int32(t), None)
        value, g = jax.value_and_grad(lambda q: jnp.sum((q["x"] - jnp.array([1.0, 2.0])) ** 2))(p)
        updates, s = opt.update(g, s, p)
        p = optax.apply_updates(p, updates)
        np.testing.assert_allclose(stats["values"], [-value], rtol=1e-6)
        np.testing.assert_allclose(solver.objective(stats), -value, rtol=1e-6)
    np.testing.assert_allclose(solver.params(state)["x"], p["x"], rtol=1e-6)
    assert not solver.may_terminate and not bool(solver.terminate(state))


def test_tol_stops_early_at_the_least_squares_solution():
    """With tol = 1e-8 the loss changes by at most 1e-8 over the last WINDOW steps when the run
    stops: far before the 50000 steps, at numpy's lstsq solution within 2e-3 (float32 gradient
    descent; the suboptimality left is below 1e-7 of the loss)."""
    data = _lsq_data()
    result = gradlang.compile(LSQ.format(tol="; tol = 1e-8")).fit(data=data)
    X, y = data["X"].astype(np.float64), data["y"].astype(np.float64)
    w = np.linalg.lstsq(X, y, rcond=None)[0]
    best = np.mean((X @ w - y) ** 2)
    assert result.converged and result.converged_at == result.steps
    assert WINDOW < result.steps < 2000
    np.testing.assert_allclose(result.params["w"], w, atol=2e-3)
    np.testing.assert_allclose(result.objective, best, rtol=1e-5)
    assert result.history["step"][-1] == result.steps  # the stopping step is recorded
    assert result.to_json()["converged_at"] == result.steps


def test_tol_stops_where_the_window_test_first_holds():
    """The stopping step is the first t >= WINDOW with |f_t - f_{t-W}| <= tol * max(|f_t|, |f_{t-W}|, 1),
    f_t the loss before step t: replayed here with the same updates in float32."""
    data = _lsq_data()
    result = gradlang.compile(LSQ.format(tol="; tol = 1e-5")).fit(data=data)
    X, y = jnp.asarray(data["X"]), jnp.asarray(data["y"])
    loss = jax.jit(jax.value_and_grad(lambda w: jnp.mean((X @ w - y) ** 2)))
    w, losses = jnp.zeros(5), []
    for t in range(5000):
        f, g = loss(w)
        losses.append(float(f))
        w = w - 0.2 * g
        if t >= WINDOW and abs(losses[t] - losses[t - WINDOW]) <= 1e-5 * max(abs(losses[t]), abs(losses[t - WINDOW]), 1):
            break
    assert result.steps == t + 1
    np.testing.assert_allclose(result.params["w"], w, rtol=1e-4, atol=1e-6)


def test_without_tol_the_run_takes_every_step():
    result = gradlang.compile(LSQ.format(tol="").replace("50000", "300")).fit(data=_lsq_data())
    assert result.steps == 300 and not result.converged and result.converged_at is None


@pytest.mark.parametrize("body, message", [
    ("param m: real = 0\nminimize expect { z ~ normal(m, 1); (z - 2)^2 }\nsolve { tol = 1e-6 }", "Monte-Carlo"),
    ("data x: real[N]\nparam m: real = 0\nminimize mean((x - m)^2)\nsolve { batch = 4; tol = 1e-6 }", "minibatch"),
    ("param m: real = 0\nminimize (m - 1)^2\nsolve { tol = -1 }", "positive number"),
    ("param m: real = 0\nminimize (m - 1)^2\nsolve { tol = 0 }", "positive number"),
])
def test_tol_is_refused_where_it_cannot_work(body, message):
    with pytest.raises(ConfigError, match=message) as info:
        gradlang.compile(body)
    assert info.value.span is not None and info.value.span.line == body.count("\n") + 1


def test_a_registry_lookup_imports_only_the_entrys_own_file():
    """``get`` and ``in`` import the file named after the entry before the whole package (a fresh
    process: the test process has every entry loaded), and in a ``by_file`` registry a name with
    no file of its own is no entry (``mean`` has no prox); an unknown name's error loads every
    entry, so that it lists them all with the nearest."""
    import subprocess
    import sys

    code = """
import sys
from gradlang.backend.solvers import SOLVERS
from gradlang.errors import ConfigError
from gradlang.lib.prox import PROXES
assert SOLVERS.get("fista").name == "fista" and "norm1" in PROXES and "mean" not in PROXES
loaded = {m.rsplit(".", 1)[1] for m in sys.modules if m.startswith(("gradlang.backend.solvers.", "gradlang.lib.prox."))}
assert {"fista", "norm1"} <= loaded and not loaded & {"admm", "pdhg", "hypergradient", "nuclear", "tv1d"}, loaded
try:
    SOLVERS.get("fistaa")
except ConfigError as err:
    hint = err.diagnostics[0].help
assert "fista" in hint and "admm" in hint and "gradlang.backend.solvers.admm" in sys.modules, hint
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.stdout.strip() == "ok", out.stderr


def test_a_by_file_registry_keeps_each_entry_in_the_file_named_after_it():
    """What ``Registry.by_file`` promises: a name without a file of its own is not an entry."""
    from gradlang.lib.prox import PROXES

    for registry in (SOLVERS, PROXES):
        assert registry.by_file
        for entry in registry.entries():
            assert entry.value.__module__ == f"{registry._package}.{entry.name}", entry.name
