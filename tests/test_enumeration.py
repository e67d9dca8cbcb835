"""Enumeration beyond one expect site: guide sites ``via enum`` (summed over in the ELBO, as Pyro's
TraceEnum_ELBO does for the guide), and score-function sites drawn after an enum or mvd site.
References are closed forms and sums over every outcome; tolerances as in test_estimators (5
standard errors of a Monte-Carlo mean, fixed seeds)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import expit, logsumexp
from scipy.stats import norm

import gradlang
from gradlang.errors import GradlangError

from .test_estimators import _assert_unbiased, _gradients

PRIOR = 0.3
X = np.array([1.4, 2.3, 0.9])
TWO_LATENTS = """
data x: real[N]
model {
  z: int ~ bernoulli(0.3)
  mu ~ normal(0, 1)
  x ~ normal(mu + 2 * z, 1)
}
"""  # a discrete and a continuous latent, both in the mean of x


def _discrete_program(objective: str = "elbo(particles = 1)") -> str:
    return f"""
data x: real[N]
model {{
  z: int ~ bernoulli({PRIOR})
  x ~ normal(2 * z, 1)
}}
guide {{
  param t: real = 0
  z ~ bernoulli(logits = t) via enum
}}
maximize {objective}
solve {{ optimizer = adam(lr = 0.05); steps = 1500 }}
"""


def _exact_discrete_elbo(t: float) -> float:
    q1 = expit(t)
    total = 0.0
    for z, q in ((0, 1 - q1), (1, q1)):
        log_joint = np.log(PRIOR if z else 1 - PRIOR) + norm.logpdf(X, 2 * z, 1).sum()
        total += q * (log_joint - np.log(q))
    return total


def test_enumerated_guide_site_gives_the_exact_elbo_and_gradient():
    prog = gradlang.compile(_discrete_program())
    f = prog.objective_fn
    t = 0.4
    for seed in (0, 1):  # no randomness is left: every key gives the exact value
        value = -float(f({"t": t}, {"x": X}, jax.random.PRNGKey(seed)))
        np.testing.assert_allclose(value, _exact_discrete_elbo(t), rtol=1e-5)
    grad = -float(jax.grad(lambda t: f({"t": t}, {"x": X}, jax.random.PRNGKey(0)))(t))
    fd = (_exact_discrete_elbo(t + 1e-4) - _exact_discrete_elbo(t - 1e-4)) / 2e-4
    np.testing.assert_allclose(grad, fd, rtol=1e-3)


def test_enumerated_guide_fits_the_exact_posterior_and_the_evidence():
    r = gradlang.compile(_discrete_program()).fit(data={"x": X})
    log_joint = np.array([np.log(1 - PRIOR) + norm.logpdf(X, 0, 1).sum(), np.log(PRIOR) + norm.logpdf(X, 2, 1).sum()])
    log_evidence = logsumexp(log_joint)
    posterior = np.exp(log_joint[1] - log_evidence)
    assert abs(expit(float(r.params["t"])) - posterior) < 1e-3, (expit(float(r.params["t"])), posterior)
    assert abs(r.objective - log_evidence) < 1e-4  # no Monte-Carlo noise: the bound is tight at q = p(z | x)


def test_enumerated_guide_site_with_a_reparameterised_site_is_unbiased():
    # z ~ q(z) enumerated, mu | z ~ N(m + d z, s) reparameterised: the ELBO has a closed form
    program = TWO_LATENTS + """
guide {
  param t: real = 0
  param m: real = 0
  param d: real = 0
  param s: positive = 1
  z ~ bernoulli(logits = t) via enum
  mu ~ normal(m + d * z, s)
}
maximize elbo(particles = 1)
"""

    def exact(p):
        q1 = jax.nn.sigmoid(p["t"])
        total = 0.0
        for z, q in ((0, 1 - q1), (1, q1)):
            mean, s = p["m"] + p["d"] * z, p["s"]
            e_prior = -0.5 * jnp.log(2 * jnp.pi) - 0.5 * (mean**2 + s**2)
            e_lik = jnp.sum(-0.5 * jnp.log(2 * jnp.pi) - 0.5 * ((X - mean - 2 * z) ** 2 + s**2))
            entropy = 0.5 * jnp.log(2 * jnp.pi * jnp.e * s**2)
            total += q * (jnp.log(0.3 if z else 0.7) + e_prior + e_lik + entropy - jnp.log(q))
        return total

    params = {"t": 0.2, "m": 0.5, "d": 1.0, "s": 0.8}
    prog = gradlang.compile(program)
    f = prog.objective_fn
    keys = jax.random.split(jax.random.PRNGKey(0), 20000)
    p = {k: jnp.asarray(v, jnp.float32) for k, v in params.items()}
    # objective_fn takes domain values: the gradient in s is with respect to s itself
    g = jax.jit(jax.vmap(jax.grad(lambda p, k: -f(p, {"x": X}, k)), in_axes=(None, 0)))(p, keys)
    ref = jax.grad(exact)({k: jnp.asarray(v, jnp.float64) if jax.config.jax_enable_x64 else jnp.asarray(v)
                           for k, v in params.items()})
    for name in params:
        _assert_unbiased(g[name], float(ref[name]))


REWARD = np.array([[0.5, 1.5], [2.0, -1.0], [0.0, 0.8]])
THETA = np.array([0.2, -0.4, 0.1])
PHI = np.array([0.3, -0.6, 1.1])


def _exact_two_stage(theta, phi):
    """d/d(theta, phi) of E_{a ~ softmax(theta)} E_{b ~ Bernoulli(sigmoid(phi_a))} [reward[a, b]]."""
    def value(theta, phi):
        p = jax.nn.softmax(theta)
        q = jax.nn.sigmoid(phi)
        return jnp.sum(p * ((1 - q) * REWARD[:, 0] + q * REWARD[:, 1]))

    return jax.grad(value, argnums=(0, 1))(jnp.asarray(theta), jnp.asarray(phi))


@pytest.mark.parametrize("first", ["enum", "mvd"])
@pytest.mark.parametrize("second", ["via score(baseline = none)", "via score(baseline = greedy)", ""])
def test_score_site_after_an_enum_or_mvd_site_is_unbiased(first, second):
    # the second site is drawn inside the first's continuation; no via: the default there (score, no baseline)
    program = (f"const reward = {REWARD.tolist()}\nparam theta: real[3] = 0\nparam phi: real[3] = 0\n"
               f"maximize expect(particles = 2) {{\n  a ~ categorical(logits = theta) via {first}\n"
               f"  b ~ bernoulli(logits = phi[a]) {second}\n  reward[a, b]\n}}")
    g = _gradients(program, {"theta": THETA, "phi": PHI}, 20000)
    d_theta, d_phi = _exact_two_stage(THETA, PHI)
    _assert_unbiased(g["theta"], np.asarray(d_theta))
    _assert_unbiased(g["phi"], np.asarray(d_phi))


def test_pooling_baseline_after_an_enum_site_is_a_located_error():
    program = ("param theta: real[3] = 0\nparam phi: real[3] = 0\n"
               "maximize expect(particles = 2) {\n  a ~ categorical(logits = theta) via enum\n"
               "  b ~ bernoulli(logits = phi[a]) via score(baseline = rloo)\n  a + b\n}\nsolve { steps = 2 }")
    with pytest.raises(GradlangError) as info:
        gradlang.compile(program).fit()
    err = info.value
    assert "site 'b'" in err.message and "rloo" in err.message
    assert (err.span.line, err.span.col) == (5, 38)
    assert "baseline = none" in err.render()


def test_iwae_with_an_enumerated_guide_is_a_located_error():
    with pytest.raises(GradlangError) as info:
        gradlang.compile(_discrete_program("iwae(particles = 4)")).fit(data={"x": X}, steps=2)
    assert "enumerates 'z'" in info.value.message and info.value.span.line == 11


def test_mvd_on_a_guide_site_is_a_located_error():
    program = _discrete_program().replace("via enum", "via mvd")
    with pytest.raises(GradlangError) as info:
        gradlang.compile(program).fit(data={"x": X}, steps=2)
    assert "site 'z'" in info.value.message and "mvd" in info.value.message
    assert info.value.span.line == 9


def test_changepoint_example_finds_the_exact_posterior_and_evidence():
    """examples/changepoint.grad on posteriordb's kilpisjarvi_mod: with sigma known the model is
    conjugate given the changepoint, so p(cp | y) and log p(y) follow by enumerating the 62
    candidates with the closed-form Gaussian marginal likelihood of each segment.  The guide family
    contains the exact posterior: q(cp) must match it, and the ELBO of the fitted guide (in closed
    form) must reach the log evidence."""
    from scipy.special import softmax
    from scipy.stats import multivariate_normal

    from .conftest import ROOT

    data = np.load(ROOT / "examples" / "data" / "kilpisjarvi_mod.npz")
    y, sigma, prior_mean, prior_sd = data["y"].astype(float), 1.1, 9.0, 2.0
    T = len(y)

    def log_marginal(segment):
        if len(segment) == 0:
            return 0.0
        cov = sigma**2 * np.eye(len(segment)) + prior_sd**2
        return multivariate_normal(np.full(len(segment), prior_mean), cov).logpdf(segment)

    log_joint = np.array([-np.log(T) + log_marginal(y[:c]) + log_marginal(y[c:]) for c in range(T)])
    log_evidence = logsumexp(log_joint)
    posterior = np.exp(log_joint - log_evidence)

    r = gradlang.compile(ROOT / "examples" / "changepoint.grad").fit()
    q = softmax(np.asarray(r.params["logits"], float))
    m, s = np.asarray(r.params["m"], float), np.asarray(r.params["s"], float)
    assert 0.5 * np.abs(q - posterior).sum() < 0.01
    assert int(r.reports["year"]) == int(data["x"][posterior.argmax()]) - 2000 == 1988

    def expected_log_normal(x, mean, sd, scale):  # E_{mu ~ N(mean, sd^2)} log N(x; mu, scale^2)
        return -0.5 * np.log(2 * np.pi * scale**2) - ((x - mean) ** 2 + sd**2) / (2 * scale**2)

    elbo = 0.0
    for c in range(T):
        before = np.arange(T) < c
        term = (-np.log(T) - np.log(q[c])
                + sum(expected_log_normal(prior_mean, m[c, k], s[c, k], prior_sd)
                      + 0.5 * np.log(2 * np.pi * np.e * s[c, k] ** 2) for k in (0, 1))
                + expected_log_normal(y, np.where(before, m[c, 0], m[c, 1]), np.where(before, s[c, 0], s[c, 1]),
                                      sigma).sum())
        elbo += q[c] * term
    assert log_evidence - 0.02 < elbo <= log_evidence + 1e-6
    assert abs(r.objective - log_evidence) < 0.05  # the loop's own (Monte-Carlo) estimate
