"""Relaxed estimators (issue 9, items 2 and 14) checked against their definitions.

- ``gumbel(t)`` (Jang et al. 2017; Maddison et al. 2017): a draw X = softmax((logits + G) / t),
  G iid Gumbel(0, 1).  So argmax X is an exact categorical draw, X sums to 1, and
  t (log X_k - log X_0) - (logit_k - logit_0) = G_k - G_0 is Logistic(0, 1); for a bernoulli,
  X = sigmoid((logit + L) / t), L ~ Logistic(0, 1), so t logit(X) - logit ~ Logistic(0, 1).  The
  gradient of X with respect to the logits, for a fixed key, is the finite difference of X.
- ``straight_through`` (Bengio et al. 2013): the value is the exact draw (0/1 per coordinate of a
  bernoulli, a one-hot row per coordinate of a categorical, whatever the site's shape), and the
  gradient is that of the relaxation from the same noise.

Distribution checks use scipy's chi-square / Kolmogorov-Smirnov tests at p > 1e-6 (a false-failure
rate of 1e-6 a check), with fixed seeds, so the tests are deterministic.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as nd
import pytest
from scipy import stats

import gradlang
from gradlang.backend.site_dists import shaped
from gradlang.lib.estimators import ESTIMATORS

P_MIN = 1e-6
THETA = np.array([0.3, -0.2, 0.9, -1.0])
T = 0.7


def _est(name, **kw):
    return ESTIMATORS.get(name).value(**kw)


def _keys(n, seed=0):
    return jax.random.split(jax.random.PRNGKey(seed), n)


def _cat(theta, shape=(2,)):
    return shaped(nd.CategoricalLogits(jnp.asarray(theta)), shape)


def _bern(logits):
    return shaped(nd.BernoulliLogits(jnp.asarray(logits)), tuple(np.shape(logits)))


def _chi2(counts, probs):
    expected = probs * counts.sum()
    assert expected.min() > 5  # the chi-square approximation holds
    p = stats.chisquare(counts, expected).pvalue
    assert p > P_MIN, (counts, expected, p)


# ---- gumbel: the concrete distribution ------------------------------------------------------

def test_gumbel_categorical_draws_follow_the_concrete_distribution():
    est = _est("gumbel", temperature=T)
    x = np.asarray(jax.vmap(lambda k: est.draw(_cat(THETA), k)[0])(_keys(20000)), np.float64)
    assert x.shape == (20000, 2, 4)  # one relaxed row per coordinate of the site
    np.testing.assert_allclose(x.sum(-1), 1.0, atol=1e-5)
    probs = np.exp(THETA) / np.exp(THETA).sum()
    for i in range(2):  # each coordinate's argmax is an exact categorical draw
        _chi2(np.bincount(x[:, i].argmax(-1), minlength=4), probs)
    # t (log X_k - log X_0) - (theta_k - theta_0) = G_k - G_0 ~ Logistic(0, 1)
    lx = np.log(x[:, 0])
    for k in (1, 2, 3):
        diff = T * (lx[:, k] - lx[:, 0]) - (THETA[k] - THETA[0])
        assert stats.kstest(diff, stats.logistic.cdf).pvalue > P_MIN
    # the two coordinates are independent draws
    joint = np.bincount(x[:, 0].argmax(-1) * 4 + x[:, 1].argmax(-1), minlength=16)
    _chi2(joint, np.outer(probs, probs).ravel())


def test_gumbel_bernoulli_draws_follow_the_binary_concrete_distribution():
    # t = 2: sigmoid((logit + L) / t) does not round to 0 or 1 in float32 at these sample sizes
    logits, t = np.array([0.4, -1.2, 2.0]), 2.0
    est = _est("gumbel", temperature=t)
    x = np.asarray(jax.vmap(lambda k: est.draw(_bern(logits), k)[0])(_keys(20000, 1)), np.float64)
    assert x.shape == (20000, 3) and ((x > 0) & (x < 1)).all()
    for i in range(3):
        z = t * (np.log(x[:, i]) - np.log1p(-x[:, i])) - logits[i]
        assert stats.kstest(z, stats.logistic.cdf).pvalue > P_MIN


@pytest.mark.parametrize("family", ["categorical", "bernoulli"])
def test_gumbel_gradient_is_the_finite_difference_of_the_relaxed_draw(family):
    est = _est("gumbel", temperature=T)
    key = jax.random.PRNGKey(3)
    with jax.enable_x64(True):
        if family == "categorical":
            theta, make = jnp.asarray(THETA, jnp.float64), _cat
            w = jnp.asarray(np.arange(8.0).reshape(2, 4) ** 1.5)
        else:
            theta, make = jnp.asarray([0.4, -1.2, 2.0], jnp.float64), _bern
            w = jnp.asarray([1.0, -2.0, 0.5])

        def f(th):
            return jnp.sum(w * est.draw(make(th), key)[0])

        g = np.asarray(jax.grad(f)(theta))
        h = 1e-6
        fd = np.array([(f(theta.at[i].add(h)) - f(theta.at[i].add(-h))) / (2 * h) for i in range(len(theta))])
        np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)
        assert np.abs(g).max() > 1e-3  # not trivially zero


# ---- straight-through: the exact draw forward, the relaxation's gradient backward ----------

def test_straight_through_categorical_with_an_event_dim_draws_one_hot_rows():
    est = _est("straight_through")
    x = np.asarray(jax.vmap(lambda k: est.draw(_cat(THETA), k)[0])(_keys(20000, 2)))
    assert x.shape == (20000, 2, 4)
    assert set(np.unique(x)) <= {0.0, 1.0} and (x.sum(-1) == 1).all()
    probs = np.exp(THETA) / np.exp(THETA).sum()
    idx = x.argmax(-1)
    _chi2(np.bincount(idx[:, 0] * 4 + idx[:, 1], minlength=16), np.outer(probs, probs).ravel())


def test_straight_through_bernoulli_with_vector_logits_draws_each_coordinate():
    logits = np.array([0.4, -1.2, 2.0])
    est = _est("straight_through")
    x = np.asarray(jax.vmap(lambda k: est.draw(_bern(logits), k)[0])(_keys(20000, 4)))
    assert x.shape == (20000, 3) and set(np.unique(x)) <= {0.0, 1.0}
    p = 1 / (1 + np.exp(-logits))
    codes = (x * [1, 2, 4]).sum(-1).astype(int)  # the joint outcome of three independent bits
    joint = np.array([np.prod([p[i] if bits[i] else 1 - p[i] for i in range(3)])
                      for bits in itertools.product([0, 1], repeat=3)])  # bits[0] is the low bit below
    order = [sum(b << i for i, b in enumerate(bits)) for bits in itertools.product([0, 1], repeat=3)]
    _chi2(np.bincount(codes, minlength=8)[order], joint)


@pytest.mark.parametrize("family", ["categorical", "bernoulli"])
def test_straight_through_value_is_the_hard_draw_and_gradient_the_relaxed_one(family):
    st, soft = _est("straight_through", temperature=T), _est("gumbel", temperature=T)
    if family == "categorical":
        theta, make, w = jnp.asarray(THETA), _cat, jnp.asarray(np.arange(8.0).reshape(2, 4) ** 1.5)
    else:
        theta, make, w = jnp.asarray([0.4, -1.2, 2.0]), _bern, jnp.asarray([1.0, -2.0, 0.5])
    for key in _keys(20, 5):
        value = st.draw(make(theta), key)[0]
        relaxed = soft.draw(make(theta), key)[0]
        if family == "categorical":  # the hard draw is the argmax of the same perturbed logits
            expected = jax.nn.one_hot(jnp.argmax(relaxed, -1), 4)
        else:
            expected = (relaxed > 0.5).astype(jnp.float32)
        np.testing.assert_array_equal(np.asarray(value), np.asarray(expected))
        g_st = jax.grad(lambda th: jnp.sum(w * st.draw(make(th), key)[0]))(theta)
        g_soft = jax.grad(lambda th: jnp.sum(w * soft.draw(make(th), key)[0]))(theta)
        np.testing.assert_allclose(np.asarray(g_st), np.asarray(g_soft), rtol=1e-5, atol=1e-6)


def test_straight_through_sites_in_a_program():
    """Through the language: the program sees exact draws of the whole site (the codes below
    decode the draw uniquely), distributed as the product of the coordinates' distributions."""
    W = [[0, 1, 2, 3], [0, 4, 8, 12]]
    prog = gradlang.compile(f"const W = {W}\nparam t: real[4] = 0\nmaximize expect(particles = 1) {{\n"
                            "  a: int[2] ~ categorical(logits = t) via straight_through\n  sum(W * a)\n}")
    f = jax.jit(jax.vmap(lambda k: -prog.objective_fn({"t": jnp.asarray(THETA, jnp.float32)}, None, k)))
    codes = np.asarray(f(_keys(20000, 6)))
    np.testing.assert_array_equal(codes, np.round(codes))
    probs = np.exp(THETA) / np.exp(THETA).sum()
    _chi2(np.bincount(codes.astype(int), minlength=16), np.outer(probs, probs).T.ravel())

    prog = gradlang.compile("param t: real[3] = 0\nmaximize expect(particles = 1) {\n"
                            "  b ~ bernoulli(logits = t) via straight_through\n  sum(b * [1, 2, 4])\n}")
    logits = np.array([0.4, -1.2, 2.0])
    f = jax.jit(jax.vmap(lambda k: -prog.objective_fn({"t": jnp.asarray(logits, jnp.float32)}, None, k)))
    codes = np.asarray(f(_keys(20000, 7))).astype(int)
    p = 1 / (1 + np.exp(-logits))
    joint = np.array([np.prod([p[i] if (c >> i) & 1 else 1 - p[i] for i in range(3)]) for c in range(8)])
    _chi2(np.bincount(codes, minlength=8), joint)


def test_the_checker_sees_a_relaxed_categorical_site_as_one_hot_rows():
    """``gradlang check`` evaluates an expect block's value: a relaxed categorical site there is
    real[2, 4] (a row per coordinate), so W * a with W real[2, 4] checks and a real[2] does not."""
    from gradlang.errors import GradlangError

    for via in ("gumbel(0.5)", "straight_through"):
        src = ("const W = [[0, 1, 2, 3], [0, 4, 8, 12]]\nparam t: real[4] = 0\nmaximize expect(particles = 1) {\n"
               f"  a: int[2] ~ categorical(logits = t) via {via}\n  sum(W * a)\n}}")
        gradlang.compile(src)
        with pytest.raises(GradlangError) as info:
            gradlang.compile(src.replace("sum(W * a)", "sum([1, 2] * a)"))
        assert "cannot multiply int[2] and real[2, 4]" in info.value.message
