"""The persistent compilation cache (gradlang/cache.py): the command line's second run loads what the
first compiled, the loop's chunk compiled on the worker thread included, and gives the same result
bit for bit; ``--no-cache`` writes nothing; a cache directory the user configured for JAX is kept.

What is asserted is what JAX reports (``jax_log_compiles``: a line "Persistent compilation cache hit
for 'jit_NAME'" for each executable loaded from disk) and the files in the directory, never a time.
"""

import json
import os
import subprocess
import sys

import pytest

from gradlang import cache
from gradlang.cli import parser

from .conftest import ROOT

EXAMPLE = str(ROOT / "examples" / "lasso_diabetes.grad")  # fista: an init compile, the worker's chunk
HIT = "Persistent compilation cache hit for '"


def gradlang_run(tmp_path, name, *flags, **env):
    """``gradlang run EXAMPLE --quiet --out NAME.json`` in a fresh process, JAX logging its compiles:
    (the result without its wall time, the executables loaded from the cache, the ones compiled)."""
    environ = {k: v for k, v in os.environ.items()
               if k not in ("GRADLANG_CACHE", "GRADLANG_CACHE_DIR", "JAX_COMPILATION_CACHE_DIR")}
    environ.update(JAX_PLATFORMS="cpu", JAX_LOG_COMPILES="1", **env)
    out = tmp_path / f"{name}.json"
    proc = subprocess.run([sys.executable, "-m", "gradlang.cli", "run", EXAMPLE, "--quiet", "--out", str(out),
                           *flags], check=False, env=environ, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    result.pop("seconds")
    lines = proc.stderr.splitlines()
    hits = [line[len(HIT):].split("'")[0] for line in lines if line.startswith(HIT)]
    compiled = [line for line in lines if line.startswith("Compiling ")]
    return result, hits, compiled


def entries(folder):
    return sorted(p.name for p in folder.glob("*-cache")) if folder.exists() else []


def test_second_run_loads_every_executable_from_the_cache_and_agrees_bit_for_bit(tmp_path):
    folder = tmp_path / "cache"
    first, first_hits, first_compiled = gradlang_run(tmp_path, "first", GRADLANG_CACHE_DIR=str(folder))
    assert "jit__chunk" not in first_hits and len(first_hits) < len(first_compiled)  # (an op compiled twice
    # in one process, in two JAX contexts, finds its first compile on disk)
    written = entries(folder)
    # the loop's chunk (compiled on the worker thread) and the solver's init are among them
    assert any(n.startswith("jit__chunk-") for n in written), written
    assert list(folder.glob("gradlang-parser-*.lark")), "the parser's tables are cached too"

    second, hits, compiled = gradlang_run(tmp_path, "second", GRADLANG_CACHE_DIR=str(folder))
    assert "jit__chunk" in hits
    assert len(hits) == len(compiled), "every executable of the second run comes from the cache"
    assert entries(folder) == written, "nothing new to write"

    cold, cold_hits, _ = gradlang_run(tmp_path, "cold", "--no-cache", GRADLANG_CACHE_DIR=str(tmp_path / "unused"))
    assert cold_hits == [] and not (tmp_path / "unused").exists(), "--no-cache reads and writes nothing"
    assert second == cold == first  # loaded executables give the freshly compiled ones' numbers exactly
    assert first["params"]["w"] != [0.0] * len(first["params"]["w"])


def test_a_cache_directory_configured_for_jax_is_kept(tmp_path):
    theirs, ours = tmp_path / "theirs", tmp_path / "ours"
    gradlang_run(tmp_path, "r", GRADLANG_CACHE_DIR=str(ours), JAX_COMPILATION_CACHE_DIR=str(theirs),
                 JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    assert any(n.startswith("jit__chunk-") for n in entries(theirs))
    assert entries(ours) == []


def test_importing_gradlang_leaves_jax_config_alone():
    import jax

    import gradlang

    assert gradlang.use_compilation_cache is cache.use_compilation_cache  # the API's opt-in
    assert jax.config.jax_compilation_cache_dir is None and cache.active_dir() is None


def test_cache_directory_and_switches(monkeypatch, tmp_path):
    for name in ("GRADLANG_CACHE_DIR", "XDG_CACHE_HOME", "GRADLANG_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.default_dir() == tmp_path / "home" / ".cache" / "gradlang" / "xla"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.default_dir() == tmp_path / "xdg" / "gradlang" / "xla"
    monkeypatch.setenv("GRADLANG_CACHE_DIR", str(tmp_path / "mine"))
    assert cache.default_dir() == tmp_path / "mine"

    assert not cache.disabled_by_environment()
    for off in ("0", "off", "False"):
        monkeypatch.setenv("GRADLANG_CACHE", off)
        assert cache.disabled_by_environment()
        assert cache.for_command_line(no_cache=False) is None
    monkeypatch.setenv("GRADLANG_CACHE", "1")
    assert not cache.disabled_by_environment()
    assert cache.for_command_line(no_cache=True) is None
    assert not (tmp_path / "mine").exists() and cache.active_dir() is None


def test_a_directory_that_cannot_be_made_turns_the_cache_off_with_a_note(monkeypatch, tmp_path, capsys):
    import jax

    (tmp_path / "file").write_text("")
    monkeypatch.setenv("GRADLANG_CACHE_DIR", str(tmp_path / "file" / "xla"))
    monkeypatch.setenv("GRADLANG_CACHE", "1")
    assert cache.for_command_line(no_cache=False) is None
    assert "note: compilation cache off" in capsys.readouterr().err
    assert jax.config.jax_compilation_cache_dir is None and cache.active_dir() is None


@pytest.mark.parametrize("argv, off", [(["run", "f.grad"], False), (["run", "f.grad", "--no-cache"], True),
                                       (["--no-cache", "run", "f.grad"], True), (["check", "f.grad", "--no-cache"], True),
                                       (["compile", "f.grad", "--no-cache"], True)])
def test_no_cache_flag_before_or_after_the_command(argv, off):
    assert parser().parse_args(argv).no_cache is off


def test_constant_initial_values_are_made_on_the_host_without_compiling(caplog):
    """A first fit's one-off eager ops cost a compile each (~0.03-0.2 s on a busy CPU): the initial
    values (a constant broadcast to the parameter's shape and checked against its domain, zeros where
    no init is written) are made with numpy instead.  Shapes unlike other tests', so that an op some
    earlier test compiled in this process cannot hide one."""
    import logging

    import jax
    import numpy as np

    import gradlang

    program = gradlang.compile("""
data y: real[N, K]
param w: real[N, K] = 0.25
param b: real[K] = -1
param v: real[N, K]
minimize sumsq(w - y) + sumsq(b) + sumsq(v)
""")
    model, arrays = program.bind({"y": np.ones((13, 3))})
    key = jax.random.PRNGKey(0)
    caplog.clear()
    with jax.log_compiles(), caplog.at_level(logging.WARNING):
        u = model.init(key, arrays)
    assert [r.getMessage()[:60] for r in caplog.records if r.getMessage().startswith("Compiling")] == []
    expected = {"w": np.full((13, 3), 0.25), "b": np.full(3, -1.0), "v": np.zeros((13, 3))}
    for name, value in expected.items():
        assert isinstance(u[name], jax.Array) and u[name].dtype == np.float32
        np.testing.assert_array_equal(np.asarray(u[name]), value)


@pytest.mark.parametrize("domain, init, constraint", [
    ("positive[3]", "2", "positive"), ("simplex[3]", "[0.2, 0.3, 0.5]", "simplex"),
    ("corr_cholesky[2, 2]", "[[1, 0], [0.6, 0.8]]", "corr_cholesky"), ("interval(1, 4)", "5", None),
    ("ordered[3]", "[3, 2, 1]", None), ("positive_definite[2, 2]", "[[1, 2], [2, 1]]", None)])
def test_initial_values_made_on_the_host_in_each_domain(domain, init, constraint):
    """Checked on the host, a constant init still lands where NumPyro's bijection puts it (the
    reference: ``biject_to(constraint).inv`` of the value, computed here by NumPyro), and one
    outside its domain is still the located error."""
    import jax
    import numpy as np
    from numpyro.distributions import constraints
    from numpyro.distributions.transforms import biject_to

    import gradlang

    program = gradlang.compile(f"param p: {domain} = {init}\nminimize sum(p)\n")
    model, arrays = program.bind(None)
    if constraint is None:
        with pytest.raises(gradlang.GradlangError, match=r"<string>:1:\d+: error: the initial value of p is "
                                                         r"outside its domain"):
            model.init(jax.random.PRNGKey(0), arrays)
        return
    value = np.array(json.loads(init), np.float32) * np.ones(model.shape("p"), np.float32)
    expected = biject_to(getattr(constraints, constraint)).inv(value)
    np.testing.assert_allclose(np.asarray(model.init(jax.random.PRNGKey(0), arrays)["p"]), expected, rtol=1e-6, atol=1e-7)


def test_the_parsers_tables_are_kept_by_default_and_loaded_not_built(monkeypatch, tmp_path):
    """The API keeps the parser's tables without ``use_compilation_cache()`` (they are the
    compiler's own, not a program's); the next build loads them (the LALR analysis never runs);
    ``GRADLANG_CACHE=0`` and the command line's ``--no-cache`` keep nothing."""
    from lark.parsers import lalr_analysis

    import gradlang
    from gradlang.syntax import parser as syntax

    monkeypatch.delenv("GRADLANG_CACHE", raising=False)
    monkeypatch.setenv("GRADLANG_CACHE_DIR", str(tmp_path / "c"))
    monkeypatch.setitem(cache._active, "off", False)
    syntax._build.cache_clear()
    try:
        gradlang.compile("param x: real = 0\nminimize (x - 1)^2\n")
        (kept,) = (tmp_path / "c").glob("gradlang-parser-*.lark")
        assert cache.active_dir() is None  # XLA's executables: still the API's opt-in
        syntax._build.cache_clear()

        def no_analysis(*args, **kwargs):
            raise AssertionError("the tables were built, not loaded")

        with monkeypatch.context() as m:
            m.setattr(lalr_analysis.LALR_Analyzer, "compute_lalr", no_analysis)
            assert gradlang.compile("param x: real = 0\nminimize (x - 2)^2\n").fit().params["x"] == pytest.approx(2, abs=1e-3)
        monkeypatch.setenv("GRADLANG_CACHE", "0")
        assert cache.parser_cache_file("grammar") is None
        monkeypatch.setenv("GRADLANG_CACHE", "1")
        assert cache.parser_cache_file("grammar") is not None
        cache.for_command_line(no_cache=True)
        assert cache.parser_cache_file("grammar") is None
    finally:
        syntax._build.cache_clear()
