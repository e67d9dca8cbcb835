"""The passes that decide: a small program in, the decision visible in the IR out, the same value
before and after, and every misfit a located error at check time.

References: the log evidence of a conjugate normal model (closed form) for the lowered elbo, iwae
and renyi; enumeration for the score-function sites; separately compiled objectives for the
aggregate.  Statistical checks allow 5 standard errors (false-failure rate about 6e-7 a check)."""

import subprocess
import sys
from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import gradlang
from gradlang.check import check
from gradlang.emit import emit
from gradlang.errors import GradlangError
from gradlang.ir import nodes as ir
from gradlang.ir.visit import walk
from gradlang.passes import PIPELINE, run_passes
from gradlang.source import Source
from gradlang.syntax.parser import parse

Y = [0.3, -1.2, 2.1, 0.8, 1.5]
DATA = {"y": np.array(Y, np.float32)}

CONJUGATE = """
data y: real[N]
param m: real = {m}
param s: positive = {s}
model {{
  mu ~ normal(0, 1)
  y ~ normal(mu, 1)
}}
guide {{
  mu ~ normal(m, s)
}}
maximize {objective}
"""


def _ir(text: str, until: str | None = None) -> ir.Program:
    source = Source(text)
    return run_passes(check(parse(source), source), until)


def _exact_posterior():
    n = len(Y)
    return sum(Y) / (n + 1), 1 / np.sqrt(n + 1)


def _log_evidence() -> float:
    n = len(Y)
    return float(stats.multivariate_normal(np.zeros(n), np.eye(n) + np.ones((n, n))).logpdf(Y))


def _sites(program: ir.Program) -> dict[str, ir.Sample]:
    stmts = list(program.guide.stmts) if program.guide is not None else []
    stmts += [st for o in program.objectives for n in walk(o.value) if isinstance(n, ir.Expect) for st in n.stmts]
    return {st.name: st for st in stmts if isinstance(st, ir.Sample)}


# ---- lower_vi_objectives -----------------------------------------------------------------------
@pytest.mark.parametrize("objective, reduce, alpha", [("elbo(4)", "mean", 0.0), ("iwae(6)", "renyi", 0.0),
                                                      ("renyi(0.5, 3)", "renyi", 0.5)])
def test_vi_objectives_become_expect_blocks_that_give_the_log_evidence_at_the_exact_posterior(objective, reduce, alpha):
    # with q the exact posterior every log weight is log p(y), so each bound equals it exactly
    m, s = _exact_posterior()
    text = CONJUGATE.format(m=m, s=s, objective=objective)
    before, after = _ir(text, "prune_unused"), _ir(text, "lower_vi_objectives")
    assert isinstance(before.objectives[0].value, ir.VIObjective)
    node = after.objectives[0].value
    assert isinstance(node, ir.Expect) and (node.reduce, node.alpha) == (reduce, alpha)
    assert isinstance(node.stmts[0], ir.DrawGuide)
    assert not any(isinstance(n, ir.VIObjective) for n in walk(node))
    value = gradlang.compile(text).objective_fn({"m": m, "s": s}, DATA, jax.random.PRNGKey(3))
    assert -float(value) == pytest.approx(_log_evidence(), abs=1e-4)


def test_elbo_is_the_expect_block_written_out():
    # the same draws: elbo(4) and its expect form written by hand give the same value and gradient
    m, s = 0.4, 0.7
    by_word = gradlang.compile(CONJUGATE.format(m=m, s=s, objective="elbo(4)"))
    by_hand = gradlang.compile(CONJUGATE.format(
        m=m, s=s, objective="expect(4) {\n  z ~ guide\n  logp(model, z) - logq(guide, z)\n}"))
    params, key = {"m": jnp.float32(m), "s": jnp.float32(s)}, jax.random.PRNGKey(7)
    a = jax.value_and_grad(by_word.objective_fn)(params, DATA, key)
    b = jax.value_and_grad(by_hand.objective_fn)(params, DATA, key)
    assert float(a[0]) == float(b[0])
    assert all(float(a[1][k]) == float(b[1][k]) for k in params)


def test_iwae_increases_in_particles_toward_the_log_evidence():
    text = CONJUGATE.format(m=0.0, s=1.0, objective="iwae({k})")
    keys = jax.random.split(jax.random.PRNGKey(0), 4000)
    means = []
    for k in (1, 4, 32):
        f = gradlang.compile(text.replace("{k}", str(k))).objective_fn
        values = -np.asarray(jax.jit(jax.vmap(lambda key, f=f: f({"m": 0.0, "s": 1.0}, DATA, key)))(keys))
        means.append((values.mean(), values.std() / np.sqrt(len(values))))
    (a, sa), (b, sb), (c, sc) = means
    assert a + 5 * sa < b and b + 5 * sb < c < _log_evidence() + 5 * sc, (means, _log_evidence())


# ---- choose_estimators ---------------------------------------------------------------------------
DISCRETE = """
const reward = [0.2, 1.0, 0.4, -0.3]
param theta: real[4] = [0.3, -0.2, 0.5, 0.0]
param phi: real = 0.4
param m: real = 0.5
maximize expect(particles = {k}) {{
  a ~ categorical(logits = theta){via_a}
  b ~ bernoulli(logits = phi){via_b}
  z ~ normal(m, 1)
  reward[a] * (b + 1) + z
}}
"""


def _discrete(k=4, via_a="", via_b=""):
    return DISCRETE.format(k=k, via_a=f" via {via_a}" if via_a else "", via_b=f" via {via_b}" if via_b else "")


def test_defaults_are_written_in_and_marked_chosen():
    sites = _sites(_ir(_discrete(4)))
    assert str_via(sites["a"]) == "score(baseline=rloo)" and sites["a"].chosen
    assert str_via(sites["z"]) == "reparam" and sites["z"].chosen
    assert str_via(_sites(_ir(_discrete(1)))["a"]) == "score(baseline=ema)"
    # after an enum site the rest runs once per value: no baseline to pool
    assert str_via(_sites(_ir(_discrete(4, via_a="enum")))["b"]) == "score(baseline=none)"
    # a plain score site does not rerun the rest: the next site keeps its own default (issue 9, item 1)
    assert str_via(_sites(_ir(_discrete(4, via_a="score(baseline = none)")))["b"]) == "score(baseline=rloo)"
    written = _sites(_ir(_discrete(4, via_a="score(baseline = none)")))["a"]
    assert str_via(written) == "score(baseline=none)" and not written.chosen


def str_via(site):
    from gradlang.ir.printer import config

    return config(site.via)


def test_a_chosen_default_equals_the_same_estimator_written():
    chosen = _ir(_discrete(4))
    written = _ir(_discrete(4, via_a="score(baseline = rloo)", via_b="score(baseline = rloo)")
                  .replace("normal(m, 1)", "normal(m, 1) via reparam"))
    for name, site in _sites(chosen).items():
        assert site.via == _sites(written)[name].via
    params = {"theta": jnp.array([0.3, -0.2, 0.5, 0.0]), "phi": jnp.float32(0.4), "m": jnp.float32(0.5)}
    key = jax.random.PRNGKey(5)
    a = jax.grad(gradlang.compile(_discrete(4)).objective_fn)(params, None, key)
    b = jax.grad(gradlang.compile(_discrete(4, via_a="score(baseline = rloo)", via_b="score(baseline = rloo)"))
                 .objective_fn)(params, None, key)
    assert all(np.array_equal(a[k], b[k]) for k in params)


def _exact_gradient():
    """d/d(theta, phi, m) of E[reward[a] (b + 1) + z], by enumeration."""
    reward, theta, phi = np.array([0.2, 1.0, 0.4, -0.3]), np.array([0.3, -0.2, 0.5, 0.0]), 0.4
    p = np.exp(theta) / np.exp(theta).sum()
    q = 1 / (1 + np.exp(-phi))
    d_theta = (np.diag(p) - np.outer(p, p)) @ reward * (q + 1)
    d_phi = p @ reward * q * (1 - q)
    return d_theta, d_phi, 1.0


@pytest.mark.parametrize("via_a, via_b", [("score(baseline = none)", "score(baseline = rloo)"), ("", ""),
                                          ("enum", ""), ("score(baseline = rloo)", "score(baseline = none)")])
def test_two_independent_score_sites_each_use_their_own_baseline_unbiasedly(via_a, via_b):
    prog = gradlang.compile(_discrete(4, via_a, via_b))
    params = {"theta": jnp.array([0.3, -0.2, 0.5, 0.0]), "phi": jnp.float32(0.4), "m": jnp.float32(0.5)}
    grad = jax.jit(jax.vmap(jax.grad(lambda p, k: -prog.objective_fn(p, None, k)), in_axes=(None, 0)))
    g = grad(params, jax.random.split(jax.random.PRNGKey(0), 20000))
    for name, exact in zip(("theta", "phi", "m"), _exact_gradient()):
        samples = np.asarray(g[name], np.float64)
        se = samples.std(0) / np.sqrt(len(samples)) + 1e-6
        assert np.all(np.abs(samples.mean(0) - exact) < 5 * se), (name, samples.mean(0), exact)


def test_whole_guide_family_is_drawn_by_reparameterisation():
    text = CONJUGATE.format(m=0, s=1, objective="elbo(1)").replace("guide {\n  mu ~ normal(m, s)\n}", "guide = mean_field")
    program = _ir(text)
    assert program.guide.via.value == "reparam"
    assert "guide = mean_field via reparam  # chosen" in emit_text(text, "ir:choose_estimators")
    assert "via" not in emit_text(text, "ir:check")


def emit_text(text: str, stage: str, tmp=[]) -> str:  # noqa: B006 - a scratch file per test session
    import tempfile
    from pathlib import Path

    path = Path(tempfile.mkdtemp()) / "p.grad"
    path.write_text(text)
    return emit(str(path), stage)


def test_emit_shows_the_chosen_estimator_only_after_the_pass():
    text = CONJUGATE.format(m=0, s=1, objective="elbo(1)")
    assert "mu ~ dist.normal(param:m, param:s) via reparam  # chosen" in emit_text(text, "ir:choose_estimators")
    assert "via reparam" not in emit_text(text, "ir:check")
    assert "via reparam" not in emit_text(text, "ir:lower_vi_objectives")


MISFITS = [
    ("param p: real = 0\nmaximize expect(4) {\n  k ~ bernoulli(logits = p) via reparam\n  k\n}",
     "site 'k': reparam needs a reparameterisable distribution", (3, 33)),
    ("param m: real = 0\nmaximize expect(4) {\n  z ~ normal(m, 1) via enum\n  z\n}",
     "site 'z': enum needs a finite support", (3, 24)),
    (("param p: real = 0\nparam q: real = 0\nmaximize expect(4) {\n  a ~ bernoulli(logits = p) via enum\n"
      "  b ~ bernoulli(logits = q) via score(baseline = rloo)\n  a + b\n}"),
     "site 'b': score(baseline = rloo) after an enum or mvd site", (5, 33)),
    (CONJUGATE.format(m=0, s=1, objective="elbo(2)").replace("mu ~ normal(m, s)", "mu ~ normal(m, s) via mvd"),
     "site 'mu': mvd reruns the objective", (10, 25)),
    ("param m: real = 0\nmaximize expect(4) {\n  z ~ normal(m, 1) via score(baseline = best)\n  z\n}",
     "wrong settings for score: unknown baseline 'best'", (3, 24)),
]


@pytest.mark.parametrize("text, message, where", MISFITS, ids=["reparam-discrete", "enum-infinite",
                                                               "rloo-after-enum", "mvd-in-guide", "bad-baseline"])
def test_gradlang_check_reports_an_estimator_misfit_with_its_location(tmp_path, text, message, where):
    path = tmp_path / "misfit.grad"
    path.write_text(text)
    out = subprocess.run([sys.executable, "-m", "gradlang.cli", "check", str(path)], capture_output=True, text=True, check=False)
    assert out.returncode == 1, out.stderr
    assert f"{path}:{where[0]}:{where[1]}: error: {message}" in out.stderr, out.stderr
    assert "^" in out.stderr and "Traceback" not in out.stderr


def test_iwae_over_an_enumerated_guide_is_a_check_time_error():
    text = """
param p: real = 0
data y: real[N]
model {
  k ~ bernoulli(0.3)
  y ~ normal(k, 1)
}
guide {
  k ~ bernoulli(logits = p) via enum
}
maximize iwae(4)
"""
    with pytest.raises(GradlangError, match="iwae weighs sampled draws of the guide"):
        _ir(text)
    _ir(text.replace("iwae(4)", "elbo(4)"))  # elbo sums the enumerated site: fine


# ---- objectives_to_aggregate -------------------------------------------------------------------
SEVERAL = """
data x: real[N]
param w: real = 0.3
{sense} {{ fit: mean((x - w)^2), size: w^2 + 1 }}
solve {{ aggregator = {agg} }}
"""


@pytest.mark.parametrize("sense", ["minimize", "maximize"])
@pytest.mark.parametrize("agg", ["mean", "sum"])
def test_several_objectives_become_one_vector_objective(sense, agg):
    text = SEVERAL.format(sense=sense, agg=agg)
    assert _ir(text, "choose_estimators").aggregate is None
    plan = _ir(text).aggregate
    sign = 1.0 if sense == "minimize" else -1.0
    assert plan.names == ("fit", "size") and plan.signs == (sign, sign) and plan.aggregator.value == agg
    w = 0.3
    parts = [np.mean((np.array([0.5, -1.0, 2.0]) - w) ** 2), w**2 + 1]
    expected = sign * (np.mean(parts) if agg == "mean" else np.sum(parts))
    assert float(gradlang.compile(text).objective_fn({"w": w}, {"x": np.array([0.5, -1.0, 2.0], np.float32)})) == pytest.approx(expected, rel=1e-6)
    assert f"vector objective [{'+' if sign > 0 else '-'}fit, {'+' if sign > 0 else '-'}size] aggregator {agg}" \
        in emit_text(text, "ir:objectives_to_aggregate")


def test_the_default_aggregator_is_upgrad():
    plan = _ir(SEVERAL.format(sense="minimize", agg="mean").replace("solve { aggregator = mean }", "")).aggregate
    assert plan.aggregator.value == "upgrad" and plan.aggregator.span is not None


# ---- choose_optimizer --------------------------------------------------------------------------
def test_the_optimizer_becomes_a_spec_with_schedules_bound_to_the_step_count():
    text = "param w: real = 1\nminimize w^2\nsolve { optimizer = adamw(lr = cosine(0.1), weight_decay = 0.01); steps = 300 }"
    assert _ir(text, "objectives_to_aggregate").optimizer is None
    spec = _ir(text).optimizer
    assert spec.uses_steps
    lr = spec.config.kwargs[0][1]
    assert lr.value == "cosine" and dict(lr.kwargs)["steps"] == ir.ConfigValue("steps", 300)
    assert "optimizer adamw(lr=cosine(0.1, steps=<solve steps: 300>), weight_decay=0.01)" in emit_text(text, "ir")
    # the plan's optimizer runs as Optax's own: one step of adamw with the cosine schedule at t = 0
    result = gradlang.compile(text).fit(steps=1)
    import optax

    opt = optax.adamw(optax.cosine_decay_schedule(0.1, 1), weight_decay=0.01)
    p = jnp.float32(1.0)
    updates, _ = opt.update(2 * p, opt.init(p), p)
    assert float(result.params["w"]) == pytest.approx(float(p + updates), abs=1e-7)


@pytest.mark.parametrize("optimizer, message, col", [
    ("adam(lr = 0.01, beta = 0.9)", "adam() has no argument 'beta'", 37),
    ("adam(lr = fast)", "fast is not a number, an optimizer or a schedule", 31),
    ("adamm(lr = 0.01)", "unknown optimizer 'adamm'", 21),
])
def test_gradlang_check_reports_a_wrong_optimizer_argument_with_its_location(tmp_path, optimizer, message, col):
    path = tmp_path / "opt.grad"
    path.write_text(f"param w: real = 1\nminimize w^2\nsolve {{ optimizer = {optimizer} }}\n")
    out = subprocess.run([sys.executable, "-m", "gradlang.cli", "check", str(path)], capture_output=True, text=True, check=False)
    assert out.returncode == 1, out.stderr
    assert f"{path}:3:{col}: error: {message}" in out.stderr, out.stderr


def test_every_decision_pass_is_in_the_pipeline_and_listed():
    from gradlang.listing import listing

    names = [p.__name__ for p in PIPELINE]
    order = ["lower_vi_objectives", "choose_estimators", "split_prox", "constraints_to_method",
             "objectives_to_aggregate", "bilevel_to_hypergrad", "choose_vi_defaults",
             "choose_optimizer"]  # DESIGN.md's, and the VI defaults before the optimizer they choose
    assert names[3:] == [n for n in order if n in names] and "bilevel_to_hypergrad" in names
    listed = {n: summary for n, summary, _ in listing("passes")}
    assert set(listed) == set(names) and all(listed[n] for n in names)


def test_diagnose_rewrites_the_plan_and_rechooses_later_defaults():
    from gradlang.diagnose import with_estimator

    program = _ir(_discrete(4))
    other = with_estimator(program, "a", ir.ConfigValue("word", "enum"))
    assert str_via(_sites(other)["a"]) == "enum" and str_via(_sites(other)["b"]) == "score(baseline=none)"
    assert replace(_sites(program)["z"], span=None) == replace(_sites(other)["z"], span=None)
