"""Optimisers through the whole pipeline: a gradlang program's trajectory equals the same problem
driven by the same optimiser built through Optax directly (float32; the two are separately jitted
graphs, so equality is to a few ulps rather than bitwise)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest

import gradlang

PROGRAM = """
data X: real[N, D]
data y: real[N]
param w: real[D] = 0.1
minimize mean(log(1 + exp(-(X @ w) * y))) + 0.01 * sumsq(w)
solve {{ optimizer = {opt}; steps = 60; log_every = 20 }}
"""

CASES = {
    "sgd(lr = 0.1)": lambda: optax.sgd(0.1),
    "momentum(lr = 0.05, beta = 0.8)": lambda: optax.sgd(0.05, momentum=0.8),
    "nesterov(lr = 0.05)": lambda: optax.sgd(0.05, momentum=0.9, nesterov=True),
    "adam(lr = 0.05)": lambda: optax.adam(0.05),
    "adamw(lr = cosine(0.05, 60), weight_decay = 0.01)": lambda: optax.adamw(optax.cosine_decay_schedule(0.05, 60),
                                                                             weight_decay=0.01),
    "rmsprop(lr = 0.01)": lambda: optax.rmsprop(0.01, decay=0.9, eps=1e-8),
    "adagrad(lr = 0.1)": lambda: optax.adagrad(0.1, initial_accumulator_value=0.1, eps=1e-7),
    "lion(lr = 0.001)": lambda: optax.lion(0.001, weight_decay=1e-3),
    "chain(clip_by_global_norm(0.1), adam(lr = warmup_cosine(0.05, 10)))":
        lambda: optax.chain(optax.clip_by_global_norm(0.1),
                            optax.adam(optax.warmup_cosine_decay_schedule(0.0, 0.05, 10, 60, 0.0))),
    "lbfgs()": lambda: optax.lbfgs(),
}


def _data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 5)).astype(np.float32)
    y = np.sign(X @ rng.normal(size=5) + 0.3 * rng.normal(size=64)).astype(np.float32)
    return X, y


@pytest.mark.parametrize("expr", list(CASES))
def test_program_trajectory_equals_optax(expr):
    X, y = _data()
    result = gradlang.compile(PROGRAM.format(opt=expr)).fit(data={"X": X, "y": y})

    Xj, yj = jnp.asarray(X), jnp.asarray(y)

    def loss(p):
        return jnp.mean(jnp.log(1 + jnp.exp(-(Xj @ p["w"]) * yj))) + 0.01 * jnp.sum(p["w"] ** 2)

    opt = CASES[expr]()
    params = {"w": jnp.full(5, 0.1, jnp.float32)}
    state = opt.init(params)

    @jax.jit
    def step(params, state):
        value, g = jax.value_and_grad(loss)(params)
        updates, state = opt.update(g, state, params, value=value, grad=g, value_fn=loss)
        return optax.apply_updates(params, updates), state, value

    history = []
    for t in range(60):
        params, state, value = step(params, state)
        if (t + 1) % 20 == 0:
            history.append(float(value))
    np.testing.assert_allclose(result.params["w"], params["w"], rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(result.history["objective"], history, rtol=2e-5, atol=1e-7)
