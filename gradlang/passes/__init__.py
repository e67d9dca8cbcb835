"""The pass pipeline: each pass a pure function ``ir.Program -> ir.Program``, in order.

``gradlang compile F --emit ir:PASS`` prints the IR after the named pass.
"""

from __future__ import annotations

from ..ir import nodes as ir
from .fold_constants import fold_constants
from .inline_functions import inline_functions
from .prune_unused import prune_unused

PIPELINE = [inline_functions, fold_constants, prune_unused]


def pass_names() -> list[str]:
    return [p.__name__ for p in PIPELINE]


def run_passes(program: ir.Program, until: str | None = None) -> ir.Program:
    """Run the pipeline (or its prefix up to and including the pass ``until``)."""
    for p in PIPELINE:
        program = p(program)
        if p.__name__ == until:
            break
    return program
