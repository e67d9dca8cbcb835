"""--diagnose: gradient variance under each applicable estimator, and a recommendation."""

import numpy as np

import gradlang
from gradlang.cli import main
from gradlang.diagnose import diagnose, recommend

from .test_enumeration import TWO_LATENTS

POLICY = """const reward = [0.2, 1.0, 0.4]
param theta: real[3] = 0
maximize expect(particles = 8) {
  a ~ categorical(logits = theta) via score(baseline = rloo)
  reward[a]
}
"""


def test_variances_order_and_recommendation():
    prog = gradlang.compile(POLICY)
    model, arrays = prog.bind(None)
    rows = {r["estimator"] or "as written": r["total"] for r in diagnose(model, arrays, draws=400)}
    assert rows["enum"] < 1e-10  # exact
    assert rows["score(rloo)"] < rows["score(none)"]
    np.testing.assert_allclose(rows["as written"], rows["score(rloo)"], rtol=1e-6)
    assert "reparam" not in rows  # does not fit a categorical
    assert recommend(diagnose(model, arrays, draws=100))["a"] in ("enum", "mvd")


def test_cli_diagnose(tmp_path, capsys):
    path = tmp_path / "p.grad"
    path.write_text(POLICY)
    assert main(["run", str(path), "--diagnose"]) == 0
    out = capsys.readouterr().out
    assert "recommendation for a: via" in out and "score(none)" in out


def test_a_discrete_guide_site_is_diagnosed_with_enumeration_among_the_choices():
    # the guide's z defaults to score with an ema baseline (one particle); enum sums over it, so
    # only the draw of mu is left to vary, and enum is the recommendation for z
    prog = gradlang.compile(TWO_LATENTS + """
guide {
  param t: real = 0
  param m: real = 0
  z ~ bernoulli(logits = t)
  mu ~ normal(m, 1)
}
maximize elbo(particles = 1)
""")
    model, arrays = prog.bind({"x": np.array([1.4, 2.3, 0.9], np.float32)})
    rows = diagnose(model, arrays, draws=400)
    by = {(r["site"], r["estimator"]): r["stats"] for r in rows}
    assert ("z", "enum") in by and ("z", "mvd") not in by  # mvd does not fit a guide site
    assert by[("z", "enum")]["t"][0] < 0.2 * by[("z", "score(none)")]["t"][0]
    assert recommend(rows)["z"] == "enum"
