"""Variational inference that converges by default, and its loose ends (issue 14).

- choose_vi_defaults writes its choice into the IR, and chooses nothing when a setting is written;
- six posteriordb ports, unstandardised regressions among them (kidiq: a child's score on the
  mother's IQ; logearn_height_male: log earnings on height in inches), with their solve settings
  removed, land on seeds 0, 1, 2 within 0.3 reference sd of every posterior mean and 30% of every
  sd of the stored NUTS reference (tests/fixtures/posteriordb_nuts.json, 4 x 5000 draws), measured
  on 4000 guide draws (Monte-Carlo error of a mean: 1/63 sd, of an sd: about 1.1%); and stop early
  (the ELBO rule);
- the Pareto k̂ separates kidiq's fit (< 0.7) from the same model stopped after 50 steps (> 0.7);
- ``Result.psis_posterior`` corrects a mis-fitted guide's moments towards the exact posterior;
- ``via dreg`` under ``renyi(alpha != 0)`` is a located error at check time (choose_estimators);
- in the Laplace frame a step hands the guide its scale directly: the loss and gradient of the round trip
  through the family's transform;
- the defaults reject particles with a non-finite log joint or gradient (reject=nonfinite): the
  estimate, its gradient and the count equal the plain estimator's per-particle values filtered by
  hand, the count matches the known fraction of NaN draws, a step with none accepted has a NaN
  gradient and the last estimate, and with every draw finite (score-function and reparameterised
  sites, elbo and iwae) the rejecting estimator is the written one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import gradlang
from gradlang.backend.posterior import sample_guide, summarize
from gradlang.backend.solvers.elbo_settled import ElboSettled
from gradlang.emit import emit
from gradlang.errors import GradlangError

from .posteriordb_models import EXAMPLES, reference_posteriors


def _without_solve(name: str, tmp_path) -> str:
    """The port examples/NAME.grad with its solve block removed, written next to a link to the
    gallery's data (its loads are relative to the file)."""
    text = "\n".join(ln for ln in (EXAMPLES / f"{name}.grad").read_text().splitlines()
                     if not ln.startswith("solve"))
    (tmp_path / "data").symlink_to(EXAMPLES / "data")
    path = tmp_path / f"{name}.grad"
    path.write_text(text + "\n")
    return str(path)


def test_the_choice_is_in_the_ir_and_absent_when_a_setting_is_written(tmp_path):
    path = _without_solve("kidiq", tmp_path)
    ir_text = emit(path, "ir:choose_vi_defaults")
    assert ("vi defaults: start=laplace average=100 stop=elbo_settled(every=100, z=2) reject=nonfinite compile=fast"
            "  # chosen") in ir_text
    assert "solve: optimizer=adam(lr=0.02) steps=10000" in ir_text
    before = emit(path, "ir:bilevel_to_hypergrad")  # the pass before it: nothing chosen yet
    assert "vi defaults" not in before and "steps=1000 " in before
    text = Path(path).read_text()
    for written in ["solve { steps = 300 }", "solve { optimizer = sgd(lr = 0.001) }"]:
        other = tmp_path / "written.grad"
        other.write_text(text + written + "\n")
        ir_text = emit(str(other), "ir")
        assert "vi defaults" not in ir_text
        assert ("steps=300" in ir_text and "adam(lr=0.01)" in ir_text) if "steps" in written else \
            ("sgd(lr=0.001)" in ir_text and "steps=1000 " in ir_text)


def test_the_elbo_rule_stops_when_the_window_means_differ_by_less_than_their_noise():
    rule = ElboSettled(every=4, z=2.0)

    def run(losses):
        carry, stops = rule.init(), []
        for t, loss in enumerate(losses):
            carry, settled = rule.update(carry, np.float32(loss), t)
            stops.append(bool(settled))
        return stops

    # windows of 4 values +-1 about their mean: se^2 = 1/4 each, so the bound is 2 sqrt(1/2) = 1.41,
    # plus tol = 1e-5 of 1e4: 1.51
    assert run([1e4 - 1, 1e4 + 1] * 2 + [1e4 + 0.4, 1e4 + 2.4] * 2) == [False] * 7 + [True]   # means 1.4 apart
    assert not any(run([1e4 - 1, 1e4 + 1] * 2 + [1e4 + 0.6, 1e4 + 2.6] * 2))                 # 1.6 apart
    # falling by 5 a window with little noise: never settled; no noise at all: settled by tol
    assert not any(run([100, 100.1] * 2 + [95, 95.1] * 2 + [90, 90.1] * 2))
    assert run([3.0] * 8) == [False] * 7 + [True]


@pytest.fixture(scope="module")
def default_fits(tmp_path_factory):
    """kidiq (seed 0) fitted with the chosen settings."""
    prog = gradlang.compile(_without_solve("kidiq", tmp_path_factory.mktemp("kidiq")))
    return {"kidiq": (prog, prog.fit(seed=0))}


# the six ports whose defaults meet the bar on seeds 0, 1, 2 (benchmarks/vi_posteriordb.py
# shows the other four, which miss it, three of them flagged by k̂ > 0.7)
WITHIN_THE_BAR = ["blr", "kidiq", "kidiq_momhsiq", "logearn_height_male", "logmesquite", "nes1972"]


@pytest.mark.parametrize("name", WITHIN_THE_BAR)
def test_default_settings_match_the_nuts_reference(name, tmp_path):
    """Seeds 0, 1, 2 of one compiled program (the later seeds reuse its loop): every posterior mean
    within 0.3 reference sd, every sd within 30%, on 4000 guide draws."""
    import jax.numpy as jnp

    prog = gradlang.compile(_without_solve(name, tmp_path))
    model, arrays = prog.bind()
    arrays = {k: jnp.asarray(v) for k, v in arrays.items()}
    for seed in (0, 1, 2):
        result = prog.fit(seed=seed)
        assert result.converged and result.steps < 2000, result.steps  # the ELBO rule stopped it, well before the cap
        draws = sample_guide(model, {k: jnp.asarray(v) for k, v in result.unconstrained.items()}, arrays, 4000, 11)
        fitted = summarize(draws)
        for latent, (mean, sd) in reference_posteriors()[name].items():
            z = np.abs(fitted[latent]["mean"] - mean) / sd
            ratio = fitted[latent]["sd"] / sd
            assert np.all(z < 0.3), (name, seed, latent, z)
            assert np.all(np.abs(ratio - 1) < 0.3), (name, seed, latent, ratio)


def test_khat_separates_the_default_fit_from_one_stopped_after_50_steps(default_fits):
    good = default_fits["kidiq"][1].diagnostics["khat"]
    bad = gradlang.compile(str(EXAMPLES / "kidiq.grad")).fit(steps=50).diagnostics["khat"]
    assert good < 0.7 < bad, (good, bad)

CONJUGATE = """data y: real[N]
model {{
  mu ~ normal(0, 1)
  y ~ normal(mu + 0.2, 1)
}}
guide = mean_field via {via}
maximize {objective}
"""


@pytest.mark.parametrize("guide", ["family", "written"])
def test_dreg_under_renyi_with_alpha_is_a_located_check_error(guide):
    text = CONJUGATE.format(via="dreg", objective="renyi(alpha = 0.5, particles = 4)")
    if guide == "written":
        text = text.replace("guide = mean_field via dreg", "param m: real\nparam s: positive\n"
                            "guide {\n  mu ~ normal(m, s) via dreg\n}")
    with pytest.raises(GradlangError, match="dreg is derived for iwae") as err:
        gradlang.compile(text)
    line = text.splitlines().index(next(ln for ln in text.splitlines() if "via dreg" in ln)) + 1
    assert err.value.span is not None and err.value.span.line == line
    assert "renyi with alpha = 0.5" in str(err.value)
    # iwae (alpha = 0) and elbo keep dreg; renyi keeps reparam and stl
    for objective, via in [("iwae(particles = 4)", "dreg"), ("elbo(particles = 4)", "dreg"),
                           ("renyi(alpha = 0.5, particles = 4)", "stl"),
                           ("renyi(alpha = 0.5, particles = 4)", "reparam")]:
        gradlang.compile(CONJUGATE.format(via=via, objective=objective))


# ---- PSIS-corrected posterior moments (issue 14 item 3) ---------------------------------------------
# mu ~ N(0, 1), y_i ~ N(mu, 1), i = 1..8: the posterior is N(sum y / 9, 1/9) exactly.  The guide
# is deliberately off (its parameters held at their inits by steps = 0): N(0.4, 0.6^2), wider than
# the posterior (sd 1/3) and 1.5 posterior sds below its mean (0.91), so importance weights correct it.
Y = np.array([0.8, 1.3, 0.2, 1.9, 1.1, 0.4, 1.6, 0.9])
EXACT_MEAN, EXACT_SD = float(Y.sum() / (len(Y) + 1)), float(1 / np.sqrt(len(Y) + 1))

MISFIT = """data y: real[N]
model {
  mu ~ normal(0, 1)
  y ~ normal(mu, 1)
}
param m: real = 0.4
param s: positive = 0.6
guide {
  mu ~ normal(m, s)
}
maximize elbo(particles = 4)
solve { steps = 1 }
"""


def test_psis_corrected_moments_are_closer_to_the_exact_posterior_than_the_guides():
    result = gradlang.compile(MISFIT).fit({"y": Y}, steps=0)
    guide, corrected = result.posterior["mu"], result.psis_posterior["mu"]
    assert abs(float(guide["mean"]) - 0.4) < 0.06 and abs(float(guide["sd"]) - 0.6) < 0.05  # the guide as set
    # 4000 draws; with k̂ < 0.5 the corrected moments' Monte-Carlo error is about 0.01 here
    assert result.diagnostics["khat"] < 0.5
    assert abs(float(corrected["mean"]) - EXACT_MEAN) < 0.03, (corrected, EXACT_MEAN)
    assert abs(float(corrected["sd"]) / EXACT_SD - 1) < 0.08, (corrected, EXACT_SD)
    assert abs(float(guide["mean"]) - EXACT_MEAN) > 0.15  # what the correction fixed


# ---- rejected particles (reject=nonfinite, backend/finite_particles.py) --------------------------------
# mu ~ N(1, 1), y ~ N(mu, 1), and a term that is 0 where mu >= 0 and NaN where mu < 0: with the guide
# N(0.3, 1), about 38% of the draws have a NaN log joint.  The plain estimator of each particle alone
# (particles = 1, settings written: no rejection) at the keys the 16-particle estimate gives its
# particles (split(key, 16)) is the reference: the rejecting estimate's value, gradient and count
# must be the mean over the finite ones, the mean of their gradients, and the number of NaNs.
REJECTING = """data y: real[N]
model {{
  mu ~ normal(1, 1)
  y ~ normal(mu, 1)
  target += sqrt(mu) - sqrt(mu)
}}
param m: real = 0.3
param s: positive = 1
guide {{
  mu ~ normal(m, s)
}}
maximize elbo(particles = {particles})
{solve}"""
Y_REJ = np.array([0.9, 1.4, 0.6, 1.1], np.float32)


def test_particles_with_a_nan_log_joint_are_rejected_from_the_estimate_its_gradient_and_counted():
    import jax
    import jax.numpy as jnp

    from gradlang.backend.vi import DRAWS, LAST, REJECTED

    rejecting, _ = gradlang.compile(REJECTING.format(particles=16, solve="")).bind({"y": Y_REJ})
    plain, _ = gradlang.compile(REJECTING.format(particles=1, solve="solve { steps = 1 }")).bind({"y": Y_REJ})
    assert rejecting.program.vi_defaults.reject_nonfinite and plain.program.vi_defaults is None
    data = {"y": jnp.asarray(Y_REJ)}
    u = rejecting.init(jax.random.PRNGKey(0), data)
    estimate = jax.jit(jax.value_and_grad(rejecting.loss_and_values, has_aux=True))
    each = jax.jit(jax.vmap(jax.value_and_grad(plain.loss), in_axes=(None, None, 0)))
    for seed in (3, 4):
        key = jax.random.PRNGKey(seed)
        state = {REJECTED: jnp.int32(5), DRAWS: jnp.int32(32), f"{LAST}0": jnp.float32(0)}
        (loss, (_, state)), grads = estimate(u, data, key, state)
        f, by_hand = each(u, data, jax.random.split(key, 16))
        f = np.asarray(f)
        ok = np.isfinite(f)
        assert 2 <= (~ok).sum() <= 14  # some of each
        assert int(state[REJECTED]) == 5 + (~ok).sum() and int(state[DRAWS]) == 32 + 16
        assert float(loss) == pytest.approx(f[ok].mean(), rel=1e-5)
        for name in u:
            assert float(grads[name]) == pytest.approx(float(np.asarray(by_hand[name])[ok].mean()), rel=1e-4,
                                                       abs=1e-6), name
        assert float(state[f"{LAST}0"]) == pytest.approx(-f[ok].mean(), rel=1e-5)  # the estimate (as written)
    # the count over 64 steps' draws (1024) against the known fraction P(mu < 0) = Phi(-0.3) = 0.382
    # (binomial sd 0.015)
    zero = {REJECTED: jnp.int32(0), DRAWS: jnp.int32(0), f"{LAST}0": jnp.float32(0)}
    counts = jax.jit(jax.vmap(lambda k: rejecting.loss_and_values(u, data, k, zero)[1][1][REJECTED]))(
        jax.random.split(jax.random.PRNGKey(5), 64))
    assert abs(float(np.sum(counts)) / 1024 - 0.3821) < 0.05
    # no draw accepted (the guide N(-30, 1): every mu negative): an estimate over no draws is undefined,
    # its gradient NaN (the defaults' update skips it: optax.apply_if_finite) and its value the last
    # estimate, so the run goes on
    far = {"m": jnp.float32(-30.0), "s": jnp.float32(0.0)}
    state = {REJECTED: jnp.int32(0), DRAWS: jnp.int32(0), f"{LAST}0": jnp.float32(-7.5)}
    (loss, (_, state)), grads = estimate(far, data, jax.random.PRNGKey(0), state)
    assert float(loss) == 7.5 and int(state[REJECTED]) == 16 and int(state[DRAWS]) == 16
    assert all(np.isnan(float(g)) for g in grads.values())



MIXED = """data y: real[N]
model {{
  z ~ bernoulli(0.3)
  mu ~ normal(0, 1)
  y ~ normal(mu + z, 1)
}}
param q: unit = 0.6
param m: real = 0.3
param s: positive = 1
guide {{
  z ~ bernoulli(q)
  mu ~ normal(m, s)
}}
maximize {objective}
{solve}"""


@pytest.mark.parametrize("objective", ["elbo(particles = 4)", "iwae(particles = 4)"])
def test_with_every_draw_finite_the_rejecting_estimator_is_the_written_one(objective):
    """A guide with a score-function site (z, Bernoulli: its log q is a second output of each
    particle, with its own Jacobian row) and a reparameterised one: where no draw is rejected, the
    defaults' estimate and gradient equal the plain estimator's at the same key (settings written)."""
    import jax
    import jax.numpy as jnp

    rejecting, _ = gradlang.compile(MIXED.format(objective=objective, solve="")).bind({"y": Y_REJ})
    plain, _ = gradlang.compile(MIXED.format(objective=objective, solve="solve { steps = 1 }")).bind({"y": Y_REJ})
    assert rejecting.program.vi_defaults.reject_nonfinite and plain.program.vi_defaults is None
    data = {"y": jnp.asarray(Y_REJ)}
    u = rejecting.init(jax.random.PRNGKey(0), data)
    keys = jax.random.split(jax.random.PRNGKey(1), 3)
    ours = jax.jit(jax.vmap(jax.value_and_grad(rejecting.loss), in_axes=(None, None, 0)))(u, data, keys)
    theirs = jax.jit(jax.vmap(jax.value_and_grad(plain.loss), in_axes=(None, None, 0)))(u, data, keys)
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-6)
    for name in u:
        np.testing.assert_allclose(ours[1][name], theirs[1][name], rtol=1e-5, atol=1e-6)


def test_the_final_estimate_under_rejection_is_over_the_evaluations_that_accepted_a_draw():
    """With one particle, ~38% of the final estimate's 64 evaluations accept no draw (NaN): the
    result's objective is the mean of the others, as computed by hand at the same keys."""
    import jax

    from gradlang.backend.estimate import ESTIMATE_DRAWS
    from gradlang.backend.keys import prng_key

    prog = gradlang.compile(REJECTING.format(particles=1, solve=""))
    result = prog.fit(data={"y": Y_REJ}, steps=50, seed=2)
    plain, _ = gradlang.compile(REJECTING.format(particles=1, solve="solve { steps = 1 }")).bind({"y": Y_REJ})
    u = {k: jax.numpy.asarray(v) for k, v in result.unconstrained.items()}
    keys = jax.random.split(prng_key(2 + 1), ESTIMATE_DRAWS)
    f = -np.asarray(jax.vmap(lambda k: plain.loss(u, {"y": jax.numpy.asarray(Y_REJ)}, k))(keys), np.float64)
    ok = np.isfinite(f)
    assert 5 <= (~ok).sum() <= 59
    assert np.isfinite(result.objective)
    assert result.objective == pytest.approx(f[ok].mean(), rel=1e-5)
    assert result.objective_se == pytest.approx(f[ok].std(ddof=1) / np.sqrt(ok.sum()), rel=1e-4)


FRAMED = """data y: real[N]
data x: real[N]
model {
  a ~ normal(0, 10)
  b ~ normal(0, 10)
  sigma: positive ~ cauchy(0, 2.5)
  y ~ normal(a + b * x, sigma)
}
guide = FAMILY
maximize elbo(particles = 3)
"""


@pytest.mark.parametrize("family", ["full_rank", "mean_field"])
def test_the_frames_step_hands_the_guide_its_scale_as_the_round_trip_would(family):
    """In the Laplace frame a step hands the guide its scale as the frame makes it (``L0 B``,
    ``s0 b``: ``build.Constrained``), not through the family's transform's inverse and back: the
    same loss and gradient in the frame's parameters as the round trip through ``to_params``."""
    import jax

    from gradlang.backend.build import Constrained
    from gradlang.backend.solvers.laplace_start import FRAME, LaplaceFrame

    rng = np.random.default_rng(0)
    x = rng.normal(100, 15, size=40).astype(np.float32)  # unstandardised: a frame far from the identity
    data = {"x": x, "y": (20 + 0.6 * x + rng.normal(0, 5, size=40)).astype(np.float32)}
    prog = gradlang.compile(FRAMED.replace("FAMILY", family))
    prog.fit(data=data, steps=0)
    (loop,) = prog._loops.values()
    frame = loop.solver.direction
    assert isinstance(frame, LaplaceFrame)
    model, arrays = prog.bind(data)
    key = jax.random.PRNGKey(3)
    state = loop.solver.init(model.init(jax.random.PRNGKey(1), arrays), arrays, key)
    w = jax.tree.map(lambda v: v + 0.1 * rng.normal(size=np.shape(v)).astype(np.float32), state.u)
    est = state.est
    rest = {k: v for k, v in est.items() if k != FRAME}
    loss, _, grads, _ = frame(w, arrays, key, est)

    u, pull = jax.vjp(lambda w: frame.to_params(w, est), w)  # the round trip: unconstrained, then the transform
    loss_rt, _, grads_rt, _ = frame.inner(u, arrays, key, rest)
    (grads_rt,) = pull(grads_rt)
    assert float(loss) == pytest.approx(float(loss_rt), rel=1e-5)
    for k in w:
        np.testing.assert_allclose(grads[k], grads_rt[k], rtol=2e-3, atol=1e-3 * float(np.max(np.abs(grads_rt[k]))))
    value = np.arange(3.0)
    assert model.constrain({"sigma": Constrained(value)})["sigma"] is value


def test_the_defaults_loop_compiles_for_a_short_run_with_the_same_numbers():
    """compile=fast: the loop's chunk is compiled with XLA's elemental emitter (about half the
    compilation); the fit is bit for bit the one compiled with XLA's defaults, and a program with
    its settings written keeps them."""
    import jax

    from gradlang.backend.compile_options import fast_compile, wide_vectors
    from gradlang.backend.solvers import vi_defaults

    rng = np.random.default_rng(1)
    x = rng.normal(100, 15, size=30).astype(np.float32)
    data = {"x": x, "y": (20 + 0.6 * x + rng.normal(0, 5, size=30)).astype(np.float32)}
    source = FRAMED.replace("FAMILY", "full_rank")
    prog = gradlang.compile(source)
    fast = prog.fit(data=data, seed=2)
    (loop,) = prog._loops.values()
    assert dict(loop.solver.compile_options) == fast_compile()
    assert loop.compiler_options == {**wide_vectors(), **fast_compile()}  # the machine's, then the plan's
    if jax.default_backend() == "cpu":
        assert fast_compile() == {"xla_cpu_use_fusion_emitters": False,
                                  "xla_disable_hlo_passes": "tree_reduction_rewriter"}
    original = vi_defaults.loop_options
    vi_defaults.loop_options = lambda decision: {}  # XLA's own options: none
    try:
        plain = gradlang.compile(source).fit(data=data, seed=2)
    finally:
        vi_defaults.loop_options = original
    assert fast.steps == plain.steps
    for k in fast.unconstrained:
        np.testing.assert_array_equal(fast.unconstrained[k], plain.unconstrained[k])
    written = gradlang.compile(source + "solve { steps = 50 }\n")
    written.fit(data=data, steps=5)
    assert next(iter(written._loops.values())).solver.compile_options == ()
