"""The loop: reproducible seeds, the last finite state kept on NaN, minibatches, history, reports."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradlang
from gradlang.errors import GradlangError

REGRESSION = """
data X: real[N, D]
data y: real[N]
param w: real[D] = normal(0, 0.1)
param s: positive = 1
minimize mean((X @ w - y)^2) / s + log(s)
report norm = norm2(w)
solve { optimizer = adam(lr = 0.05); steps = 300; batch = 16; log_every = 50 }
"""


def _data(n=200, d=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    return {"X": X, "y": (X @ np.arange(1, d + 1) + 0.1 * rng.normal(size=n)).astype(np.float32)}


def test_same_seed_gives_bit_identical_parameters():
    prog = gradlang.compile(REGRESSION)
    a = prog.fit(data=_data(), seed=3)
    b = prog.fit(data=_data(), seed=3)
    c = prog.fit(data=_data(), seed=4)
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name])
    assert not np.array_equal(a.params["w"], c.params["w"])
    assert a.history == b.history


def test_a_step_draws_the_same_whatever_the_chunks_around_it():
    """Step t's randomness (minibatch, Monte-Carlo draws) comes from fold_in(key, t): logging
    every 7 steps instead of every 50 changes the chunks, not the run."""
    program = REGRESSION.replace("param s: positive = 1", "param s: positive = 1\nparam m: real = 0")
    program = program.replace("minimize mean", "minimize expect { z ~ normal(m, 1); (z - 2)^2 } + mean")
    a = gradlang.compile(program).fit(data=_data(), steps=40, seed=5)
    b = gradlang.compile(program.replace("log_every = 50", "log_every = 7")).fit(data=_data(), steps=40, seed=5)
    assert b.history["step"][:2] == [7, 14]
    for name in a.params:
        np.testing.assert_allclose(a.params[name], b.params[name], rtol=1e-6, atol=1e-7)


def test_history_and_reports_at_each_log_point():
    result = gradlang.compile(REGRESSION).fit(data=_data())
    assert result.history["step"] == [50, 100, 150, 200, 250, 300]
    assert len(result.history["objective"]) == 6
    assert len(result.history["reports"]["norm"]) == 6
    np.testing.assert_allclose(result.reports["norm"], np.linalg.norm(result.params["w"]), rtol=1e-5)
    assert result.params["s"] > 0


def test_minibatch_loop_matches_hand_written_jax():
    """The compiled loop is the same computation as a hand-written Optax loop drawing the same
    minibatch indices (randint with step t's key, fold_in(key, t))."""
    data = _data()
    prog = gradlang.compile(REGRESSION.replace("normal(0, 0.1)", "0"))
    result = prog.fit(data=data, steps=40)

    X, y = jnp.asarray(data["X"]), jnp.asarray(data["y"])
    opt = optax.adam(0.05)
    key = jax.random.PRNGKey(0)
    key, _ = jax.random.split(key)
    params = {"s": jnp.zeros(()), "w": jnp.zeros(4)}  # s = exp(0) = 1 in the unconstrained space
    state = opt.init(params)

    def loss(p, Xb, yb):
        s = jnp.exp(p["s"])
        return jnp.mean((Xb @ p["w"] - yb) ** 2) / s + jnp.log(s)

    for t in range(40):
        idx = jax.random.randint(jax.random.fold_in(key, t), (16,), 0, 200)
        g = jax.grad(loss)(params, X[idx], y[idx])
        updates, state = opt.update(g, state, params)
        params = optax.apply_updates(params, updates)
    np.testing.assert_allclose(result.params["w"], params["w"], rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(result.params["s"], np.exp(params["s"]), rtol=2e-5)


def test_nan_stops_the_run_and_keeps_last_finite_state():
    # sqrt(w - 3) turns NaN once gradient descent pushes w below 3 (w starts at 5, the optimum
    # of (w - 1)^2 pulls it down by 0.5 a step): step 1 w=5 -> 4, step 2 -> 3.2, step 3 -> NaN.
    prog = gradlang.compile("""
param w: real = 5
minimize (w - 1)^2 + sqrt(w - 3)
solve { optimizer = sgd(lr = 0.125); steps = 100; log_every = 10 }
""")
    with pytest.raises(gradlang.NonFiniteError) as info:
        prog.fit()
    err = info.value
    assert "non-finite at step" in err.message
    assert err.span is not None and err.span.line == 3
    result = err.result
    assert np.isfinite(result.params["w"])
    # replay by hand: keep stepping while the loss and the new iterate stay finite
    w, last_finite, steps = 5.0, 5.0, 0
    grad = jax.grad(lambda w: (w - 1) ** 2 + jnp.sqrt(w - 3))
    while True:
        value = (w - 1) ** 2 + np.sqrt(w - 3) if w >= 3 else np.nan
        new = w - 0.125 * float(grad(w))
        if not (np.isfinite(value) and np.isfinite(new)):
            break
        w, steps = new, steps + 1
        last_finite = w
    assert result.steps == steps
    np.testing.assert_allclose(result.params["w"], last_finite, rtol=1e-6)


def test_maximize_reports_the_maximised_value():
    result = gradlang.compile("param x: real = 0\nmaximize -(x - 2)^2 + 1\nsolve { optimizer = sgd(lr = 0.1); steps = 200 }").fit()
    np.testing.assert_allclose(result.params["x"], 2.0, atol=1e-4)
    np.testing.assert_allclose(result.objective, 1.0, atol=1e-6)


def test_domains_stay_in_their_sets():
    prog = gradlang.compile("""
const target = [0.7, 0.2, 0.1]
param p: simplex[3]
param u: unit = 0.9
param r: interval(2, 5) = 4
param c: ordered[3]
minimize sumsq(p - target) + (u - 0.25)^2 + (r - 10)^2 + sumsq(c - [3, 1, 2])
solve { optimizer = adam(lr = 0.05); steps = 1500 }
""")
    res = prog.fit()
    np.testing.assert_allclose(res.params["p"], [0.7, 0.2, 0.1], atol=2e-3)
    np.testing.assert_allclose(res.params["u"], 0.25, atol=2e-3)
    assert 4.9 < res.params["r"] < 5.0  # pushed to the upper bound, never past it
    assert np.all(np.diff(res.params["c"]) > 0)


def test_several_objectives_with_sum_aggregator():
    res = gradlang.compile("""
param x: real = 0
minimize { a: (x - 1)^2, b: (x + 3)^2 }
solve { optimizer = sgd(lr = 0.1); steps = 300; aggregator = sum }
""").fit()
    np.testing.assert_allclose(res.params["x"], -1.0, atol=1e-4)
    assert set(res.objectives) == {"a", "b"}
    np.testing.assert_allclose(res.objective, res.objectives["a"] + res.objectives["b"], rtol=1e-6)


def test_consts_overridden_by_keyword():
    prog = gradlang.compile("const c = 1\nparam x: real = 0\nminimize (x - c)^2\nsolve { optimizer = sgd(lr = 0.2); steps = 100 }")
    np.testing.assert_allclose(prog.fit(c=4).params["x"], 4.0, atol=1e-4)
    with pytest.raises(GradlangError, match="no const named 'd'"):
        prog.fit(d=3)


def test_objective_fn_is_a_pure_jax_function():
    prog = gradlang.compile("data X: real[N, D]\ndata y: real[N]\nparam w: real[D]\nparam s: positive\n"
                            "minimize mean((X @ w - y)^2) / s")
    data = _data()
    f = jax.jit(prog.objective_fn)
    params = {"w": jnp.ones(4), "s": jnp.asarray(2.0)}
    expected = np.mean((data["X"] @ np.ones(4) - data["y"]) ** 2) / 2
    np.testing.assert_allclose(f(params, data), expected, rtol=1e-5)
    g = jax.grad(prog.objective_fn)(params, data)
    np.testing.assert_allclose(g["s"], -expected / 2, rtol=1e-4)


def _equal(a: dict, b: dict) -> None:
    for k in a:
        np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]))


def test_a_program_reuses_its_compiled_loop_across_fits():
    """A second fit with other data of the same shapes runs the loop compiled by the first (no new
    executable) and gives bit for bit what a fresh program gives on that data; new dims compile
    a new loop."""
    prog = gradlang.compile(REGRESSION)
    prog.fit(data=_data(seed=0))
    (loop,) = prog._loops.values()
    assert loop.fast._cache_size() == 1
    other = _data(seed=1)
    again = prog.fit(data=other)
    assert loop.fast._cache_size() == 1 and len(prog._loops) == 1
    _equal(again.params, gradlang.compile(REGRESSION).fit(data=other).params)
    prog.fit(data=_data(n=300, seed=2))
    assert len(prog._loops) == 2


def test_a_schedule_over_the_solve_gets_a_loop_per_step_count():
    # cosine(0.05) decays over the solve's steps: a fit of other length needs its own schedule
    source = REGRESSION.replace("adam(lr = 0.05)", "adam(lr = cosine(0.05))")
    prog = gradlang.compile(source)
    prog.fit(data=_data(), steps=100)
    short = prog.fit(data=_data(), steps=60)
    assert len(prog._loops) == 2
    _equal(short.params, gradlang.compile(source).fit(data=_data(), steps=60).params)
    plain = gradlang.compile(REGRESSION)
    plain.fit(data=_data(), steps=100)
    plain.fit(data=_data(), steps=60)
    assert len(plain._loops) == 1  # a constant rate does not depend on the step count


def test_several_maximised_objectives_are_recorded_as_written():
    """The history keeps each objective and their aggregate as the user wrote them: the same sign
    and formula as ``result.objective`` (sum here), not the minimised loss."""
    res = gradlang.compile("""
param x: real = 0
maximize { a: -(x - 1)^2, b: -(x + 3)^2 }
solve { optimizer = sgd(lr = 0.1); steps = 300; aggregator = sum; log_every = 100 }
""").fit()
    hist = res.history
    assert hist["step"] == [100, 200, 300] and set(hist["objectives"]) == {"a", "b"}
    np.testing.assert_allclose(hist["objective"], np.add(hist["objectives"]["a"], hist["objectives"]["b"]), rtol=1e-6)
    np.testing.assert_allclose(hist["objective"][-1], res.objective, rtol=1e-5)  # converged: -8
    np.testing.assert_allclose(res.objective, -8.0, rtol=1e-5)
    assert all(v <= 0 for v in hist["objectives"]["a"] + hist["objectives"]["b"])


def _fit_with_chunks(monkeypatch, seconds: float, **kw):
    from gradlang.backend import clock

    monkeypatch.setattr(clock, "TARGET_SECONDS", seconds)
    prog = gradlang.compile(REGRESSION.replace("param s: positive = 1", "param s: positive = 1\nparam m: real = 0")
                            .replace("minimize mean", "minimize expect { z ~ normal(m, 1); (z - 2)^2 } + mean"))
    calls = []
    result = prog.fit(data=_data(), progress=lambda done, total, value: calls.append((done, value)), **kw)
    return prog, result, calls


def test_the_chunks_do_not_change_the_run_and_compile_once(monkeypatch):
    """Chunks of one segment each (the host looks after every log_every steps) and one chunk for
    the whole run give the same bits; every chunk length runs the same compiled executable."""
    prog, small, calls = _fit_with_chunks(monkeypatch, 1e-9, steps=1000)
    assert [d for d, _ in calls] == list(range(50, 1001, 50))  # one look a segment
    (loop,) = prog._loops.values()
    assert loop.fast._cache_size() == 1
    _, big, calls = _fit_with_chunks(monkeypatch, 1e9, steps=1000)
    assert len(calls) < 5  # two one-segment chunks to time the step, then the rest at once
    for name in small.params:
        np.testing.assert_array_equal(small.params[name], big.params[name])
    assert small.history == big.history and small.objective == big.objective
    assert [v for _, v in calls][-1] == small.history["objective"][-1]  # the progress shows the last step's


def test_ctrl_c_keeps_the_state_reached(monkeypatch):
    def press(done, total, value):
        if done >= 200:
            raise KeyboardInterrupt

    from gradlang.backend import clock

    monkeypatch.setattr(clock, "TARGET_SECONDS", 1e-9)
    prog = gradlang.compile(REGRESSION)
    stopped = prog.fit(data=_data(), progress=press)
    assert stopped.history["interrupted"] and stopped.steps == 200 and stopped.history["step"][-1] == 200
    short = prog.fit(data=_data(), steps=200)
    for name in short.params:
        np.testing.assert_array_equal(stopped.params[name], short.params[name])


def test_the_host_looks_by_the_clock_not_by_log_every():
    """log_every = 10 over 20000 cheap steps: 2000 history points (and reports) recorded on device,
    while the host looks only a few times."""
    calls = []
    prog = gradlang.compile("param x: real[3] = 0\nminimize sumsq(x - [1, 2, 3])\nreport dist = norm2(x - [1, 2, 3])\n"
                            "solve { optimizer = sgd(lr = 0.0001); steps = 20000; log_every = 10 }")
    result = prog.fit(progress=lambda *a: calls.append(a))
    assert result.history["step"] == list(range(10, 20001, 10))
    assert len(result.history["reports"]["dist"]) == 2000 and len(calls) < 100
    # a log point's objective is the loss at its step; its report is at the parameters after it
    x = np.zeros(3)
    target = np.array([1.0, 2.0, 3.0])
    for t in range(30):
        value = np.sum((x - target) ** 2)
        x = x - 0.0001 * 2 * (x - target)
        if (t + 1) % 10 == 0:
            k = (t + 1) // 10 - 1
            np.testing.assert_allclose(result.history["objective"][k], value, rtol=1e-5)
            np.testing.assert_allclose(result.history["reports"]["dist"][k], np.linalg.norm(x - target), rtol=1e-5)


def test_nan_late_in_a_run_of_many_chunks_keeps_the_last_finite_state(monkeypatch):
    """Chunks are dispatched ahead; a non-finite one drops the next and is replayed from its start:
    the run stops after exactly the finite steps (replayed here in float32)."""
    from gradlang.backend import clock

    monkeypatch.setattr(clock, "TARGET_SECONDS", 1e-9)
    prog = gradlang.compile("param w: real = 5\nminimize (w - 1)^2 + sqrt(w - 3)\n"
                            "solve { optimizer = sgd(lr = 0.001); steps = 5000; log_every = 100 }")
    with pytest.raises(gradlang.NonFiniteError) as info:
        prog.fit()
    grad = jax.jit(jax.grad(lambda w: (w - 1) ** 2 + jnp.sqrt(w - 3)))
    w, steps = np.float32(5.0), 0
    while True:
        value = (w - 1) ** 2 + np.sqrt(w - 3) if w >= 3 else np.nan
        new = np.float32(w + np.float32(-np.float32(0.001) * grad(w)))
        if not (np.isfinite(value) and np.isfinite(new)):
            break
        w, steps = new, steps + 1
    result = info.value.result
    assert 200 < steps < 5000 and result.steps == steps  # in the fourth chunk
    assert f"non-finite at step {steps + 1}" in info.value.message
    np.testing.assert_allclose(result.params["w"], w, rtol=1e-6)
    assert result.history["step"][-1] <= steps


DETERMINISTIC = """
data X: real[N, D]
data y: real[N]
param w: real[D] = 0
minimize mean((X @ w - y)^2) + 0.01 * sumsq(w)
report norm = norm2(w)
solve { optimizer = adam(lr = 0.05); steps = 230; log_every = 50 }
"""


def test_compiling_ahead_changes_nothing_and_compiles_each_executable_once(monkeypatch, caplog):
    """The loop's executables (the chunk, the short last segment's, the reports) compile on a
    worker thread while the host initialises: the run is bit-identical to one that compiles as it
    goes, and no executable is compiled twice (the run's calls find the worker's).  The final
    objectives are the last chunk's, at the final parameters (checked against the program's own
    objective function there)."""
    import logging

    from gradlang.backend import runtime

    results = {}
    for ahead in (False, True):
        monkeypatch.setattr(runtime, "COMPILE_AHEAD", ahead)
        caplog.clear()
        jax.config.update("jax_log_compiles", True)  # the config, not its thread-local context: the worker logs too
        try:
            with caplog.at_level(logging.WARNING):
                results[ahead] = gradlang.compile(DETERMINISTIC).fit(data=_data())
        finally:
            jax.config.update("jax_log_compiles", False)
        compiled = [r.getMessage() for r in caplog.records if "Finished XLA compilation of jit(" in r.getMessage()]
        for name in ("_chunk", "_objectives", "<lambda>"):
            count = sum(f"jit({name})" in m for m in compiled)
            # the final objectives come with the last chunk: no executable of their own
            assert count == {"_chunk": 2, "_objectives": 0, "<lambda>": count}[name], (ahead, name, compiled)
    _equal(results[True].params, results[False].params)
    assert results[True].history == results[False].history
    assert results[True].objective == results[False].objective
    assert results[True].reports["norm"] == results[False].reports["norm"]
    # after 7 steps each step still moves the objective by percents: the final value is at the final
    # parameters, not at the last step's start
    short = gradlang.compile(DETERMINISTIC).fit(data=_data(), steps=7)
    at_final = gradlang.compile(DETERMINISTIC).objective_fn(short.params, _data())
    assert short.objective == pytest.approx(float(at_final), rel=1e-6)
    assert short.objective < short.history["objective"][-1] * 0.99


def test_an_error_while_compiling_ahead_is_reported_as_without_it(monkeypatch):
    """A program whose initial state cannot be made reports the same error with or without the
    head start (the worker's compiles are waited for, then the error propagates)."""
    from gradlang.backend import runtime

    source = DETERMINISTIC.replace("param w: real[D] = 0", "param w: real[D] = log(-1 + 0 * X[1, 1])")
    messages = []
    for ahead in (True, False):
        monkeypatch.setattr(runtime, "COMPILE_AHEAD", ahead)
        with pytest.raises(GradlangError) as err:
            gradlang.compile(source).fit(data=_data())
        messages.append(str(err.value))
    assert messages[0] == messages[1]


def test_a_chunks_keys_are_fold_in_of_each_step():
    from gradlang.backend.clock import KEY_BUFFER
    from gradlang.backend.loop import chunk_keys

    key = jax.random.PRNGKey(11)
    keys = chunk_keys(key, 40, 100)
    assert keys.shape == (KEY_BUFFER, 2)
    for i in (0, 1, 17, 99):
        np.testing.assert_array_equal(keys[i], np.asarray(jax.random.fold_in(key, 40 + i)))
    assert not keys[100:].any()  # the steps past the chunk's: zero padding


STOCHASTIC = REGRESSION.replace("param s: positive = 1", "param s: positive = 1\nparam m: real = 0").replace(
    "minimize mean", "minimize expect { z ~ normal(m, 1); (z - 2)^2 } + mean")
VI_DEFAULTS = """data y: real[N]
model {
  mu ~ normal(0, 10)
  sigma: positive ~ cauchy(0, 2.5)
  y ~ normal(mu, sigma)
}
guide = full_rank
maximize elbo(particles = 4)
"""


@pytest.mark.parametrize("kind", ["stochastic", "vi_defaults"])
def test_the_loop_compiles_on_the_worker_once_for_keyed_and_vi_default_programs(kind, caplog):
    """A keyed program (minibatches, Monte-Carlo draws: its chunk takes the chunk keys) and a VI
    program under the chosen defaults (a Laplace start inside the init, parameter averaging in
    ``params``) get their chunk compiled on the worker thread, once."""
    import logging

    source, data = (STOCHASTIC, _data()) if kind == "stochastic" else \
        (VI_DEFAULTS, {"y": np.array([1.2, 0.4, 2.2, 1.9, 0.8, 1.5], np.float32)})
    jax.config.update("jax_log_compiles", True)
    try:
        with caplog.at_level(logging.WARNING):
            gradlang.compile(source).fit(data=data, seed=1)
    finally:
        jax.config.update("jax_log_compiles", False)
    chunks = [r for r in caplog.records if "Finished XLA compilation of jit(_chunk)" in r.getMessage()]
    assert len(chunks) >= 1 and all(r.threadName != "MainThread" for r in chunks), \
        [(r.threadName, r.getMessage()[:60]) for r in chunks]
    assert len(chunks) == len({r.getMessage().split(" in ")[0] for r in chunks}) or len(chunks) <= 2


@pytest.mark.parametrize("domain, selected", [("real", True), ("positive", False)])
def test_a_chunk_returns_the_parameters_only_where_they_are_not_the_states_own(monkeypatch, domain, selected):
    """The chunk's outputs repeat no array of the state: where the parameters are the iterate
    itself (no averaging, no constraining transform) the host selects them from the returned
    state; a constrained parameter is transformed in the chunk.  Either way the result's
    parameters are those at the final state, as the program's own transform gives them."""
    from gradlang.backend import runtime

    outputs = []
    original = runtime.Loop.read

    def read(self, out, t0, block, guarded):
        outputs.append(out[-1])
        return original(self, out, t0, block, guarded)

    monkeypatch.setattr(runtime.Loop, "read", read)
    prog = gradlang.compile(f"param w: {domain}[3] = 1\nminimize sumsq(w - [0.5, 2, 3])\n"
                            "solve { optimizer = adam(lr = 0.05); steps = 300 }")
    result = prog.fit()
    assert outputs and all((o is None) == selected for o in outputs)
    np.testing.assert_allclose(result.params["w"], [0.5, 2, 3], atol=5e-3)
    if domain == "positive":  # exp of the iterate (numpyro's transform of (0, inf)), to float32 round-off
        np.testing.assert_allclose(result.params["w"], np.exp(result.unconstrained["w"]), rtol=1e-6)
    else:  # the iterate itself
        np.testing.assert_array_equal(result.params["w"], result.unconstrained["w"])


def test_segments_shorter_than_log_every_record_the_same_history():
    """log_every above the longest segment (4096 steps) runs segments of a divisor of it (here
    3000), only some of which end on a log point: the chunk then counts its records and keeps the
    last step's objectives itself.  Its history, final objective and parameters are those of the
    same run logged every 1000 steps (every segment a log point), at the steps both record."""
    from gradlang.backend.loop import segment_length

    assert segment_length(6000) == 3000
    text = """
param w: real[3] = 0
minimize sumsq(w - [1, -2, 3]) + 0.1 * sum(log(1 + exp(-w)))
solve {{ optimizer = sgd(lr = 1e-4); steps = 13000; log_every = {} }}
"""
    seen = {}
    runs = {le: gradlang.compile(text.format(le)).fit(progress=lambda done, total, obj, le=le: seen.setdefault(le, []).append((done, obj)))
            for le in (6000, 1000)}
    sparse, dense = runs[6000].history, runs[1000].history
    assert sparse["step"] == [6000, 12000, 13000]
    at = {s: o for s, o in zip(dense["step"], dense["objective"])}
    assert sparse["objective"] == [at[s] for s in sparse["step"]]
    assert runs[6000].objective == runs[1000].objective
    np.testing.assert_array_equal(runs[6000].params["w"], runs[1000].params["w"])
    assert seen[6000][-1] == seen[1000][-1]  # the progress bar's last look: the last step's objective


def test_a_run_that_stops_at_a_chunks_last_step_keeps_its_computed_parameters():
    """A solver that stops on the last step of a chunk: the chunk dispatched after it (before the
    host read it) takes no step and returns its start; the result's parameters, computed in the
    chunk (a constrained parameter), are still those at the final state, not the empty chunk's.
    The first run finds the stopping step; the second puts a chunk's end there (the first chunk
    is one segment of log_every steps) and must end bit for bit where the first did."""
    text = """
param s: positive[2] = 1
minimize sumsq(log(s) - [0.5, -1])
solve {{ optimizer = adam(lr = 0.05); steps = 5000; tol = 1e-6{} }}
"""
    first = gradlang.compile(text.format("")).fit()
    assert first.converged and first.steps < 5000
    again = gradlang.compile(text.format(f"; log_every = {first.steps}")).fit()
    assert again.converged_at == first.converged_at == again.steps == first.steps
    np.testing.assert_allclose(first.params["s"], np.exp([0.5, -1]), rtol=5e-3)
    np.testing.assert_array_equal(again.params["s"], first.params["s"])
    np.testing.assert_array_equal(again.unconstrained["s"], first.unconstrained["s"])



TWO_MONTE_CARLO = """
data X: real[N, D]
data y: real[N]
param w: real[D] = normal(0, 0.1)
param s: positive = 1
param m: real = 0
minimize { a: expect { z ~ normal(m, 1); (z - 2)^2 }, b: mean((X @ w - y)^2) / s + log(s) }
solve { optimizer = adam(lr = 0.05); steps = 40; batch = 16; aggregator = sum; log_every = 50 }
"""


def _logged_every_step_and_every_ten(text: str):
    """A Monte-Carlo program's 40 steps logged at every step and every 10: the first run's
    history, the second's last progress report, and the second run."""
    every = gradlang.compile(text.replace("log_every = 50", "log_every = 1")).fit(data=_data(), seed=2)
    seen = []
    tens = gradlang.compile(text.replace("log_every = 50", "log_every = 10")).fit(
        data=_data(), seed=2, progress=lambda done, total, objective: seen.append((done, objective)))
    assert every.history["step"] == list(range(1, 41)) and tens.history["step"] == [10, 20, 30, 40]
    return every.history, seen[-1], tens


def test_a_monte_carlo_run_reports_its_last_steps_objectives_and_their_aggregate():
    """A Monte-Carlo objective's run shows its last step's objectives and their aggregate as
    written (the progress bar's value; the result's until its estimate at the final parameters is
    asked for), read from the chunk's last record.  Step t draws the same however the run is
    logged, so a run logged at every step is the reference; maximised objectives are reported as
    written, the negations of the same run minimised."""
    maximized = TWO_MONTE_CARLO.replace("minimize { a: expect", "maximize { a: -expect").replace(
        "b: mean((X @ w - y)^2) / s + log(s)", "b: -mean((X @ w - y)^2) / s - log(s)")
    assert maximized.count("-") == TWO_MONTE_CARLO.count("-") + 3
    runs = {"min": _logged_every_step_and_every_ten(TWO_MONTE_CARLO), "max": _logged_every_step_and_every_ten(maximized)}
    for every, (done, shown), tens in runs.values():
        a, b = (np.asarray(every["objectives"][k]) for k in "ab")
        np.testing.assert_allclose(every["objective"], a + b, rtol=1e-5)  # the aggregate: a sum
        np.testing.assert_allclose(tens.history["objective"], (a + b)[9::10], rtol=1e-5)
        assert done == 40
        np.testing.assert_allclose(shown, a[-1] + b[-1], rtol=1e-5)  # the last step's aggregate
        np.testing.assert_allclose([tens._objectives["a"], tens._objectives["b"], tens._objective],
                                   [a[-1], b[-1], a[-1] + b[-1]], rtol=1e-5)
        estimate = tens.objective  # asked for: the estimate at the final parameters
        assert tens.objective_se is not None and estimate != shown
    np.testing.assert_allclose(runs["max"][0]["objective"], -np.asarray(runs["min"][0]["objective"]), rtol=1e-5)


def test_a_records_slot_is_the_whole_quotient_of_steps_by_the_segment():
    """The record a segment writes, (its start - the chunk's) / segment length, computed as a
    rounded float32 product (``_whole_quotient``): exact for every segment length up to the
    longest and every start a chunk can have."""
    from gradlang.backend.clock import KEY_BUFFER
    from gradlang.backend.loop import KEY_BLOCK, _whole_quotient

    blocks = np.concatenate([np.full(KEY_BUFFER // b + 1, b) for b in range(1, KEY_BLOCK + 1)]).astype(np.int32)
    wholes = np.concatenate([np.arange(KEY_BUFFER // b + 1) for b in range(1, KEY_BLOCK + 1)]).astype(np.int32)
    got = np.asarray(_whole_quotient(jnp.asarray(wholes * blocks), blocks))
    np.testing.assert_array_equal(got, wholes)
