"""The Pareto k̂ verdict (backend/psis.py; Yao et al. 2018, Zhang & Stephens 2009).

ArviZ is not in the venv, so the GPD fit is checked against draws of scipy.stats.genpareto of
known shape, and the tail fit against scipy's maximum-likelihood GPD fit of the same exceedances;
then on programs: a mean-field guide on a conjugate normal model (the family holds the exact
posterior) against a guide whose scale is fixed far too narrow."""

import json

import numpy as np
import pytest
from scipy import stats

import gradlang
from gradlang.backend.psis import gpd_fit, pareto_khat

Y = np.array([0.8, 1.3, 0.2, 1.9, 1.1, 0.4, 1.6, 0.9], np.float32)
MODEL = "data y: real[N]\nmodel {\n  mu ~ normal(0, 1)\n  y ~ normal(mu, 1)\n}\n"
SOLVE = "maximize elbo(particles = 4)\nsolve { optimizer = adam(lr = 0.05); steps = 300 }\n"


@pytest.mark.parametrize("k", [0.3, 0.8])
def test_gpd_fit_recovers_the_shape_of_genpareto_draws(k):
    x = np.sort(stats.genpareto.rvs(k, scale=2.0, size=5000, random_state=np.random.default_rng(7)))
    khat, sigma = gpd_fit(x)
    assert abs(khat - k) < 0.05, khat
    assert abs(sigma / 2.0 - 1) < 0.1, sigma


def test_tail_fit_agrees_with_scipy_maximum_likelihood():
    # heavy-tailed weights: log w = log of lognormal-ish draws with a Pareto(1/0.6) tail
    rng = np.random.default_rng(3)
    lw = np.log(stats.genpareto.rvs(0.6, size=4000, random_state=rng) + 1e-3)
    khat = pareto_khat(lw)
    s = np.sort(lw - lw.max())
    m = int(np.ceil(min(0.2 * len(s), 3 * np.sqrt(len(s)))))
    tail = np.exp(s[-m:]) - np.exp(s[-m - 1])
    k_mle = stats.genpareto.fit(tail, floc=0)[0]
    assert abs(khat - k_mle) < 0.1, (khat, k_mle)
    assert 0.35 < khat < 0.85, khat


def test_khat_separates_a_good_guide_from_a_too_narrow_one(tmp_path):
    good = gradlang.compile(MODEL + "guide = mean_field\n" + SOLVE).fit({"y": Y})
    bad = gradlang.compile(MODEL + "param m: real = 0\nguide {\n  mu ~ normal(m, 0.05)\n}\n" + SOLVE).fit({"y": Y})
    assert good._diagnostics is None  # not computed by the fit
    assert good.diagnostics["khat"] < 0.5 and good.diagnostics["verdict"].startswith("usable")
    assert bad.diagnostics["khat"] > 0.7 and bad.diagnostics["verdict"].startswith("not to be trusted")
    assert "full_rank" in bad.diagnostics["verdict"] and "stl" in bad.diagnostics["verdict"]
    out = json.loads(json.dumps(bad.to_json()))
    assert out["khat"] == pytest.approx(bad.diagnostics["khat"]) and out["verdict"] == bad.diagnostics["verdict"]


def test_no_verdict_without_a_guide():
    r = gradlang.compile("param x: real = 1\nminimize (x - 2)^2\nsolve { steps = 3 }").fit()
    assert r.diagnostics == {} and "khat" not in r.to_json()
