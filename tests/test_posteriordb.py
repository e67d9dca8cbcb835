"""The gallery's ports of posteriordb models (examples/*.grad naming a posteriordb posterior): each
model block's log joint density equals the same model written by hand in NumPyro, as its Stan
program states it, at random points of the unconstrained space, Jacobians of the constraining
transforms included (NumPyro's ``potential_energy`` of both).  Tolerance: 1e-4 relative, float32.

The hand-written models follow the Stan programs (posteriordb's ``models/stan/*.stan``): a
constrained parameter with a prior on a wider support (``real<lower=0> sigma; sigma ~ normal(0, 2)``)
is an improper uniform on its constraint plus the prior's log density as a factor, Stan's own
reading (its truncation normaliser is a constant, added here where gradlang's domain narrowing
adds it); a parameter without a prior is flat."""

from __future__ import annotations

import zlib

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as nd
import pytest
from numpyro.distributions import constraints as C
from numpyro.distributions.transforms import biject_to
from numpyro.infer.util import potential_energy

import gradlang

from .conftest import ROOT

EXAMPLES = ROOT / "examples"
LOG_HALF = float(np.log(0.5))


def _flat(name: str, support=C.real, shape=()):
    return numpyro.sample(name, nd.ImproperUniform(support, (), tuple(shape)))


def _data(path: str) -> dict:
    with np.load(EXAMPLES / "data" / path) as f:
        return {k: jnp.asarray(f[k], jnp.float32) for k in f.files}


# ---- the hand-written NumPyro models, one per port ------------------------------------------------
def ark(d):
    y, K = d["y"], 5
    alpha = numpyro.sample("alpha", nd.Normal(0, 10))
    beta = numpyro.sample("beta", nd.Normal(0, 10).expand([K]).to_event(1))
    sigma = _flat("sigma", C.positive)
    numpyro.factor("sigma_prior", nd.Cauchy(0, 2.5).log_prob(sigma) - LOG_HALF)
    T = y.shape[0]
    mu = alpha + sum(beta[k] * y[K - 1 - k: T - 1 - k] for k in range(K))   # mu[t] = alpha + sum_k beta[k] y[t-k]
    numpyro.factor("y", nd.Normal(mu, sigma).log_prob(y[K:]).sum())


def diamonds(d):
    X, Y = d["X"], d["Y"]
    Xc = X[:, 1:] - X[:, 1:].mean(0)
    b = numpyro.sample("b", nd.Normal(0, 1).expand([X.shape[1] - 1]).to_event(1))
    intercept = numpyro.sample("Intercept", nd.StudentT(3, 8, 10))
    sigma = _flat("sigma", C.positive)
    # student_t_lpdf(sigma | 3, 0, 10) - student_t_lccdf(0 | 3, 0, 10)
    numpyro.factor("sigma_prior", nd.StudentT(3, 0, 10).log_prob(sigma) - LOG_HALF)
    numpyro.factor("Y", nd.Normal(intercept + Xc @ b, sigma).log_prob(Y).sum())


def gp_pois_regr(d):
    x, k = d["x"], d["k"]
    rho = numpyro.sample("rho", nd.Gamma(25, 4))
    alpha = _flat("alpha", C.positive)
    numpyro.factor("alpha_prior", nd.Normal(0, 2).log_prob(alpha) - LOG_HALF)
    f_tilde = numpyro.sample("f_tilde", nd.Normal(0, 1).expand([x.shape[0]]).to_event(1))
    cov = alpha**2 * jnp.exp(-0.5 * (x[:, None] - x[None, :]) ** 2 / rho**2) + 1e-6 * jnp.eye(x.shape[0])
    f = jnp.linalg.cholesky(cov) @ f_tilde
    numpyro.factor("k", nd.Poisson(jnp.exp(f)).log_prob(k).sum())


def low_dim_gauss_mix(d):
    y = d["y"]
    mu = _flat("mu", C.ordered_vector, (2,))
    sigma = _flat("sigma", C.positive, (2,))
    theta = numpyro.sample("theta", nd.Beta(5, 5))
    numpyro.factor("priors", nd.Normal(0, 2).log_prob(sigma).sum() - 2 * LOG_HALF + nd.Normal(0, 2).log_prob(mu).sum())
    lp = jnp.logaddexp(jnp.log(theta) + nd.Normal(mu[0], sigma[0]).log_prob(y),
                       jnp.log1p(-theta) + nd.Normal(mu[1], sigma[1]).log_prob(y))   # log_mix
    numpyro.factor("y", lp.sum())


def blr(d):
    X, y = d["X"], d["y"]
    beta = numpyro.sample("beta", nd.Normal(0, 10).expand([X.shape[1]]).to_event(1))
    sigma = _flat("sigma", C.positive)
    numpyro.factor("sigma_prior", nd.Normal(0, 10).log_prob(sigma) - LOG_HALF)
    numpyro.factor("y", nd.Normal(X @ beta, sigma).log_prob(y).sum())


def nes(d):
    beta = _flat("beta", C.real, (9,))
    sigma = _flat("sigma", C.positive)
    age = d["age_discrete"]
    mu = (beta[0] + beta[1] * d["real_ideo"] + beta[2] * d["race_adj"] + beta[3] * (age == 2)
          + beta[4] * (age == 3) + beta[5] * (age == 4) + beta[6] * d["educ1"] + beta[7] * d["gender"]
          + beta[8] * d["income"])
    numpyro.factor("partyid7", nd.Normal(mu, sigma).log_prob(d["partyid7"]).sum())


def logearn_height_male(d):
    beta = _flat("beta", C.real, (3,))
    sigma = _flat("sigma", C.positive)
    mu = beta[0] + beta[1] * d["height"] + beta[2] * d["male"]
    numpyro.factor("log_earn", nd.Normal(mu, sigma).log_prob(jnp.log(d["earn"])).sum())


PORTS = {  # example -> (posteriordb posterior it ports, data file, hand-written model)
    "arK": ("arK-arK", "arK.npz", ark),
    "diamonds": ("diamonds-diamonds", "diamonds.npz", diamonds),
    "gp_pois_regr": ("gp_pois_regr-gp_pois_regr", "gp_pois_regr.npz", gp_pois_regr),
    "low_dim_gauss_mix": ("low_dim_gauss_mix-low_dim_gauss_mix", "low_dim_gauss_mix.npz", low_dim_gauss_mix),
    "blr": ("sblrc-blr", "sblrc.npz", blr),
    "nes1972": ("nes1972-nes", "nes1972.npz", nes),
    "logearn_height_male": ("earnings-logearn_height_male", "earnings.npz", logearn_height_male),
}


def test_the_gallery_has_at_least_six_ports_each_naming_its_posteriordb_model():
    assert len(PORTS) >= 6
    for name, (posterior, data, _) in PORTS.items():
        text = (EXAMPLES / f"{name}.grad").read_text()
        model = posterior.split("-", 1)[1]
        assert text.startswith(f"# posteriordb {model} (posterior {posterior})"), name
        assert "guide" in text and "solve {" in text, name
        assert (EXAMPLES / "data" / data).exists(), data


@pytest.mark.parametrize("name", sorted(PORTS))
def test_log_joint_equals_the_model_written_by_hand_in_numpyro(name: str):
    _, data_file, hand = PORTS[name]
    prog = gradlang.compile(EXAMPLES / f"{name}.grad")
    model, arrays = prog.bind()
    arrays = {k: jnp.asarray(v) for k, v in arrays.items()}
    data = _data(data_file)
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    for _ in range(3):  # random points of the unconstrained space, around the prior's scale
        point = {}
        for site, (support, shape) in model.ppl.latents.items():
            point[site] = jnp.asarray(rng.normal(0, 0.7, biject_to(support).inverse_shape(shape)), jnp.float32)
        ours = float(potential_energy(model.ppl.model_fn, (arrays, {}), {}, point))
        theirs = float(potential_energy(hand, (data,), {}, point))
        assert np.isfinite(ours) and ours == pytest.approx(theirs, rel=1e-4), (name, point)
