"""``subject to { ... }``: each constraint a comparison of expressions of the parameters.

``label: lhs <= rhs`` (or ``>=``, ``==``; ``<`` and ``>`` read as their closed forms, since an open
set has no projection and no minimiser on its boundary) becomes ``g <= 0`` or ``g == 0`` with
``g = lhs - rhs`` (``rhs - lhs`` for ``>=``), elementwise for vectors.  An unlabelled constraint is
named by its source text, which is what results and messages show.
"""

from __future__ import annotations

from ..errors import NameError_, TypeError_
from ..ir import nodes as ir
from ..ir.plan import ConstraintIR
from ..ir.visit import refs, walk
from ..syntax import ast

_KINDS = {"less_equal": ("le", False), "less": ("le", False), "greater_equal": ("le", True),
          "greater": ("le", True), "equal": ("eq", False)}


def constraints_block(checker, s: ast.SubjectTo) -> list[ConstraintIR]:
    out, labels = [], set()
    for c in s.constraints:
        value = checker.resolve.expr(c.value)
        check_comparison(value, c.value.span, "e.g. budget: sum(x) <= 10")
        if not any(r.kind in ("param", "let") for r in refs(value)):
            raise TypeError_("this constraint does not involve a parameter", c.value.span,
                             "a constraint restricts parameters; a fact about the data belongs in a check of the data")
        if any(isinstance(n, (ir.Expect, ir.VIObjective)) for n in walk(value)):
            raise TypeError_("a constraint must be deterministic", c.value.span, "constrain an expectation's "
                             "parameters instead, or put the expectation in a report")
        kind, g = standard_form(value)
        out.append(ConstraintIR(new_label(checker, c, labels), kind, g, value, span=c.value.span))
    return out


def check_comparison(value, span, example: str) -> None:
    """A located error unless ``value`` is one comparison ``lhs OP rhs`` (OP one of <=, <, >=, >, ==)."""
    if not (isinstance(value, ir.Prim) and value.op in _KINDS and len(value.args) == 2):
        raise TypeError_("a constraint compares two expressions: lhs <= rhs, lhs >= rhs or lhs == rhs",
                         span, example)


def standard_form(value: ir.Prim) -> tuple[str, ir.Expr]:
    """``(kind, g)`` of a comparison in the form ``g <= 0`` (kind "le") or ``g == 0`` ("eq"):
    ``lhs <= rhs`` is ``lhs - rhs <= 0``, ``lhs >= rhs`` is ``rhs - lhs <= 0``."""
    kind, flip = _KINDS[value.op]
    lhs, rhs = value.args
    return kind, ir.Prim("subtract", (rhs, lhs) if flip else (lhs, rhs), span=value.span)


def new_label(checker, c, labels: set) -> str:
    """The constraint's label (written, else its source text), added to ``labels``; a located
    error when the block already has it."""
    label = c.label or _text(checker.source, c.value.span)
    if label in labels:
        raise NameError_(f"constraint '{label}' is named twice", c.span, None)
    labels.add(label)
    return label


def _text(source, span) -> str:
    """The source text of ``span`` (one line or several, joined)."""
    lines = source.text.splitlines()[span.line - 1:span.end_line]
    if not lines:
        return "constraint"
    if len(lines) == 1:
        return lines[0][span.col - 1:span.end_col - 1].strip()
    return " ".join([lines[0][span.col - 1:]] + lines[1:-1] + [lines[-1][:span.end_col - 1]]).strip()
