"""Hardening (issue 9): each test here failed on the code the issue started from.

Item numbers refer to issue 9; numeric checks use a reference (scipy, NumPyro, closed form)."""

from __future__ import annotations

import pytest

import gradlang
from gradlang.errors import GradlangError

# ---- item 6: an expect block's value must be a scalar, found by `gradlang check` -------------

GUIDED = """data x: real[N]
model {
  mu ~ normal(0, 10)
  x ~ normal(mu, 1)
}
guide {
  param m: real[2] = 0
  mu ~ normal(m[0], 1)
}
"""


def test_expect_value_after_a_guide_draw_must_be_a_scalar():
    """After ``z ~ guide`` the value is checked too: logp/logq are scalars, a param vector is not."""
    with pytest.raises(GradlangError) as info:
        gradlang.compile(GUIDED + "maximize expect(particles = 2) {\n  z ~ guide\n"
                                  "  logp(model, z) - logq(guide, z) + m\n}\n")
    err = info.value
    assert "the last line of an expect block must be a real scalar, not real[2]" in err.message
    assert (err.span.line, err.span.col) == (12, 3)
    # the scalar form checks, and a scalar built from a nested expect does too
    gradlang.compile(GUIDED + "maximize expect(particles = 2) {\n  z ~ guide\n  logp(model, z) - logq(guide, z)\n}\n")
    gradlang.compile("param t: real[2] = 0\nmaximize expect(particles = 2) {\n  a ~ normal(t[0], 1)\n"
                     "  a + expect(particles = 2) { b ~ normal(t[1], 1); b^2 }\n}\n")


# ---- item 7: a top-level let of data alone on the left of `~` is an observed site ------------

def _log_joint(prog, data: dict, params: dict, latents: dict) -> float:
    """The model's log joint density at fixed values, as NumPyro computes it from the model."""
    import jax.numpy as jnp
    import numpyro

    model, arrays = prog.bind(data)
    arrays = {k: jnp.asarray(v) for k, v in arrays.items()}
    lp, _ = numpyro.infer.util.log_density(model.ppl.model_fn, (arrays, params), {},
                                           {k: jnp.float32(v) for k, v in latents.items()})
    return float(lp)


LOG_RESPONSE = """data y: real[N]
let ly = log(y)
param s: positive = 0.7
model {{
  mu ~ normal(0, 5)
  {left} ~ normal(mu, s)
}}
guide = mean_field
maximize elbo(particles = 4)
"""


def test_observed_top_level_let_of_data_has_the_log_density_of_its_value():
    import jax.numpy as jnp
    import numpy as np
    from scipy import stats

    y = np.random.default_rng(0).lognormal(0.3, 0.7, 20).astype(np.float32)
    prog = gradlang.compile(LOG_RESPONSE.format(left="ly"))
    for mu, s in [(0.3, 0.7), (-1.2, 2.5)]:
        lp = _log_joint(prog, {"y": y}, {"s": jnp.float32(s)}, {"mu": mu})
        log_y = np.log(y.astype(np.float64))
        expected = stats.norm.logpdf(mu, 0, 5) + stats.norm.logpdf(log_y, mu, s).sum()
        np.testing.assert_allclose(lp, expected, rtol=1e-5)
        # the same as the lognormal density of y itself, less its Jacobian term -sum(log y)
        lognormal = stats.norm.logpdf(mu, 0, 5) + stats.lognorm.logpdf(y, s=s, scale=np.exp(mu)).sum()
        np.testing.assert_allclose(lp, lognormal + log_y.sum(), rtol=1e-5)


def test_observed_top_level_let_declared_after_the_model_through_other_lets_and_minibatched():
    import jax.numpy as jnp
    import numpy as np
    from scipy import stats

    prog = gradlang.compile("data y: real[N]\nparam s: positive = 0.7\nmodel {\n  mu ~ normal(0, 5)\n"
                            "  ly ~ normal(mu, s)\n}\nguide = mean_field\nmaximize elbo(particles = 4)\n"
                            "solve { batch = 5 }\nlet ly = centred - 1\nlet centred = log(y) + 1\n")
    y = np.random.default_rng(1).lognormal(0.3, 0.7, 20).astype(np.float32)
    model, arrays = prog.bind({"y": y})
    rows = {"y": jnp.asarray(y[:5])}  # one minibatch: the observed site is scaled by N / batch = 4
    lp, _ = __import__("numpyro").infer.util.log_density(model.ppl.model_fn, (rows, {"s": jnp.float32(0.7)}),
                                                         {}, {"mu": jnp.float32(0.3)})
    expected = stats.norm.logpdf(0.3, 0, 5) + 4 * stats.norm.logpdf(np.log(y[:5].astype(np.float64)), 0.3, 0.7).sum()
    np.testing.assert_allclose(float(lp), expected, rtol=1e-5)


def test_observed_top_level_let_of_a_param_is_a_located_error():
    with pytest.raises(GradlangError) as info:
        gradlang.compile(LOG_RESPONSE.format(left="ly").replace("let ly = log(y)", "let ly = log(y) * s"))
    err = info.value
    assert "'ly' is a let that depends on param 's'" in err.message and "declared twice" not in err.render()
    assert (err.span.line, err.span.col, err.span.end_col) == (6, 3, 5)


# ---- item 8: a narrowed latent has the truncated density, normaliser included ----------------

NARROWED = """data x: real[N]
param mu: real = 0
model {{
  s: {domain} ~ {dist}
  x ~ normal(0, s)
}}
guide = mean_field
maximize elbo(particles = 2)
"""


def _joint_and_grad(src: str, x, mu: float, s):
    """The model's log joint at latent ``s`` and param ``mu``, and its derivative in ``mu``."""
    import jax
    import jax.numpy as jnp
    import numpyro

    prog = gradlang.compile(src)
    model, arrays = prog.bind({"x": x})
    arrays = {k: jnp.asarray(v) for k, v in arrays.items()}

    def lp(m):
        return numpyro.infer.util.log_density(model.ppl.model_fn, (arrays, {"mu": m}), {},
                                              {"s": jnp.asarray(s, jnp.float32)})[0]

    value, grad = jax.value_and_grad(lp)(jnp.float32(mu))
    return float(value), float(grad)


def _fd(f, mu, h=1e-5):
    return (f(mu + h) - f(mu - h)) / (2 * h)


@pytest.mark.parametrize("mu", [-1.5, 0.0, 0.8, 3.0])
def test_positive_normal_latent_is_the_truncated_normal(mu):
    import numpy as np
    from scipy import stats

    x = np.array([0.5, -1.0, 2.0], np.float32)
    for s in (0.3, 1.7):
        def ref(m):  # scipy's truncated normal on (0, inf), and the observed site
            return stats.truncnorm.logpdf(s, (0 - m) / 2, np.inf, loc=m, scale=2) + \
                stats.norm.logpdf(x.astype(np.float64), 0, s).sum()

        value, grad = _joint_and_grad(NARROWED.format(domain="positive", dist="normal(mu, 2)"), x, mu, s)
        np.testing.assert_allclose(value, ref(mu), rtol=1e-5)
        np.testing.assert_allclose(grad, _fd(ref, mu), rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("mu", [0.2, 1.4])  # not at the laplace cdf's kink (mu = 1)
def test_narrowed_latents_of_other_bases_and_domains(mu):
    """An interval domain for a student_t (NumPyro's truncation), a gamma narrowed through its cdf,
    a vector latent (one normaliser per coordinate); all against scipy."""
    import numpy as np
    from scipy import stats

    x = np.array([0.5, -1.0, 2.0], np.float32)
    obs = stats.norm.logpdf(x.astype(np.float64), 0, 1.3).sum()
    cases = [
        ("interval(0.5, 4)", "student_t(3, mu, 1.5)", 1.3,
         lambda m: stats.t.logpdf(1.3, 3, m, 1.5) - np.log(stats.t.cdf(4, 3, m, 1.5) - stats.t.cdf(0.5, 3, m, 1.5))),
        ("interval(0.5, 4)", "gamma(2 + mu, 1)", 1.3,
         lambda m: stats.gamma.logpdf(1.3, 2 + m) - np.log(stats.gamma.cdf(4, 2 + m) - stats.gamma.cdf(0.5, 2 + m))),
        ("greater(1)", "laplace(mu, 0.5)", 1.3,
         lambda m: stats.laplace.logpdf(1.3, m, 0.5) - np.log(stats.laplace.sf(1, m, 0.5))),
    ]
    for domain, dist, s, prior in cases:
        value, grad = _joint_and_grad(NARROWED.format(domain=domain, dist=dist), x, mu, s)
        np.testing.assert_allclose(value, prior(mu) + obs, rtol=1e-5, err_msg=dist)
        np.testing.assert_allclose(grad, _fd(prior, mu), rtol=2e-3, atol=1e-4, err_msg=dist)
    # a vector latent: the sum of three truncated normals
    src = NARROWED.format(domain="positive[3]", dist="normal(mu, 2)").replace("normal(0, s)", "normal(0, s[0])")
    s3 = np.array([1.3, 0.2, 2.5])
    value, grad = _joint_and_grad(src, x, mu, s3)

    def ref(m):
        return stats.truncnorm.logpdf(s3, -m / 2, np.inf, loc=m, scale=2).sum() + \
            stats.norm.logpdf(x.astype(np.float64), 0, 1.3).sum()

    np.testing.assert_allclose(value, ref(mu), rtol=1e-5)
    np.testing.assert_allclose(grad, _fd(ref, mu), rtol=1e-3, atol=1e-5)


# ---- item 10: non-finite data are a located error at load, not "non-finite at step 1" --------

def test_non_finite_data_from_a_csv_is_a_located_error_on_the_command_line(tmp_path, capsys):
    from gradlang.cli import main

    src = tmp_path / "reg.grad"
    src.write_text("data X: real[N, D]\ndata y: real[N]\nparam w: real[D] = 0\nminimize mean((X @ w - y)^2)\n")
    (tmp_path / "reg.csv").write_text("X0,X1,y\n1,2,3\n4,5,inf\n7,8,9\n")
    code = main(["run", str(src), "--data", str(tmp_path / "reg.csv"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert f"{src}:2:1: error: data 'y' has inf at y[1]" in err and "non-finite at step" not in err
    # the matrix built from csv columns is checked too, naming its own index
    (tmp_path / "reg.csv").write_text("X0,X1,y\n1,2,3\n4,nan,6\n7,8,9\n")
    code = main(["run", str(src), "--data", str(tmp_path / "reg.csv"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and f"{src}:1:1: error: data 'X' has nan at X[1, 1]" in err, err


# ---- item 11: a file that is not UTF-8 gets file:line:col of its first bad byte --------------

def test_a_file_that_is_not_utf8_is_located_at_its_first_bad_byte(tmp_path, capsys):
    from gradlang.cli import main

    src = tmp_path / "latin.grad"
    # CRLF line ends, and a latin-1 e-acute in a comment on line 2: column 6 of that line
    src.write_bytes("param w: real = 0\r\n# café au lait\r\nminimize (w - 1)^2\n".encode("latin-1"))
    with pytest.raises(GradlangError) as info:
        gradlang.compile(str(src))
    err = info.value
    assert (err.span.line, err.span.col) == (2, 6)
    assert "not UTF-8" in err.message and "0xe9" in err.message
    assert main(["check", str(src)]) == 1
    out = capsys.readouterr().err
    assert out.startswith(f"{src}:2:6: error: the file is not UTF-8 text") and "help: " in out
    assert "2 | # caf\ufffd au lait" in out  # the line, with the bad byte shown as U+FFFD
    # a BOM and multi-byte characters before the bad byte count as one column each
    src.write_bytes("\ufeffparam w: real = 0  # über\nminimize w^2 # ".encode("utf-8") + b"\xff\n")
    with pytest.raises(GradlangError) as info:
        gradlang.compile(str(src))
    assert (info.value.span.line, info.value.span.col) == (2, 16)


# ---- item 12: `gradlang list` with no kind lists the kinds; the README names them all ----------

def test_list_without_a_kind_lists_the_kinds(capsys):
    import re
    from pathlib import Path

    from gradlang.cli import main
    from gradlang.listing import KINDS, listing

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for kind in KINDS:
        rows = listing(kind)
        assert rows, kind
        assert re.search(rf"{kind}\s.*\s{len(rows)}\s", out), (kind, out)  # the kind and its count
        assert main(["list", kind]) == 0
        capsys.readouterr()
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    row = next(line for line in readme.splitlines() if line.startswith("| `gradlang list"))
    assert "`gradlang list`" in row or "gradlang list [KIND]" in row
    for kind in KINDS:
        assert f"`{kind}`" in row, kind


# ---- item 13: a bug of gradlang's own inside the evaluator is internal (exit 2), not the user's --

@pytest.mark.parametrize("exc", [ZeroDivisionError, AssertionError, KeyError, AttributeError])
def test_an_exception_raised_in_gradlangs_own_code_is_an_internal_error(exc, tmp_path, monkeypatch, capsys):
    from gradlang.cli import main
    from gradlang.lib import builtins

    def broken(x):  # a built-in of gradlang's own with a bug
        raise exc("boom")

    monkeypatch.setitem(builtins.FUNCTIONS, "sumsq", broken)
    src = tmp_path / "p.grad"
    src.write_text("param w: real[3] = 1\nminimize sumsq(w)\nsolve { steps = 2 }\n")
    for command in (["check", str(src)], ["run", str(src), "--quiet"]):
        code = main(command)
        err = capsys.readouterr().err
        assert code == 2, err
        assert "bug in gradlang" in err and "cannot apply" not in err, err


@pytest.mark.parametrize("exc", [KeyError, AttributeError])
def test_a_bug_in_an_optimizer_entry_is_an_internal_error(exc, tmp_path, monkeypatch, capsys):
    # the optimizer builder and its one traced update used to turn any exception into "cannot build"
    from gradlang.check import config
    from gradlang.cli import main
    from gradlang.lib.optimizers import OPTIMIZERS

    from dataclasses import replace

    def broken(lr=0.001):  # adam's signature, and a bug inside
        raise exc("boom")

    monkeypatch.setitem(OPTIMIZERS._entries, "adam", replace(OPTIMIZERS.get("adam"), value=broken))
    config._VALID_OPTIMIZERS.clear()
    src = tmp_path / "p.grad"
    src.write_text("param w: real[3] = 1\nminimize sumsq(w)\nsolve { optimizer = adam(lr = 0.1) }\n")
    code = main(["check", str(src)])
    err = capsys.readouterr().err
    assert code == 2 and "bug in gradlang" in err, err


@pytest.mark.parametrize("expr, message", [
    ("sum(arange(0, 5, 0) * w[0])", "cannot apply arange"),   # the library's ZeroDivisionError
    ("sum(glu(w))", "cannot apply glu"),                       # the library's assert: an even axis
    ("sum(reshape(w, 7))", "cannot apply reshape"),              # a TypeError of a shape rule
    ("log_prob(3, w)", "log_prob needs a distribution first"),
    ("sum(w[0:2] + w)", "cannot add real[2] and real[3]"),
])
def test_a_library_refusing_the_programs_values_stays_a_located_user_error(expr, message, tmp_path, capsys):
    from gradlang.cli import main

    src = tmp_path / "p.grad"
    src.write_text(f"param w: real[3] = 1\nminimize {expr}\n")
    assert main(["check", str(src)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{src}:2:") and message in err, err


# ---- item 4: --out R.npz writes a guide family's tree-valued parameters, one array per leaf -----

def test_out_npz_writes_tree_valued_flow_parameters(tmp_path, capsys):
    import jax
    import numpy as np

    from gradlang.cli import main

    src = tmp_path / "flow.grad"
    src.write_text("data x: real[N]\nmodel {\n  mu: real[2] ~ normal(0, 10)\n  x ~ normal(mu[0] + mu[1], 1)\n}\n"
                   "guide = flow(layers = 1)\nmaximize elbo(particles = 2)\nsolve { steps = 5 }\n")
    np.savez(tmp_path / "d.npz", x=np.arange(5.0))
    out = tmp_path / "r.npz"
    code = main(["run", str(src), "--data", str(tmp_path / "d.npz"), "--out", str(out), "--quiet"])
    assert code == 0, capsys.readouterr().err
    saved = np.load(out)
    result = gradlang.compile(str(src)).fit(data=str(tmp_path / "d.npz"))  # the same seed: the same run
    expected = {}
    for name, value in result.params.items():
        for path, leaf in jax.tree_util.tree_flatten_with_path(value)[0]:
            key = "/".join(str(getattr(p, "idx", getattr(p, "key", p))) for p in path)
            expected[f"params/{name}" + (f"/{key}" if key else "")] = np.asarray(leaf)
    assert any(k.count("/") > 1 for k in expected)  # the flow's weights are a tree
    assert sorted(k for k in saved.files if k.startswith("params/")) == sorted(expected)
    for key, leaf in expected.items():
        np.testing.assert_allclose(saved[key], leaf, rtol=1e-6, err_msg=key)
    np.testing.assert_allclose(saved["objective"], result.objective, rtol=1e-6)
