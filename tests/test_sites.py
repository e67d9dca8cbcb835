"""The hot loop's replacements for NumPyro defaults: per-site keys and site log densities."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as nd
from numpyro import handlers

from gradlang.backend.sites import SiteKeys, log_density, site_log_prob


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
    draws = handlers.trace(SiteKeys(guide, key, 3)).get_trace()  # two more sites than keys: fold_in
    values = [float(draws[n]["value"]) for n in "abcde"]
    again = handlers.trace(SiteKeys(guide, key, 3)).get_trace()
    assert values == [float(again[n]["value"]) for n in "abcde"]
    assert len(set(values)) == 5
    keys = jax.random.split(key, 3)
    assert values[0] == float(jax.random.normal(keys[0]))  # site i draws with the i-th key of one split
