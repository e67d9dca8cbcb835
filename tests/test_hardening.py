"""Hardening (issue 9): each test here failed on the code the issue started from.

Item numbers refer to issue 9; numeric checks use a reference (scipy, NumPyro, closed form)."""

from __future__ import annotations

import pytest

import gradlang
from gradlang.errors import GradlangError

# ---- item 6: an expect block's value must be a scalar, found by `gradlang check` -------------

GUIDED = """data x: real[N]
model {
  mu ~ normal(0, 10)
  x ~ normal(mu, 1)
}
guide {
  param m: real[2] = 0
  mu ~ normal(m[0], 1)
}
"""


def test_expect_value_after_a_guide_draw_must_be_a_scalar():
    """After ``z ~ guide`` the value is checked too: logp/logq are scalars, a param vector is not."""
    with pytest.raises(GradlangError) as info:
        gradlang.compile(GUIDED + "maximize expect(particles = 2) {\n  z ~ guide\n"
                                  "  logp(model, z) - logq(guide, z) + m\n}\n")
    err = info.value
    assert "the last line of an expect block must be a real scalar, not real[2]" in err.message
    assert (err.span.line, err.span.col) == (12, 3)
    # the scalar form checks, and a scalar built from a nested expect does too
    gradlang.compile(GUIDED + "maximize expect(particles = 2) {\n  z ~ guide\n  logp(model, z) - logq(guide, z)\n}\n")
    gradlang.compile("param t: real[2] = 0\nmaximize expect(particles = 2) {\n  a ~ normal(t[0], 1)\n"
                     "  a + expect(particles = 2) { b ~ normal(t[1], 1); b^2 }\n}\n")


# ---- item 7: a top-level let of data alone on the left of `~` is an observed site ------------

def _log_joint(prog, data: dict, params: dict, latents: dict) -> float:
    """The model's log joint density at fixed values, as NumPyro computes it from the model."""
    import jax.numpy as jnp
    import numpyro

    model, arrays = prog.bind(data)
    arrays = {k: jnp.asarray(v) for k, v in arrays.items()}
    lp, _ = numpyro.infer.util.log_density(model.ppl.model_fn, (arrays, params), {},
                                           {k: jnp.float32(v) for k, v in latents.items()})
    return float(lp)


LOG_RESPONSE = """data y: real[N]
let ly = log(y)
param s: positive = 0.7
model {{
  mu ~ normal(0, 5)
  {left} ~ normal(mu, s)
}}
guide = mean_field
maximize elbo(particles = 4)
"""


def test_observed_top_level_let_of_data_has_the_log_density_of_its_value():
    import jax.numpy as jnp
    import numpy as np
    from scipy import stats

    y = np.random.default_rng(0).lognormal(0.3, 0.7, 20).astype(np.float32)
    prog = gradlang.compile(LOG_RESPONSE.format(left="ly"))
    for mu, s in [(0.3, 0.7), (-1.2, 2.5)]:
        lp = _log_joint(prog, {"y": y}, {"s": jnp.float32(s)}, {"mu": mu})
        log_y = np.log(y.astype(np.float64))
        expected = stats.norm.logpdf(mu, 0, 5) + stats.norm.logpdf(log_y, mu, s).sum()
        np.testing.assert_allclose(lp, expected, rtol=1e-5)
        # the same as the lognormal density of y itself, less its Jacobian term -sum(log y)
        lognormal = stats.norm.logpdf(mu, 0, 5) + stats.lognorm.logpdf(y, s=s, scale=np.exp(mu)).sum()
        np.testing.assert_allclose(lp, lognormal + log_y.sum(), rtol=1e-5)


def test_observed_top_level_let_declared_after_the_model_through_other_lets_and_minibatched():
    import jax.numpy as jnp
    import numpy as np
    from scipy import stats

    prog = gradlang.compile("data y: real[N]\nparam s: positive = 0.7\nmodel {\n  mu ~ normal(0, 5)\n"
                            "  ly ~ normal(mu, s)\n}\nguide = mean_field\nmaximize elbo(particles = 4)\n"
                            "solve { batch = 5 }\nlet ly = centred - 1\nlet centred = log(y) + 1\n")
    y = np.random.default_rng(1).lognormal(0.3, 0.7, 20).astype(np.float32)
    model, arrays = prog.bind({"y": y})
    rows = {"y": jnp.asarray(y[:5])}  # one minibatch: the observed site is scaled by N / batch = 4
    lp, _ = __import__("numpyro").infer.util.log_density(model.ppl.model_fn, (rows, {"s": jnp.float32(0.7)}),
                                                         {}, {"mu": jnp.float32(0.3)})
    expected = stats.norm.logpdf(0.3, 0, 5) + 4 * stats.norm.logpdf(np.log(y[:5].astype(np.float64)), 0.3, 0.7).sum()
    np.testing.assert_allclose(float(lp), expected, rtol=1e-5)


def test_observed_top_level_let_of_a_param_is_a_located_error():
    with pytest.raises(GradlangError) as info:
        gradlang.compile(LOG_RESPONSE.format(left="ly").replace("let ly = log(y)", "let ly = log(y) * s"))
    err = info.value
    assert "'ly' is a let that depends on param 's'" in err.message and "declared twice" not in err.render()
    assert (err.span.line, err.span.col, err.span.end_col) == (6, 3, 5)
