"""The optimiser / wrapper / schedule registries against Optax built directly.

Every run drives the optimiser with the runtime's update-call convention
``opt.update(grads, state, params, value=loss, grad=grads, value_fn=loss_fn)`` inside one jitted
``lax.scan``, on a small smooth problem with a matrix parameter (for muon) and a vector one
(a Rosenbrock valley).  Both sides of a comparison are traced the same way, so the trajectories
are compared bitwise.
"""

import functools
import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest

from gradlang.lib.optimizers import OPTIMIZERS, final_params, needs_value_fn, takes_optimizers
from gradlang.lib.schedules import SCHEDULES

_rng = np.random.default_rng(0)
X = jnp.asarray(_rng.normal(size=(4, 8)), jnp.float32)
Y = jnp.asarray(_rng.normal(size=(3, 8)), jnp.float32)
P0 = {"w": jnp.asarray(0.1 * _rng.normal(size=(3, 4)), jnp.float32), "v": jnp.zeros(5, jnp.float32)}


def loss_fn(p):
    v = p["v"]
    rosen = jnp.sum((1.0 - v[:-1]) ** 2 + 10.0 * (v[1:] - v[:-1] ** 2) ** 2)
    return 0.5 * jnp.mean((p["w"] @ X - Y) ** 2) + rosen


def _driver(opt, steps, extra=None):
    """Traced function params -> (trajectory, final state) under the runtime's convention."""

    def go(params):
        def body(carry, _):
            p, s = carry
            value, g = jax.value_and_grad(loss_fn)(p)
            kw = dict(value=value, grad=g, value_fn=loss_fn) if extra is None else extra(value, g)
            u, s = opt.update(g, s, p, **kw)
            p = optax.apply_updates(p, u)
            return (p, s), p

        (_, s), traj = jax.lax.scan(body, (params, opt.init(params)), None, length=steps)
        return traj, s

    return go


def _lookahead_ref_driver(opt, steps):
    """optax.lookahead driven as documented: LookaheadParams, gradients at the fast weights."""

    def go(params):
        def body(carry, _):
            p, s = carry
            g = jax.grad(loss_fn)(p.fast)
            u, s = opt.update(g, s, p)
            p = optax.apply_updates(p, u)
            return (p, s), p

        both = optax.LookaheadParams.init_synced(params)
        (_, s), traj = jax.lax.scan(body, (both, opt.init(both)), None, length=steps)
        return traj, s

    return go


def run(opt, steps, extra=None):
    """Trajectory (params after each step) and final state of one jitted run from P0."""
    return jax.jit(_driver(opt, steps, extra))(P0)


def run_both(*drivers):
    """Several drivers in one jit (one compilation instead of several: compiling dominates the
    test time).  XLA may merge identical subcomputations, which only happens when they are the
    same computation, so comparing the results stays meaningful."""
    return jax.jit(lambda p: tuple(d(p) for d in drivers))(P0)


def build_default(entry):
    if entry.kind == "schedule":
        return OPTIMIZERS.get("adam").value(entry.value())
    adam = OPTIMIZERS.get("adam").value()
    if takes_optimizers(entry.value):  # chain, lookahead
        return entry.value(adam)
    if "opt" in inspect.signature(entry.value).parameters:  # gradient transforms, wrapping adam
        return entry.value(opt=adam)
    return entry.value()


def build_wrapped(name):
    """A base optimiser with defaults inside chain and lookahead (extra args must reach it)."""
    o = OPTIMIZERS.get
    return o("lookahead").value(o("chain").value(o("clip_by_global_norm").value(10.0, o(name).value())), 3)


# Wrapped, these are also run (the rest are only traced: a missing extra argument fails at trace
# time, and compiling dominates the test time): the two that use value_fn, and schedule_free.
RUN_WRAPPED = {"lbfgs", "sophia", "schedule_free"}


@functools.lru_cache(maxsize=None)
def default_runs(kind, name):
    """(30 steps of the entry with defaults[, 12 steps of it wrapped]) in one compilation."""
    entry = _entry(kind, name)
    drivers = [_driver(build_default(entry), 30)]
    if kind == "optimizer" and name in RUN_WRAPPED:
        drivers.append(_driver(build_wrapped(name), 12))
    return run_both(*drivers)


def assert_same(a, b):
    jax.tree.map(np.testing.assert_array_equal, a, b)


def assert_finite(tree):
    for leaf in jax.tree.leaves(tree):
        assert np.all(np.isfinite(np.asarray(leaf)))


def _takes_opt(fn):
    return takes_optimizers(fn) or "opt" in inspect.signature(fn).parameters


BASE = [n for n in OPTIMIZERS.names() if not _takes_opt(OPTIMIZERS.get(n).value)]  # not wrappers
ALL = [("optimizer", n) for n in OPTIMIZERS.names()] + [("schedule", n) for n in SCHEDULES.names()]


def _entry(kind, name):
    return (OPTIMIZERS if kind == "optimizer" else SCHEDULES).get(name)


@pytest.mark.parametrize("kind,name", ALL, ids=[f"{k}-{n}" for k, n in ALL])
def test_entry_documented_builds_and_runs(kind, name):
    entry = _entry(kind, name)
    doc = inspect.getdoc(entry.value)
    assert doc and entry.summary and len(doc.splitlines()) >= 3  # summary, blank, update rule
    assert entry.cite.strip()
    params = inspect.signature(entry.value).parameters.values()
    if not takes_optimizers(entry.value):  # every parameter has a default
        assert all(p.default is not inspect.Parameter.empty for p in params)
    if kind == "optimizer" and entry.name in BASE:
        assert next(iter(params)).name == "lr"
    assert isinstance(build_default(entry), optax.GradientTransformationExtraArgs)
    (traj, _), *_ = default_runs(kind, name)
    assert_finite(traj)


# --- the same optimiser through Optax directly, non-default hyperparameters, 50 steps -----------

O = lambda name: OPTIMIZERS.get(name).value  # noqa: E731
S = lambda name: SCHEDULES.get(name).value  # noqa: E731
LS = lambda n: optax.scale_by_zoom_linesearch(max_linesearch_steps=n, initial_guess_strategy="one")  # noqa: E731

# name -> (ours, Optax directly); both are zero-argument builders.
SAME = {
    "sgd": (lambda: O("sgd")(2e-2), lambda: optax.sgd(2e-2)),
    "momentum": (lambda: O("momentum")(5e-3, 0.8), lambda: optax.sgd(5e-3, momentum=0.8)),
    "nesterov": (lambda: O("nesterov")(5e-3, 0.8), lambda: optax.sgd(5e-3, momentum=0.8, nesterov=True)),
    "adam": (lambda: O("adam")(2e-3, 0.8, 0.99, 1e-7), lambda: optax.adam(2e-3, b1=0.8, b2=0.99, eps=1e-7)),
    "adamw": (lambda: O("adamw")(2e-3, 0.8, 0.99, 1e-7, 1e-2),
              lambda: optax.adamw(2e-3, b1=0.8, b2=0.99, eps=1e-7, weight_decay=1e-2)),
    "nadam": (lambda: O("nadam")(2e-3, 0.8, 0.99, 1e-7), lambda: optax.nadam(2e-3, b1=0.8, b2=0.99, eps=1e-7)),
    "radam": (lambda: O("radam")(2e-3, 0.8, 0.99, 1e-7, 4.0),
              lambda: optax.radam(2e-3, b1=0.8, b2=0.99, eps=1e-7, threshold=4.0)),
    "adagrad": (lambda: O("adagrad")(2e-2, 0.2, 1e-6),
                lambda: optax.adagrad(2e-2, initial_accumulator_value=0.2, eps=1e-6)),
    "rmsprop": (lambda: O("rmsprop")(2e-3, 0.8, 1e-7), lambda: optax.rmsprop(2e-3, decay=0.8, eps=1e-7)),
    "adabelief": (lambda: O("adabelief")(2e-3, 0.8, 0.99, 1e-12, 1e-12),
                  lambda: optax.adabelief(2e-3, b1=0.8, b2=0.99, eps=1e-12, eps_root=1e-12)),
    "lamb": (lambda: O("lamb")(2e-3, 0.8, 0.99, 1e-5, 1e-2),
             lambda: optax.lamb(2e-3, b1=0.8, b2=0.99, eps=1e-5, weight_decay=1e-2)),
    "lars": (lambda: O("lars")(0.5, 1e-3, 2e-3, 1e-9, 0.8),
             lambda: optax.lars(0.5, weight_decay=1e-3, trust_coefficient=2e-3, eps=1e-9, momentum=0.8)),
    "lion": (lambda: O("lion")(2e-4, 0.8, 0.95, 1e-2),
             lambda: optax.lion(2e-4, b1=0.8, b2=0.95, weight_decay=1e-2)),
    "adan": (lambda: O("adan")(2e-3, 0.9, 0.9, 0.95, 1e-7, 1e-2),
             lambda: optax.adan(2e-3, b1=0.9, b2=0.9, b3=0.95, eps=1e-7, weight_decay=1e-2)),
    "sophia": (lambda: O("sophia")(2e-3, 0.9, 0.95, 1e-7, 1e-3, 0.02, 0.5, 3, 7),
               lambda: optax.contrib.sophia(
                   2e-3, b1=0.9, b2=0.95, eps=1e-7, weight_decay=1e-3, gamma=0.02, clip_threshold=0.5,
                   update_interval=3,
                   hessian_diagonal_fn=optax.contrib.hutchinson_estimator_diag_hessian(jax.random.PRNGKey(7)))),
    "muon": (lambda: O("muon")(1e-2, 0.9, 4, 1e-7, 1e-3),
             lambda: optax.contrib.muon(1e-2, ns_steps=4, beta=0.9, eps=1e-7, weight_decay=1e-3)),
    "schedule_free": (lambda: O("schedule_free")(5e-3, 0.8, 0.99, 1e-7, 1e-3, 5, 1.5),
                      lambda: optax.contrib.schedule_free_adamw(
                          5e-3, warmup_steps=5, b1=0.8, b2=0.99, eps=1e-7, weight_decay=1e-3,
                          weight_lr_power=1.5)),
    "lbfgs": (lambda: O("lbfgs")(0.5, 5, 15), lambda: optax.lbfgs(0.5, memory_size=5, linesearch=LS(15))),
    "chain": (lambda: O("chain")(O("clip_by_global_norm")(0.5), O("adam")(2e-3), O("sgd")(1e-3)),
              lambda: optax.chain(optax.clip_by_global_norm(0.5), optax.adam(2e-3), optax.sgd(1e-3))),
    "clip": (lambda: O("clip")(0.3, O("adam")(2e-3)), lambda: optax.chain(optax.clip(0.3), optax.adam(2e-3))),
    "clip_by_global_norm": (lambda: O("clip_by_global_norm")(0.5, O("adam")(2e-3)),
                            lambda: optax.chain(optax.clip_by_global_norm(0.5), optax.adam(2e-3))),
    "adaptive_grad_clip": (lambda: O("adaptive_grad_clip")(0.05, 1e-2, O("adam")(2e-3)),
                           lambda: optax.chain(optax.adaptive_grad_clip(0.05, eps=1e-2), optax.adam(2e-3))),
    "add_noise": (lambda: O("add_noise")(0.02, 0.6, 3, O("adam")(2e-3)),
                  lambda: optax.chain(optax.add_noise(0.02, 0.6, key=3), optax.adam(2e-3))),
    "lookahead": (lambda: O("lookahead")(O("adam")(2e-3), 4, 0.7, True),
                  lambda: optax.lookahead(optax.adam(2e-3), 4, 0.7, reset_state=True)),
}

SAME_SCHEDULE = {
    "constant": (lambda: S("constant")(3e-3), lambda: optax.constant_schedule(3e-3)),
    "linear": (lambda: S("linear")(3e-3, 30, 1e-4, 5), lambda: optax.linear_schedule(3e-3, 1e-4, 30, 5)),
    "cosine": (lambda: S("cosine")(3e-3, 40, 0.1, 2.0), lambda: optax.cosine_decay_schedule(3e-3, 40, 0.1, 2.0)),
    "warmup_cosine": (lambda: S("warmup_cosine")(3e-3, 10, 40, 1e-4, 1e-5, 1.5),
                      lambda: optax.warmup_cosine_decay_schedule(1e-5, 3e-3, 10, 40, 1e-4, 1.5)),
    "exponential": (lambda: S("exponential")(3e-3, 10, 0.7, 5, True, 5e-4),
                    lambda: optax.exponential_decay(3e-3, 10, 0.7, 5, True, 5e-4)),
    "piecewise": (lambda: S("piecewise")(3e-3, [10, 25], [0.5, 0.1]),
                  lambda: optax.piecewise_constant_schedule(3e-3, {10: 0.5, 25: 0.1})),
    "sgdr": (lambda: S("sgdr")(3e-3, 10, 3, 2, 2, 1e-4),
             lambda: optax.sgdr_schedule([
                 dict(init_value=0.0, peak_value=3e-3, warmup_steps=2, decay_steps=d, end_value=1e-4)
                 for d in (10, 20, 40)])),
}


# The gradient transforms alone are the Optax transform for a chain (the spec's form,
# ``chain(clip_by_global_norm(1), adamw(...))``): the same run as the wrapped form above.
BARE_CHAIN = {
    "clip": lambda: O("chain")(O("clip")(0.3), O("adam")(2e-3)),
    "clip_by_global_norm": lambda: O("chain")(O("clip_by_global_norm")(0.5), O("adam")(2e-3)),
    "adaptive_grad_clip": lambda: O("chain")(O("adaptive_grad_clip")(0.05, 1e-2), O("adam")(2e-3)),
    "add_noise": lambda: O("chain")(O("add_noise")(0.02, 0.6, 3), O("adam")(2e-3)),
}


def test_every_entry_is_compared():
    assert sorted(SAME) == OPTIMIZERS.names()
    assert sorted(SAME_SCHEDULE) == SCHEDULES.names()


def _ref_extra(value, g):  # Optax's own keyword for sophia's objective is ``obj_fn``
    return dict(value=value, grad=g, value_fn=loss_fn, obj_fn=loss_fn)


@pytest.mark.parametrize("name", sorted(SAME))
def test_same_as_optax(name):
    ours, ref = SAME[name]
    if name == "lookahead":
        (traj, state), (ref_traj, _) = run_both(_driver(ours(), 50), _lookahead_ref_driver(ref(), 50))
        assert_same(traj, ref_traj.fast)
        assert_same(final_params(state, jax.tree.map(lambda t: t[-1], traj)),
                    jax.tree.map(lambda t: t[-1], ref_traj.slow))
    else:
        extra = _ref_extra if name == "sophia" else None
        bare = [_driver(BARE_CHAIN[name](), 50)] if name in BARE_CHAIN else []
        (traj, _), (ref_traj, _), *rest = run_both(_driver(ours(), 50), _driver(ref(), 50, extra), *bare)
        assert_same(traj, ref_traj)
        for bare_traj, _ in rest:
            assert_same(bare_traj, ref_traj)
    assert_finite(traj)


@pytest.mark.parametrize("name", sorted(SAME_SCHEDULE))
def test_schedule_same_as_optax(name):
    ours, ref = SAME_SCHEDULE[name]
    steps = jnp.arange(80)
    values = lambda sched: lambda p: (sched(steps), None)  # noqa: E731
    (v, _), (ref_v, _), (traj, _), (ref_traj, _) = run_both(
        values(ours()), values(ref()), _driver(O("adam")(ours()), 50), _driver(optax.adam(ref()), 50))
    np.testing.assert_array_equal(v, ref_v)
    assert len(np.unique(np.asarray(v))) > 1 or name == "constant"
    assert_same(traj, ref_traj)


@pytest.mark.parametrize("name", sorted(BARE_CHAIN))
def test_gradient_transform_arguments(name):
    assert not takes_optimizers(O(name))
    with pytest.raises(TypeError, match="numbers first"):
        O(name)(O("adam")())
    with pytest.raises(TypeError, match="opt must be an optimizer"):
        O(name)(opt=1.0)


def test_piecewise_rejects_mismatched_lists():
    with pytest.raises(ValueError):
        S("piecewise")(1e-3, [10, 20], [0.5])


# --- the extra-args convention reaches every optimiser inside chain and lookahead -------------


@pytest.mark.parametrize("name", BASE)
def test_inside_chain_and_lookahead(name):
    opt = build_wrapped(name)
    assert isinstance(opt, optax.GradientTransformationExtraArgs)
    traj, state = jax.eval_shape(_driver(opt, 3), P0)  # traces update with the runtime's kwargs
    assert jax.tree.structure(final_params(state, P0)) == jax.tree.structure(P0)
    if name in RUN_WRAPPED:
        _, (traj, state) = default_runs("optimizer", name)
        assert_finite(traj)
        assert_finite(final_params(state, jax.tree.map(lambda t: t[-1], traj)))


@pytest.mark.parametrize("name", BASE)
def test_lr_may_be_a_schedule(name):
    opt = O(name)(S("warmup_cosine")(1e-3, 5, 50))
    traj, _ = jax.eval_shape(_driver(opt, 3), P0)  # tracing is enough: a type error fails here
    assert jax.tree.structure(traj) == jax.tree.structure(P0)


def test_schedule_free_final_params():
    (traj, state), (traj2, state2) = run_both(
        _driver(O("schedule_free")(), 30), _driver(O("clip")(0.5, O("schedule_free")()), 30))
    params = jax.tree.map(lambda t: t[-1], traj)
    out = final_params(state, params)
    assert not np.array_equal(out["v"], params["v"])
    assert not np.array_equal(out["w"], params["w"])
    assert_same(out, optax.contrib.schedule_free_eval_params(state, params))
    # found inside a chain too
    state, params = state2, jax.tree.map(lambda t: t[-1], traj2)
    assert_same(final_params(state, params), optax.contrib.schedule_free_eval_params(state[1], params))


def test_final_params_plain_optimiser_is_identity():
    traj, state = run(O("adam")(), 5)
    params = jax.tree.map(lambda t: t[-1], traj)
    assert final_params(state, params) is params


def test_needs_value_fn():
    assert needs_value_fn(O("lbfgs")(), P0)
    assert needs_value_fn(O("sophia")(), P0)
    assert needs_value_fn(O("lookahead")(O("clip")(1.0, O("lbfgs")())), P0)
    assert not needs_value_fn(O("lbfgs")(linesearch_steps=0), P0)
    assert not needs_value_fn(O("chain")(O("adam")(), O("sgd")()), P0)
    assert not needs_value_fn(O("schedule_free")(), P0)
