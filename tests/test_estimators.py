"""Estimators: the mean of many single-draw gradients equals the exact gradient of a small
expectation; a leave-one-out baseline lowers the variance; a misfit estimator is a located error.

Tolerances: 5 standard errors of the Monte-Carlo mean (false-failure rate about 6e-7 a check),
with fixed seeds, so the tests are deterministic."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradlang
from gradlang.errors import GradlangError
from gradlang.lib.estimators import ESTIMATORS

REWARD = np.array([0.2, 1.0, 0.4, -0.3])
THETA = np.array([0.3, -0.2, 0.5, 0.0])


def _gradients(program: str, params: dict, n: int = 20000):
    prog = gradlang.compile(program)
    grad = jax.jit(jax.vmap(jax.grad(lambda p, k: -prog.objective_fn(p, None, k)), in_axes=(None, 0)))
    return grad({k: jnp.asarray(v, jnp.float32) for k, v in params.items()},
                jax.random.split(jax.random.PRNGKey(0), n))


def _assert_unbiased(samples, exact):
    samples = np.asarray(samples, np.float64)
    mean = samples.mean(0)
    se = samples.std(0) / np.sqrt(len(samples)) + 1e-6
    assert np.all(np.abs(mean - exact) < 5 * se), (mean, exact, se)


@pytest.mark.parametrize("via", ["reparam", "score(baseline = none)", "score(baseline = rloo)"])
def test_gaussian_expectation(via):
    # E_{z ~ N(m, 1)}[z^2] = m^2 + 1, so d/dm = 2m
    g = _gradients(f"param m: real = 0.7\nmaximize expect(particles = 4) {{\n  z ~ normal(m, 1) via {via}\n  z^2\n}}",
                   {"m": 0.7})
    _assert_unbiased(g["m"], 1.4)


@pytest.mark.parametrize("baseline", ["none", "rloo"])
def test_categorical_expectation_by_enumeration(baseline):
    # E_{a ~ softmax(theta)}[r_a]; exact gradient: J^T r with J = diag(p) - p p^T
    p = np.exp(THETA) / np.exp(THETA).sum()
    exact = (np.diag(p) - np.outer(p, p)) @ REWARD
    program = (f"const reward = {REWARD.tolist()}\nparam theta: real[4] = 0\n"
               f"maximize expect(particles = 4) {{\n  a ~ categorical(logits = theta) via score(baseline = {baseline})\n"
               "  reward[a]\n}")
    g = _gradients(program, {"theta": THETA})
    _assert_unbiased(g["theta"], exact)


def test_rloo_has_lower_variance_than_no_baseline():
    program = (f"const reward = {(REWARD + 5).tolist()}\nparam theta: real[4] = 0\n"  # a large common offset
               "maximize expect(particles = 4) {{\n  a ~ categorical(logits = theta) via score(baseline = {b})\n"
               "  reward[a]\n}}")
    var = {b: float(np.var(np.asarray(_gradients(program.format(b=b), {"theta": THETA}, 5000)["theta"]), axis=0).sum())
           for b in ("none", "rloo")}
    assert var["rloo"] < 0.2 * var["none"], var


def test_reparam_on_a_discrete_site_is_a_located_error():
    with pytest.raises(GradlangError) as info:  # at check time, before any run
        gradlang.compile("param theta: real[3] = 0\nmaximize expect(particles = 2) {\n"
                         "  a ~ categorical(logits = theta) via reparam\n  theta[a]\n}\n"
                         "solve { steps = 5 }")
    err = info.value
    assert "site 'a'" in err.message and "reparam" in err.message and "CategoricalLogits" in err.message
    assert (err.span.line, err.span.col) == (3, 39)


def test_unknown_estimator_lists_known_ones():
    with pytest.raises(GradlangError) as info:
        gradlang.compile("param t: real = 0\nmaximize expect { a ~ normal(t, 1) via scroe; a }").fit(steps=1)
    assert "did you mean 'score'" in info.value.render()


@pytest.mark.parametrize("name", ESTIMATORS.names())
def test_registry_entries_have_docs_and_citations(name):
    entry = ESTIMATORS.get(name)
    assert entry.value.__doc__ and entry.cite


@pytest.mark.parametrize("via", ["enum", "mvd", "score(baseline = rloo)"])
def test_discrete_estimators_by_enumeration(via):
    p = np.exp(THETA) / np.exp(THETA).sum()
    exact = (np.diag(p) - np.outer(p, p)) @ (REWARD ** 2 + REWARD)
    program = (f"const reward = {REWARD.tolist()}\nparam theta: real[4] = 0\n"
               f"maximize expect(particles = 4) {{\n  a ~ categorical(logits = theta) via {via}\n"
               "  reward[a]^2 + reward[a]\n}")
    g = np.asarray(_gradients(program, {"theta": THETA}, 4000)["theta"])
    if via == "enum":  # exact: every draw gives the exact gradient
        np.testing.assert_allclose(g, np.broadcast_to(exact, g.shape), atol=1e-5)
    else:
        _assert_unbiased(g, exact)


def test_mvd_gaussian_mean_and_scale():
    # E_{z ~ N(m, s)}[z^3 + z] = m^3 + 3 m s^2 + m: d/dm = 3 m^2 + 3 s^2 + 1, d/ds = 6 m s
    m, s = 0.4, 0.8
    g = _gradients("param m: real = 0\nparam s: positive = 1\nmaximize expect(particles = 2) {\n"
                   "  z ~ normal(m, s) via mvd\n  z^3 + z\n}", {"m": m, "s": s})
    _assert_unbiased(g["m"], 3 * m**2 + 3 * s**2 + 1)
    _assert_unbiased(g["s"], 6 * m * s)


def test_mvd_and_enum_on_bernoulli():
    # E_{b ~ Bernoulli(sigmoid(t))}[(b + 1)^2] = 1 + 3 p: d/dt = 3 p (1 - p)
    t = 0.3
    p = 1 / (1 + np.exp(-t))
    for via in ("mvd", "enum"):
        g = _gradients(f"param t: real = 0\nmaximize expect {{\n  b ~ bernoulli(logits = t) via {via}\n  (b + 1)^2\n}}",
                       {"t": t}, 4000)
        _assert_unbiased(g["t"], 3 * p * (1 - p)) if via == "mvd" else \
            np.testing.assert_allclose(np.asarray(g["t"]), 3 * p * (1 - p), rtol=1e-5)


@pytest.mark.parametrize("via", ["gumbel(0.3)", "straight_through"])
def test_relaxed_estimators_run_and_point_the_right_way(via):
    # biased by design: only the sign of the gradient is checked (more reward on category 1)
    g = _gradients(f"const reward = {REWARD.tolist()}\nparam theta: real[4] = 0\n"
                   f"maximize expect(particles = 4) {{\n  a ~ categorical(logits = theta) via {via}\n"
                   "  sum(reward * a)\n}", {"theta": np.zeros(4)}, 2000)
    mean = np.asarray(g["theta"]).mean(0)
    assert np.argmax(mean) == 1 and np.argmin(mean) == 3


def test_greedy_baseline_is_unbiased():
    p = np.exp(THETA) / np.exp(THETA).sum()
    exact = (np.diag(p) - np.outer(p, p)) @ REWARD
    g = _gradients(f"const reward = {REWARD.tolist()}\nparam theta: real[4] = 0\n"
                   "maximize expect {\n  a ~ categorical(logits = theta) via score(baseline = greedy)\n  reward[a]\n}",
                   {"theta": THETA})
    _assert_unbiased(g["theta"], exact)


def test_ema_baseline_trains_a_one_particle_policy():
    """One particle: the default for a discrete site is score with an ema baseline; the policy
    learns the best arm, and an explicit ema(0.8) does too."""
    for via in ("", " via score(baseline = ema(0.8))"):
        prog = gradlang.compile(f"const reward = {(REWARD + 3).tolist()}\nparam theta: real[4] = 0\n"
                                f"maximize expect {{\n  a ~ categorical(logits = theta){via}\n  reward[a]\n}}\n"
                                "solve { optimizer = adam(lr = 0.05); steps = 600 }")
        r = prog.fit()
        assert np.argmax(r.params["theta"]) == 1


# ---- mvd on sites of several independent coordinates ----------------------------------------

def _outcomes(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every joint outcome of independent categoricals (rows of ``probs``) and its probability."""
    grid = np.stack(np.meshgrid(*[np.arange(len(p)) for p in probs], indexing="ij"), -1).reshape(-1, len(probs))
    return grid, np.prod(probs[np.arange(len(probs)), grid], axis=1)


def _exact_logit_gradient(probs: np.ndarray, f) -> np.ndarray:
    """d/dlogits E[f(a)] for independent categoricals: sum_a f(a) P(a) (onehot(a_i) - p_i)."""
    grid, prob = _outcomes(probs)
    onehot = np.eye(probs.shape[1])[grid]  # [outcomes, sites, categories]
    return np.einsum("o,o,osc->sc", np.array([f(a) for a in grid]), prob, onehot - probs[None])


def test_mvd_vector_normal():
    # E[sum(z^3 + z) + z0 z1] = sum(m^3 + 3 m s^2 + m) + m0 m1 for independent z_i ~ N(m_i, s_i)
    m, s = np.array([0.4, -0.3, 0.1]), np.array([0.8, 1.2, 0.5])
    g = _gradients("param m: real[3] = 0\nparam s: positive[3] = 1\nmaximize expect(particles = 2) {\n"
                   "  z: real[3] ~ normal(m, s) via mvd\n  sum(z^3 + z) + z[0] * z[1]\n}", {"m": m, "s": s})
    _assert_unbiased(g["m"], 3 * m**2 + 3 * s**2 + 1 + np.array([m[1], m[0], 0.0]))
    _assert_unbiased(g["s"], 6 * m * s)


def test_mvd_vector_normal_with_shared_parameters():
    # a scalar mean under a vector scale, and a scalar scale under a vector mean: the coordinates'
    # gradients sum into the shared parameter
    m, s = 0.4, 0.7
    g = _gradients("param m: real = 0\nmaximize expect {\n  z ~ normal(m, ones(3)) via mvd\n"
                   "  sum(z^3 + z) + z[0] * z[1]\n}", {"m": m})
    _assert_unbiased(g["m"], 3 * (3 * m**2 + 3 + 1) + 2 * m)
    # the same through a declared shape: the scalar distribution is expanded to real[3]
    g = _gradients("param m: real = 0\nmaximize expect {\n  z: real[3] ~ normal(m, 1) via mvd\n"
                   "  sum(z^3 + z) + z[0] * z[1]\n}", {"m": m})
    _assert_unbiased(g["m"], 3 * (3 * m**2 + 3 + 1) + 2 * m)
    mu = np.array([0.4, -0.3, 0.1])
    g = _gradients("const mu = [0.4, -0.3, 0.1]\nparam s: positive = 1\nmaximize expect {\n"
                   "  z ~ normal(mu, s) via mvd\n  sum(z^3 + z)\n}", {"s": s})
    _assert_unbiased(g["s"], np.sum(6 * mu * s))


def test_mvd_on_expanded_and_to_event_sites():
    # the wrappers a typed site gets (shaped(): expand, then to_event), called directly
    import numpyro.distributions as nd

    mvd = ESTIMATORS.get("mvd").value()
    keys = jax.random.split(jax.random.PRNGKey(1), 20000)

    def grads(make, f, theta):
        return jax.jit(jax.vmap(jax.grad(lambda t, k: mvd.apply(make(t), k, f, {}, "z")), (None, 0)))(theta, keys)

    m = 0.4  # E[sum(z^3) + z0 z1] for z_i ~ N(m, 1): d/dm = 3 (3 m^2 + 3) + 2 m
    g = grads(lambda t: nd.Normal(t, 1.0).expand([3]).to_event(1), lambda z: jnp.sum(z**3) + z[0] * z[1],
              jnp.float32(m))
    _assert_unbiased(g, 3 * (3 * m**2 + 3) + 2 * m)
    t = 0.3  # E[(sum b - 1)^2] for b_i ~ Bernoulli(sigmoid(t)), two coordinates
    p = 1 / (1 + np.exp(-t))
    exact = _exact_logit_gradient(np.array([[1 - p, p]] * 2), lambda b: (b.sum() - 1.0) ** 2)[:, 1].sum()
    g = grads(lambda t: nd.BernoulliLogits(t).expand([2]).to_event(1), lambda b: (jnp.sum(b) - 1.0) ** 2,
              jnp.float32(t))
    _assert_unbiased(g, exact)


def test_mvd_vector_bernoulli_by_enumeration():
    t = np.array([0.3, -0.5, 1.1])
    p = 1 / (1 + np.exp(-t))
    exact = _exact_logit_gradient(np.stack([1 - p, p], 1), lambda b: (b.sum() - 1.0) ** 2 + 3.0 * b[0] * b[2])[:, 1]
    g = _gradients("param t: real[3] = 0\nmaximize expect(particles = 2) {\n"
                   "  b: int[3] ~ bernoulli(logits = t) via mvd\n  (sum(b) - 1)^2 + 3 * b[0] * b[2]\n}", {"t": t})
    _assert_unbiased(g["t"], exact)


def test_mvd_batch_of_categoricals_by_enumeration():
    r = np.array([[0.2, 1.0, -0.4], [0.5, -0.3, 0.8], [1.5, 0.1, -1.0]])
    t = np.array([[0.3, -0.2, 0.5], [-0.4, 0.6, 0.0]])
    probs = np.exp(t) / np.exp(t).sum(1, keepdims=True)
    exact = _exact_logit_gradient(probs, lambda a: r[a[0], a[1]] + r[a[1], a[1]] ** 2)
    g = _gradients(f"const r = {r.tolist()}\nparam t: real[2, 3] = 0\nmaximize expect(particles = 2) {{\n"
                   "  a: int[2] ~ categorical(logits = t) via mvd\n  r[a[0], a[1]] + r[a[1], a[1]]^2\n}", {"t": t})
    _assert_unbiased(g["t"], exact)


def test_mvd_on_another_family_is_a_check_time_error():
    with pytest.raises(GradlangError) as info:
        gradlang.compile("param t: positive[3] = 1\nmaximize expect {\n  z ~ gamma(t, 1) via mvd\n  sum(z)\n}")
    assert "site 'z'" in info.value.message and "Gamma" in info.value.message


# ---- the ema baseline, with the optimisation loop's state -------------------------------------

def _policy(baseline: str, reward: np.ndarray):
    return gradlang.compile(f"const reward = {reward.tolist()}\nparam theta: real[4] = 0\nmaximize expect {{\n"
                            f"  a ~ categorical(logits = theta) via score(baseline = {baseline})\n  reward[a]\n}}").bind(None)


def test_ema_baseline_is_unbiased_and_lowers_the_variance():
    """With the loop's running average fixed (bias-corrected baseline b = avg / weight), one
    particle's gradient (f - b) grad log p is unbiased for any b; with b near E[f] it has far less
    variance than b = 0 when the rewards share a large offset; and the state moves toward E[f]:
    avg' = decay avg + (1 - decay) f, weight' = decay weight + (1 - decay)."""
    reward = REWARD + 5
    p = np.exp(THETA) / np.exp(THETA).sum()
    exact, mean_f = (np.diag(p) - np.outer(p, p)) @ reward, p @ reward
    keys = jax.random.split(jax.random.PRNGKey(0), 20000)
    u = {"theta": jnp.asarray(THETA, jnp.float32)}  # theta is real: unconstrained = constrained
    model, arrays = _policy("ema(0.9)", reward)
    assert set(model.loss_and_values(u, arrays, keys[0], {})[1][1]) == {"a"}  # the state is keyed by site

    def run(model, state):
        def one(k):
            (loss, (_, out)), g = jax.value_and_grad(lambda u: model.loss_and_values(u, arrays, k, state),
                                                     has_aux=True)(u)
            return loss, out, -g["theta"]  # maximised: the loss is -f
        return jax.jit(jax.vmap(one))(keys)

    var = {}
    for b in (3.0, mean_f):
        avg, weight = 0.5 * b, 0.5
        loss, out, g = run(model, {"a": (jnp.float32(avg), jnp.float32(weight))})
        _assert_unbiased(g, exact)
        var[b] = np.asarray(g, np.float64).var(0).sum()
        new_avg, new_weight = np.asarray(out["a"][0]), np.asarray(out["a"][1])
        np.testing.assert_allclose(new_avg, 0.9 * avg + 0.1 * -np.asarray(loss), rtol=1e-5)
        np.testing.assert_allclose(new_weight, 0.9 * weight + 0.1, rtol=1e-6)
        moved = new_avg.mean() / new_weight.mean()  # the next step's baseline, on average
        assert abs(moved - mean_f) < abs(b - mean_f) or abs(moved - mean_f) < 0.01
    none_model, _ = _policy("none", reward)
    _, _, g = run(none_model, {})
    _assert_unbiased(g, exact)
    var["none"] = np.asarray(g, np.float64).var(0).sum()
    assert var[mean_f] < 0.05 * var["none"], var
