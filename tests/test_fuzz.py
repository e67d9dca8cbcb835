"""Fuzzing the front end: mutated programs must compile or fail with a user error.

Seeds are the gallery (``examples/*.grad``), the standard library (``stdlib/*.grad``, also with a
small objective appended so that the checker runs over its functions) and the spec programs
(``../shared/spec/*.grad`` beside the repository, when present).  Each is mutated at the level of
tokens (delete, duplicate, swap, replace), characters (insert random text, replace one), truncated,
or made invalid UTF-8.  ``gradlang.compile`` parses and checks only, so this is quick (~10 s).

The property: compile succeeds, or raises a ``GradlangError`` that is not an ``InternalError``.
Anything else (an ``InternalError``, or any other exception escaping) is a bug in gradlang.

Deterministic: ``derandomize=True`` and no example database, so a failure reproduces on every run.
``KNOWN_CRASHES`` at the end holds minimal programs that crashed the compiler when this file was
written; they are checked with the same strict property, so they fail until the compiler is fixed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gradlang
from gradlang.errors import GradlangError, InternalError

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT.parent / "shared" / "spec"


def _seeds() -> list[tuple[str, str]]:
    paths = sorted((ROOT / "examples").glob("*.grad")) + sorted((ROOT / "stdlib").glob("*.grad"))
    if SPEC.is_dir():
        paths += sorted(SPEC.glob("*.grad"))
    seeds = [(p.name, p.read_text(encoding="utf-8")) for p in paths]
    for p in sorted((ROOT / "stdlib").glob("*.grad")):
        seeds.append((f"{p.name}+objective", p.read_text(encoding="utf-8") +
                      "\nparam w: real[3] = 0\nminimize sum(huber(w - 1)) + sum(logistic(w, 1))\n"))
    return seeds


SEEDS = _seeds()

# identifiers, numbers, strings, comments, newlines, runs of blanks, two-character operators, any char
_TOKEN = re.compile(r'[A-Za-z_][A-Za-z0-9_]*|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|"[^"\n]*"?|#[^\n]*'
                    r"|\n|[ \t]+|==|!=|<=|>=|\+=|->|.", re.S)


def tokens(text: str) -> list[str]:
    """``text`` split into tokens; ``"".join(tokens(text)) == text``."""
    return _TOKEN.findall(text)


def solid(toks: list[str]) -> list[int]:
    """Indices of the tokens that mean something (not blanks, not newlines)."""
    return [i for i, t in enumerate(toks) if not t.isspace()]


def check_compiles_or_user_error(program: str | Path) -> None:
    """The property.  A crash fails with the program's text, so it can be copied as a reproducer."""
    try:
        gradlang.compile(program)
    except InternalError as err:
        shown = program.read_bytes() if isinstance(program, Path) else program
        pytest.fail(f"InternalError on\n{shown!r}\n{err.render()}")
    except GradlangError as err:
        assert err.render()  # a user error: fine, as long as it renders
    except Exception as err:  # noqa: BLE001 - the point of the test
        shown = program.read_bytes() if isinstance(program, Path) else program
        raise AssertionError(f"{type(err).__name__} escaped compile on\n{shown!r}") from err


# 9 strategies x 34 examples ~ 300 programs.
FUZZ = settings(derandomize=True, deadline=None, database=None, max_examples=34,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

# Characters that matter to the grammar, odd ones (NUL, CR, no-break space, BOM, non-ASCII), anything.
nasty = st.one_of(st.sampled_from(list('()[]{},;:=~+-*/@^<>!.#"\'\\\n\t 0123456789_eE$`?%&|')),
                  st.sampled_from(["\x00", "\r", "\u00a0", "\u200b", "\ufeff", "é", "λ", "∑", "😀"]),
                  st.characters())

# Words of the language and odd values, to replace a token with (besides the program's own tokens).
WORDS = ["use", "dim", "const", "data", "param", "fn", "let", "minimize", "maximize", "report", "solve",
         "subject", "lower", "model", "guide", "expect", "via", "over", "not", "and", "or", "None", "inf",
         "nan", "pi", "zeros", "ones", "normal", "uniform", "load", "sum", "mean", "axis", "real", "int",
         "positive", "simplex", "interval", "adam", "steps", "chain", "cosine", "0", "-1", "2.5", "1e40",
         "3000000000", "[]", "[1, 2]", "[[1], [2, 3]]", "()", '"s"']


@st.composite
def seed_tokens(draw):
    """A seed program as tokens, and a position drawn uniformly among its solid tokens."""
    text = draw(st.sampled_from(SEEDS))[1]
    toks = tokens(text)
    idx = solid(toks)
    return toks, idx, draw(st.integers(0, len(idx) - 1))


@st.composite
def seed_text(draw):
    """A seed program's text and a position in it (0..len)."""
    text = draw(st.sampled_from(SEEDS))[1]
    return text, draw(st.integers(0, len(text)))


@FUZZ
@given(case=seed_tokens(), count=st.integers(1, 3))
def test_delete_tokens(case, count):
    toks, idx, k = case
    del toks[idx[k]:idx[k] + count]
    check_compiles_or_user_error("".join(toks))


@FUZZ
@given(case=seed_tokens(), times=st.integers(1, 3))
def test_duplicate_token(case, times):
    toks, idx, k = case
    toks[idx[k]:idx[k] + 1] = [toks[idx[k]]] * (times + 1)
    check_compiles_or_user_error("".join(toks))


@FUZZ
@given(case=seed_tokens(), data=st.data())
def test_swap_tokens(case, data):
    toks, idx, k = case
    i, j = idx[k], idx[data.draw(st.integers(0, len(idx) - 1))]
    toks[i], toks[j] = toks[j], toks[i]
    check_compiles_or_user_error("".join(toks))


@FUZZ
@given(case=seed_tokens(), data=st.data(), word=st.none() | st.sampled_from(WORDS))
def test_replace_token(case, data, word):
    """Replace a token by another token of the same program (say ``const lam = lam``) or a word."""
    toks, idx, k = case
    other = toks[idx[data.draw(st.integers(0, len(idx) - 1))]]
    toks[idx[k]] = other if word is None else word
    check_compiles_or_user_error("".join(toks))


@FUZZ
@given(case=seed_text(), junk=st.lists(nasty, min_size=1, max_size=6))
def test_insert_random_text(case, junk):
    text, i = case
    check_compiles_or_user_error(text[:i] + "".join(junk) + text[i:])


@FUZZ
@given(case=seed_text(), char=nasty)
def test_replace_character(case, char):
    text, i = case
    check_compiles_or_user_error(text[:i] + char + text[i + 1:])


@FUZZ
@given(case=seed_text())
def test_truncate(case):
    text, i = case
    check_compiles_or_user_error(text[:i])


@FUZZ
@given(case=seed_text(),
       junk=st.lists(st.sampled_from([b"\xff", b"\xfe", b"\x80", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80",
                                      b"\xc0\xaf", b"\xf8\x88\x80\x80\x80"]) | st.binary(min_size=1, max_size=4),
                     min_size=1, max_size=3))
def test_non_utf8_bytes(case, junk, tmp_path_factory):
    """Bytes, possibly not UTF-8, in a file: compile(path) must say so (or accept valid UTF-8)."""
    text, i = case
    data = text.encode("utf-8")
    i = min(i, len(data))
    path = tmp_path_factory.mktemp("fuzz") / "mutant.grad"
    path.write_bytes(data[:i] + b"".join(junk) + data[i:])
    check_compiles_or_user_error(path)


@FUZZ
@given(case=seed_tokens(), n=st.integers(1, 4))
def test_delete_a_line(case, n):
    """Delete n whole lines starting at a random one (a declaration disappears, a block loses its end)."""
    toks, idx, k = case
    lines = "".join(toks).split("\n")
    start = k % len(lines)
    check_compiles_or_user_error("\n".join(lines[:start] + lines[start + n:]))


@pytest.mark.parametrize("seed", range(len(SEEDS)), ids=[name for name, _ in SEEDS])
def test_seeds_themselves(seed):
    check_compiles_or_user_error(SEEDS[seed][1])


# ---- known crashes -------------------------------------------------------------------------------
# Minimal programs that made the compiler raise an InternalError (a bug) when this file was written.
# They are NOT expected failures: each must become a located user error (or compile), so this test
# fails until the compiler is fixed.  The comment says what happened.
_P = "param w: real = 0\n"
KNOWN_CRASHES = {
    # KeyError: 'lam' -- a const that refers to itself (the evaluator looks it up before it exists)
    "const_self_reference": "const lam = lam\n" + _P + "minimize w^2",
    # KeyError: 'b' -- a const that refers to a later const (order of evaluation; should be allowed,
    # or be a located 'used before it is declared' error)
    "const_forward_reference": "const a = b\nconst b = 1\n" + _P + "minimize w^2",
    # KeyError: 'H' -- a dim whose value is invalid (first error is collected), then used in a shape
    "bad_dim_then_used": "dim H = -1\nparam v: real[H] = 0\nminimize sumsq(v)",
    # KeyError: 'N' -- an integer dim too big for the evaluator, then used in a shape
    "huge_dim_then_used": "dim N = 99999999999999999999999\nparam v: real[N] = 0\nminimize sumsq(v)",
    # ValueError: 'b' is not in list -- check_lets keeps the 'visiting' mark after reporting a cycle,
    # so the next let of the cycle crashes (any let cycle of length >= 2)
    "let_cycle": "let a = b\nlet b = a\n" + _P + "minimize w^2",
    # NotImplementedError: The 'out' argument to jnp.sum is not supported -- extra positional
    # arguments reach NumPy's dtype/out parameters
    "builtin_extra_positional_args": "param v: real[3] = 0\nminimize sum(v, 0, 1, 2)",
    # TypeError: only 0-dimensional arrays can be converted to Python scalars -- an array const as steps
    "array_const_as_steps": "const n = [1, 2]\n" + _P + "minimize w^2\nsolve { steps = n }",
    # TypeError: only 0-dimensional arrays can be converted to Python scalars -- array domain bound
    "array_domain_bound": "param p: greater([1, 2]) = 1\nminimize p",
    # VisitError (RecursionError inside Lark's transformer; only a bare RecursionError is caught)
    "deep_power_chain": _P + "minimize w^2 + " + "2^" * 500 + "1",
    # AttributeError: DynamicJaxprTracer has no attribute log_prob -- log_prob of a non-distribution
    "log_prob_of_array": _P + "minimize w^2 + log_prob(w, 1)",
    # OverflowError: an integer literal beyond int32 in an expression
    "int_literal_overflow": _P + "minimize w^2 + 3000000000",
    # OverflowError: Python int 3000000000 too large to convert to int32 -- a huge constant index
    "huge_index": "param v: real[3] = 0\nminimize v[3000000000]^2",
}


@pytest.mark.parametrize("name", list(KNOWN_CRASHES))
def test_known_crashes(name):
    check_compiles_or_user_error(KNOWN_CRASHES[name])
