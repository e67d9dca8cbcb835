"""Each pass: a small program in, the expected IR out, and the same values before and after."""

import jax
import numpy as np
import pytest

from gradlang.backend.build import build
from gradlang.check import check
from gradlang.ir import nodes as ir
from gradlang.ir.visit import walk
from gradlang.passes import PIPELINE, run_passes
from gradlang.passes.fold_constants import fold_constants
from gradlang.passes.inline_functions import inline_functions
from gradlang.passes.prune_unused import prune_unused
from gradlang.source import Source
from gradlang.syntax.parser import parse

PROGRAM = """
dim K = 3
const scale = 2
data X: real[N, K]
param w: real[K] = 0.5
fn f(a, b = 1.0) {
  let t = a * b
  t + b
}
fn g(a, b) = f(b, a)          # swaps names: inlining must not capture
let unused = sum(X)
let z = X @ w
minimize mean(g(z, scale * 0.5)^2) + 0 * K
report r = f(1.0)
"""


def _checked(text=PROGRAM):
    source = Source(text)
    return check(parse(source), source)


def _values(program):
    rng = np.random.default_rng(0)
    data = {"X": rng.normal(size=(5, 3)).astype(np.float32)}
    model = build(program, {"K": 3, "N": 5})
    u = model.init(jax.random.PRNGKey(0), data)
    return [float(model.loss(u, data))] + [float(v) for v in model.reports(u, data).values()]


@pytest.mark.parametrize("pass_", PIPELINE, ids=lambda p: p.__name__)
def test_pass_preserves_values(pass_):
    before = _checked()
    # run the passes before this one, then compare across it
    for p in PIPELINE[: PIPELINE.index(pass_)]:
        before = p(before)
    after = pass_(before)
    assert _values(before) == pytest.approx(_values(after), rel=1e-6)


def test_inline_functions_removes_calls_and_renames_parameters():
    out = inline_functions(_checked())
    assert out.fns == {}
    for o in out.objectives:
        assert not any(isinstance(n, ir.CallFn) for n in walk(o.value))
    names = [n for node in walk(out.objectives[0].value) if isinstance(node, ir.Block) for n, _ in node.bindings]
    assert any(n.startswith("g.a#") for n in names) and any(n.startswith("f.b#") for n in names)


def test_fold_constants_expected_ir():
    out = fold_constants(inline_functions(_checked()))
    # scale * 0.5 -> 1.0 and 0 * K -> 0 (dims are literals after folding)
    lits = [n.value for n in walk(out.objectives[0].value) if isinstance(n, ir.Lit)]
    assert 1.0 in lits
    assert not any(isinstance(n, ir.Ref) and n.kind in ("dim",) for n in walk(out.objectives[0].value))
    term = out.objectives[0].value.args[1]
    assert term == ir.Lit(0)


def test_prune_unused_drops_only_unused_lets():
    out = prune_unused(_checked())
    assert set(out.lets) == {"z"}


def test_pipeline_output_is_stable():
    once = run_passes(_checked())
    twice = run_passes(once)
    assert once.objectives == twice.objectives and once.lets == twice.lets
