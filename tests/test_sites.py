"""The hot loop's replacements for NumPyro defaults: per-site keys, pooled Gaussian noise and site
log densities."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as nd
from numpyro import handlers

from gradlang.backend.noise import NoisePool, gaussian_path
from gradlang.backend.sites import SiteKeys, log_density, site_log_prob, split_keys


def test_fast_bernoulli_logits_matches_numpyro_under_the_site_wrappers():
    rng = np.random.default_rng(0)
    logits = jnp.asarray(rng.normal(scale=8.0, size=(50,)), jnp.float32)
    y = jnp.asarray(rng.random(50) < 0.5, jnp.float32)
    for d, value in [(nd.BernoulliLogits(logits).to_event(1), y),
                     (nd.BernoulliLogits(jnp.float32(1.3)).expand([50]).to_event(1), y),
                     (nd.BernoulliLogits(logits), y)]:
        np.testing.assert_allclose(site_log_prob(d, value), jnp.sum(d.log_prob(value)), rtol=1e-5)
    # the gradient in the logits matches too (y - sigmoid(z))
    grad = jax.grad(lambda z: site_log_prob(nd.BernoulliLogits(z).to_event(1), y))(logits)
    np.testing.assert_allclose(grad, y - jax.nn.sigmoid(logits), rtol=1e-5, atol=1e-6)


def test_fast_bernoulli_logits_derivatives_are_the_closed_forms():
    """Its hand-written JVP: d/dz = y - sigmoid(z), d/dy = z, d2/dz2 = -sigmoid(z)(1 - sigmoid(z))
    (the Laplace start differentiates it twice), integer observations, logits far in the tails."""
    from gradlang.backend.sites import bernoulli_logits_log_prob as log_prob

    z = jnp.array([-60.0, -8.0, -0.5, 0.0, 1e-3, 2.0, 30.0], jnp.float32)
    y = jnp.array([0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0], jnp.float32)
    s = 1 / (1 + np.exp(-np.asarray(z, np.float64)))
    np.testing.assert_allclose(log_prob(z, y), nd.BernoulliLogits(z).log_prob(y), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(jax.grad(lambda z: jnp.sum(log_prob(z, y)))(z), y - s, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(jax.grad(lambda y: jnp.sum(log_prob(z, y)))(y), z, rtol=1e-6)
    hessian = jax.hessian(lambda z: jnp.sum(log_prob(z, y)))(z)
    np.testing.assert_allclose(np.diag(hessian), -s * (1 - s), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(jax.grad(lambda z: jnp.sum(log_prob(z, y.astype(jnp.int32))))(z), y - s,
                               rtol=1e-6, atol=1e-7)


def test_log_density_of_a_trace_matches_numpyro():
    def model():
        z = numpyro.sample("z", nd.Normal(0.0, 2.0))
        with handlers.scale(scale=3.0):
            numpyro.sample("y", nd.BernoulliLogits(z + jnp.arange(4.0)).to_event(1), obs=jnp.array([1.0, 0, 1, 1]))
        numpyro.factor("extra", -0.5 * z**2)

    values = {"z": jnp.float32(0.7)}
    trace = handlers.trace(handlers.substitute(model, data=values)).get_trace()
    expected, _ = numpyro.infer.util.log_density(model, (), {}, values)
    np.testing.assert_allclose(log_density(trace), expected, rtol=1e-6)


def test_site_keys_are_distinct_and_reproducible():
    def guide():
        return [numpyro.sample(name, nd.Normal(0.0, 1.0)) for name in "abcde"]

    key = jax.random.PRNGKey(3)
    draws = handlers.trace(SiteKeys(guide, split_keys(key, 3))).get_trace()  # two more sites than keys: fold_in
    values = [float(draws[n]["value"]) for n in "abcde"]
    again = handlers.trace(SiteKeys(guide, split_keys(key, 3))).get_trace()
    assert values == [float(again[n]["value"]) for n in "abcde"]
    assert len(set(values)) == 5
    keys = jax.random.split(key, 3)
    assert values[0] == float(jax.random.normal(keys[0]))  # site i draws with the i-th key of one split


def test_skipped_sites_take_no_key():
    def guide():
        return [numpyro.sample(name, nd.Normal(0.0, 1.0)) for name in "abc"]

    keys = split_keys(jax.random.PRNGKey(4), 2)
    # an outer seed handler keys what SiteKeys left alone
    trace = handlers.trace(handlers.seed(SiteKeys(guide, keys, frozenset({"a"})), rng_seed=9)).get_trace()
    assert float(trace["a"]["value"]) not in (float(jax.random.normal(k)) for k in keys)
    assert float(trace["b"]["value"]) == float(jax.random.normal(keys[0]))
    assert float(trace["c"]["value"]) == float(jax.random.normal(keys[1]))


SITES = {  # the ways a reparameterised Gaussian site reaches a guide, by name
    "scalar": nd.Normal(0.3, 2.0),
    "vector": nd.Normal(jnp.arange(3.0), jnp.array([0.5, 1.0, 2.0])).to_event(1),
    "expanded": nd.Normal(1.0, 0.5).expand([2, 2]).to_event(2),
    "positive": nd.TransformedDistribution(nd.Normal(jnp.zeros(2), 0.7).to_event(1),
                                           nd.transforms.ExpTransform()),
    "simplex": nd.TransformedDistribution(nd.Normal(jnp.zeros(2), 1.0).to_event(1),
                                          nd.transforms.StickBreakingTransform()),
}


def test_noise_pool_draws_each_site_as_numpyro_would_from_its_slice():
    shapes = {n: tuple(jnp.shape(gaussian_path(d)[0])) for n, d in SITES.items()}
    assert shapes == {"scalar": (), "vector": (3,), "expanded": (2, 2), "positive": (2,), "simplex": (2,)}
    pool = NoisePool(jax.random.PRNGKey(0), shapes)
    assert pool.eps.shape == (1 + 3 + 4 + 2 + 2,)
    eps = np.asarray(pool.eps)
    # what NumPyro's rsample computes from that noise: loc + scale * eps, then the transforms
    np.testing.assert_allclose(pool.draw("scalar", SITES["scalar"]), 0.3 + 2.0 * eps[0], rtol=1e-6)
    np.testing.assert_allclose(pool.draw("vector", SITES["vector"]), np.arange(3.0) + [0.5, 1, 2] * eps[1:4], rtol=1e-6)
    np.testing.assert_allclose(pool.draw("expanded", SITES["expanded"]), 1.0 + 0.5 * eps[4:8].reshape(2, 2), rtol=1e-6)
    np.testing.assert_allclose(pool.draw("positive", SITES["positive"]), np.exp(0.7 * eps[8:10]), rtol=1e-6)
    simplex = pool.draw("simplex", SITES["simplex"])
    np.testing.assert_allclose(simplex, nd.transforms.StickBreakingTransform()(jnp.asarray(eps[10:12])), rtol=1e-6)
    assert gaussian_path(nd.Gamma(2.0, 1.0)) is None and gaussian_path(nd.StudentT(3.0)) is None


def test_noise_pool_draws_have_the_law_of_the_site():
    """Moments of many pooled draws against the site's distribution (5 standard errors)."""
    n = 20000
    shapes = {"vector": (3,), "positive": (2,)}
    draws = jax.vmap(lambda k: NoisePool(k, shapes).draw("vector", SITES["vector"]))(
        jax.random.split(jax.random.PRNGKey(1), n))
    mean, sd = np.asarray(SITES["vector"].mean), np.asarray(jnp.sqrt(SITES["vector"].variance))
    assert np.all(np.abs(np.asarray(draws).mean(0) - mean) < 5 * sd / np.sqrt(n))
    assert np.all(np.abs(np.asarray(draws).std(0) / sd - 1) < 5 / np.sqrt(2 * n))


def test_a_mean_field_step_draws_one_noise_vector_for_all_its_sites():
    """Three latents, one draw: the loss's jaxpr has one inverse-erf (the normal draw), where
    site-by-site sampling has more (two: JAX shares the jaxpr of the same-shaped scalar draws).
    That the ELBO and its fits are unchanged is checked by tests/test_vi.py."""
    import gradlang

    prog = gradlang.compile("""
data y: real[J]
model {
  mu ~ normal(0, 5)
  tau: positive ~ half_normal(5)
  theta: real[J] ~ normal(mu, tau)
  y ~ normal(theta, 1)
}
guide = mean_field
maximize elbo(particles = 1)
solve { steps = 1 }
""")
    model, arrays = prog.bind({"y": np.arange(4.0, dtype=np.float32)})
    u = model.init(jax.random.PRNGKey(0), arrays)
    jaxpr = jax.make_jaxpr(lambda u: model.loss(u, arrays, jax.random.PRNGKey(1)))(u)
    assert str(jaxpr).count("erf_inv") == 1
