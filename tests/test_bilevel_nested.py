"""Nested lower levels and several upper objectives over a bilevel program, against closed forms.

* Three quadratic levels (``NESTED``): inner ``c*(a, b) = (a + b)/3`` (the argmin of
  ``½(c − b)² + ½(c − a)² + ½c²``), middle ``b*(a) = argmin_b ½(b − 1)² + (c*(a, b) − a)²
  = (9 + 4a)/11`` (it must see that c* moves with b: a middle level that held c fixed would get
  b* = 1), upper ``φ(a) = (b* − 2)² + c*(a, b*)² + a²/10``, a quadratic in a.  Its derivative and
  its minimiser come from ``jax.grad`` of that closed-form composition.  The direction's
  hypergradient at a = 0.3 equals it to 1e-5 with implicit at both levels, unroll at both, and
  implicit over unroll; a run with implicit ends at the minimiser a* = 0.6968 and reports
  ``mid.b`` = b*(a*) and ``mid.inner.c`` = c*(a*, b*).  Three levels (``DEEP``, ``mid.inner.deep.e``
  read by an upper objective) likewise, with two upper objectives.
* Several upper objectives with a lower level (``SEVERAL``): ``y*(x) = A x / 2`` (the argmin of
  ``½‖y − A x‖² + ½‖y‖²``), objectives ``f_i = ½‖y* − t_i‖² + ½ρ‖x − c_i‖²`` whose
  hypergradients ``Aᵀ(y* − t_i)/2 + ρ(x − c_i)`` conflict at x = 0.  One step's direction equals
  ``gradlang.aggregate("upgrad", J)`` on those rows (NumPy, by hand), with implicit and with unroll;
  a run ends Pareto-stationary: the min-norm point of the rows' convex hull (two rows: closed
  form) has norm below 1e-3 at the final x, and its conflict report is the cosine of those rows.
* The same through the KKT system of a constrained lower level (``KKT``, implicit): at an active
  constraint y* = x1 + x2/2, the rows by hand, aggregated by upgrad.
* LV-HBA with an equality-constrained lower level coupled to x (``EQUALITY``): y*(x), the
  projection of (2, 0) onto ``{y : y1 + y2 = x}``, is (1 + x/2, x/2 − 1), so ``φ(x) = ½(x − 1)² +
  ½‖y*‖²`` has φ' = (x − 1) + x/2 and the optimum x* = 2/3, y* = (4/3, −2/3); the run reaches it
  within 1e-2 and ends feasible.
* Refusals: located errors naming a combination that works.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradlang
from gradlang.backend.solvers.gradient import direction_of
from gradlang.errors import GradlangError

NESTED = """
param a: real = 0.3
lower mid {{
  param b: real = 0
  lower inner {{
    param c: real = 0
    minimize 0.5 * (c - b)^2 + 0.5 * (c - a)^2 + 0.5 * c^2
    solve {{ optimizer = sgd(lr = 0.3); steps = 30{inner} }}
  }}
  minimize 0.5 * (b - 1)^2 + (inner.c - a)^2
  solve {{ optimizer = sgd(lr = 0.5); steps = 40 }}
}}
minimize (mid.b - 2)^2 + (mid.inner.c)^2 + 0.1 * a^2
solve {{ optimizer = sgd(lr = 0.5); steps = {steps}; bilevel = {method} }}
"""


def phi(a):
    """The upper objective through the closed-form lower and middle solutions."""
    b = (9 + 4 * a) / 11
    c = (a + b) / 3
    return (b - 2) ** 2 + c ** 2 + 0.1 * a ** 2


def direction_at_start(src: str, data: dict):
    """The direction's first step at the program's initial values (the lower solves from their starts)."""
    model, arrays = gradlang.compile(src).bind(data)
    direction = direction_of(model)
    data = {k: jnp.asarray(v) for k, v in arrays.items()}
    u = model.init(jax.random.PRNGKey(0), data)
    _, _, g, est = jax.jit(lambda est: direction(u, data, None, est))(direction.init(u, data, {}))
    return g, direction.reported(est)


@pytest.mark.parametrize("method, inner", [
    ("implicit", ""),
    ("unroll", ""),
    ("implicit", "; bilevel = unroll"),  # implicit at the middle level over an unrolled inner one
])
def test_nested_hypergradient_equals_the_closed_form(method, inner):
    g, low = direction_at_start(NESTED.format(method=method, inner=inner, steps=1), {})
    assert abs(float(g["a"]) - float(jax.grad(phi)(0.3))) < 1e-5, (g, jax.grad(phi)(0.3))
    b = (9 + 4 * 0.3) / 11
    assert abs(float(low["mid.b"]) - b) < 1e-5 and abs(float(low["mid.inner.c"]) - (0.3 + b) / 3) < 1e-5


def test_a_nested_run_reaches_the_closed_form_optimum():
    a_star = 0.3 - float(jax.grad(phi)(0.3) / jax.grad(jax.grad(phi))(0.3))  # φ is quadratic in a
    result = gradlang.compile(NESTED.format(method="implicit", inner="", steps=60)).fit(data={})
    b = (9 + 4 * a_star) / 11
    assert abs(float(result.params["a"]) - a_star) < 1e-4, (result.params, a_star)
    assert abs(float(result.params["mid.b"]) - b) < 1e-4
    assert abs(float(result.params["mid.inner.c"]) - (a_star + b) / 3) < 1e-4


DEEP = """
param a: real = 0.3
lower mid {
  param b: real = 0
  lower inner {
    param c: real = 0
    lower deep {
      param e: real = 0
      minimize 0.5 * (e - c)^2 + 0.5 * e^2
      solve { optimizer = sgd(lr = 0.5); steps = 3 }
    }
    minimize 0.5 * (c - b)^2 + (deep.e - a)^2
    solve { optimizer = sgd(lr = 0.6); steps = 10 }
  }
  minimize 0.5 * (b - 1)^2 + (inner.c)^2
  solve { optimizer = sgd(lr = 0.5); steps = 10 }
}
minimize {
  f1: (mid.b - 2)^2 + 0.1 * a^2
  f2: (mid.inner.deep.e + 1)^2
}
solve { optimizer = sgd(lr = 0.5); steps = 1; bilevel = {method} }
"""


@pytest.mark.parametrize("method", ["unroll"])  # implicit too (checked by hand), at 5 s of compiling
def test_three_levels_and_two_objectives_equal_the_closed_form(method):
    """e*(c) = c/2, c*(a, b) = (a + b)/1.5, b*(a) = (1 − 2a/2.25)/(1 + 2/2.25): each objective's
    hypergradient by jax.grad of the composition, aggregated by upgrad (the rows agree in sign here)."""
    def levels(a):
        b = (1 - 2 * a / 2.25) / (1 + 2 / 2.25)
        c = (a + b) / 1.5
        return b, c, c / 2

    J = np.array([[float(jax.grad(lambda a: (levels(a)[0] - 2) ** 2 + 0.1 * a ** 2)(0.3))],
                  [float(jax.grad(lambda a: (levels(a)[2] + 1) ** 2)(0.3))]])
    g, low = direction_at_start(DEEP.replace("{method}", method), {})
    assert abs(float(g["a"]) - float(np.asarray(gradlang.aggregate("upgrad", J))[0])) < 1e-5, (g, J)
    assert np.allclose([low["mid.b"], low["mid.inner.c"], low["mid.inner.deep.e"]], levels(0.3), atol=1e-5)


SEVERAL = """
data A: real[2, 2]
param x: real[2] = 0
lower low {{
  param y: real[2] = 0
  minimize 0.5 * sumsq(y - A @ x) + 0.5 * sumsq(y)
  solve {{ optimizer = sgd(lr = 0.5); steps = 40 }}
}}
minimize {{
  f1: 0.5 * sumsq(low.y - [1, 0]) + 0.05 * sumsq(x)
  f2: 0.5 * sumsq(low.y - [-1, 1]) + 0.05 * sumsq(x - [1, 1])
}}
solve {{ optimizer = sgd(lr = 0.5); steps = {steps}; bilevel = {method} }}
"""
A = np.array([[1.0, 0.5], [-0.3, 1.0]])
TARGETS, CENTRES, RHO = np.array([[1.0, 0.0], [-1.0, 1.0]]), np.array([[0.0, 0.0], [1.0, 1.0]]), 0.1


def rows(x):
    """Each objective's hypergradient through y*(x) = A x / 2 (dy*/dx = A / 2)."""
    y = A @ x / 2
    return np.stack([A.T @ (y - t) / 2 + RHO * (x - c) for t, c in zip(TARGETS, CENTRES)])


@pytest.mark.parametrize("method", ["implicit", "unroll"])
def test_one_step_is_the_aggregator_on_the_hand_computed_hypergradients(method):
    J = rows(np.zeros(2))
    assert J[0] @ J[1] < 0  # conflicting: upgrad is not the mean here
    want = np.asarray(gradlang.aggregate("upgrad", J))
    assert np.linalg.norm(want - J.mean(0)) > 0.05
    g, _ = direction_at_start(SEVERAL.format(method=method, steps=1), {"A": A})
    assert np.allclose(np.asarray(g["x"]), want, atol=1e-5), (g, want)


def test_a_run_with_several_objectives_ends_pareto_stationary():
    result = gradlang.compile(SEVERAL.format(method="implicit", steps=300)).fit(data={"A": A})
    g1, g2 = rows(np.asarray(result.params["x"], float))
    w = np.clip((g2 - g1) @ g2 / ((g1 - g2) @ (g1 - g2)), 0.0, 1.0)  # MGDA's min-norm point, two rows
    assert np.linalg.norm(w * g1 + (1 - w) * g2) < 1e-3
    assert 0.05 < w < 0.95  # a trade-off, not one objective's minimiser
    assert np.allclose(result.params["low.y"], A @ result.params["x"] / 2, atol=1e-4)
    # the conflict report: the cosine of the hypergradients (-1 at a two-objective Pareto point with
    # 0 < w < 1), not of the partial gradients in (x, y); at the end and at the history's last log point
    cos = g1 @ g2 / np.linalg.norm(g1) / np.linalg.norm(g2)
    assert abs(result.conflicts["f1|f2"] - cos) < 1e-3 and cos < -0.999, (result.conflicts, cos)
    assert abs(np.asarray(result.history["conflict"])[-1][0, 1] - cos) < 1e-3


KKT = """
param x: real[2] = [1, 0]
lower low {
  param y: real = 0
  minimize 0.5 * (y - 2)^2
  subject to { y <= x[0] + 0.5 * x[1] }
  solve { optimizer = sgd(lr = 0.5); steps = 50 }
}
minimize {
  f1: 0.5 * sumsq(x - [1, 0]) + 0.5 * low.y^2
  f2: 0.5 * (low.y - 1.5)^2 + 0.1 * sumsq(x - [0, 2])
}
solve { optimizer = sgd(lr = 0.1); steps = 1; bilevel = implicit }
"""


def test_several_objectives_through_the_kkt_system_of_a_constrained_lower_level():
    """At x = (1, 0) the constraint is active: y* = x1 + x2/2 = 1, dy*/dx = (1, 1/2), so the rows are
    (x − (1, 0)) + y* (1, 1/2) = (1, 1/2) and (y* − 3/2)(1, 1/2) + (x − (0, 2))/5 = (−0.3, −0.65)."""
    J = np.array([[1.0, 0.5], [-0.3, -0.65]])
    g, low = direction_at_start(KKT, {})
    assert abs(float(low["low.y"]) - 1.0) < 1e-5
    assert np.allclose(np.asarray(g["x"]), np.asarray(gradlang.aggregate("upgrad", J)), atol=1e-5), g


EQUALITY = """
param x: real = 0
lower low {
  param y: real[2] = 0
  minimize 0.5 * sumsq(y - [2, 0])
  subject to { y[0] + y[1] == x }
  solve { optimizer = sgd(lr = 0.5); steps = 50 }
}
minimize 0.5 * (x - 1)^2 + 0.5 * sumsq(low.y)
solve { optimizer = sgd(lr = 0.2); steps = 3000; bilevel = lv_hba }
"""


def test_lv_hba_with_an_equality_constrained_lower_level_reaches_the_closed_form_optimum():
    p = gradlang.compile(EQUALITY).fit(data={}).params
    assert abs(p["x"] - 2 / 3) < 1e-2 and np.allclose(p["low.y"], [4 / 3, -2 / 3], atol=1e-2), p
    assert abs(p["low.y"][0] + p["low.y"][1] - p["x"]) < 1e-3  # feasible


# ---- refusals: located errors naming what works --------------------------------------------------
@pytest.mark.parametrize("edit, line, message, hint", [
    (("bilevel = implicit }", "bilevel = penalty }"), 14,
     "bilevel method penalty with nested lower blocks (lower mid) is not supported", "bilevel = implicit"),
    (("; steps = 30 }", "; steps = 30; bilevel = value_gap }"), 8,
     "bilevel method value_gap with nested lower blocks (lower mid.inner)", "bilevel = implicit"),
    (("    minimize 0.5 * (c - b)^2", "    subject to { c <= b }\n    minimize 0.5 * (c - b)^2"), 7,
     "a subject to in a nested bilevel program (lower mid.inner)", "nest no lower block"),
    (("minimize 0.5 * (b - 1)^2", "param b2: real = 0\n  minimize 0.5 * (b - 1)^2 + other.d"), 11,
     "a lower level that uses another lower level's solution", "nest one block inside the other"),
    (("    param c: real = 0", "    param b: real = 0"), 6,
     "param 'b' of lower mid.inner has the name of a param of a block it is nested in", "rename"),
])
def test_nested_refusals_are_located(edit, line, message, hint):
    src = NESTED.format(method="implicit", inner="", steps=1).replace(*edit)
    src += "lower other {\n  param d: real = 0\n  minimize (d - a)^2\n}\n"
    with pytest.raises(GradlangError) as err:
        gradlang.compile(src)
    d = err.value.diagnostics[0]
    assert message in d.message and d.span.line == line and hint in (d.help or ""), (d.message, d.span, d.help)


def test_several_objectives_with_a_method_without_rows_is_located():
    with pytest.raises(GradlangError) as err:
        gradlang.compile(SEVERAL.format(method="penalty", steps=1))
    d = err.value.diagnostics[0]
    assert "several upper objectives with bilevel method penalty" in d.message and d.span.line == 11
    assert "bilevel = implicit" in d.help
    # mean weighs the objectives' hypergradients 1/2 each: the gradient of their mean, any method
    gradlang.compile(SEVERAL.format(method="penalty", steps=1).replace("bilevel = penalty", "bilevel = penalty; "
                                                                       "aggregator = mean"))
