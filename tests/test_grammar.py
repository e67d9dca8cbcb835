"""Every fragment of LANGUAGE.md, every spec, example and stdlib file parses, and
parse -> unparse -> parse is a fixed point."""

import re

import pytest

from gradlang.errors import GradlangError
from gradlang.syntax import ast
from gradlang.syntax.parser import parse
from gradlang.syntax.unparse import unparse

from .conftest import ROOT, SHARED


def _language_fragments():
    path = SHARED / "LANGUAGE.md"
    if not path.exists():
        return []
    return re.findall(r"```\n(.*?)```", path.read_text(), re.S)


FRAGMENTS = _language_fragments()
FILES = sorted((ROOT / "examples").glob("*.grad")) + sorted((ROOT / "stdlib").glob("*.grad")) + \
    sorted((SHARED / "spec").glob("*.grad"))


@pytest.mark.parametrize("text", FRAGMENTS, ids=[f"language-{i}" for i in range(len(FRAGMENTS))])
def test_language_fragment_parses_and_round_trips(text):
    tree = parse(text)
    assert tree.stmts
    again = parse(unparse(tree))
    assert again == tree
    assert unparse(again) == unparse(tree)


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_file_round_trips(path):
    tree = parse(path.read_text())
    assert parse(unparse(tree)) == tree


def test_language_page_has_fragments():
    if not (SHARED / "LANGUAGE.md").exists():
        pytest.skip("../shared is not beside the project")
    assert len(FRAGMENTS) >= 9


def test_precedence_matches_language_page():
    # loosest first: or, and, not, comparisons, + -, * / @, unary -, ^ (right-assoc), postfix
    e = parse("let a = -x^2 * y + z > 1 and not b or c").stmts[0].value
    assert e.op == "or" and e.left.op == "and"
    cmp = e.left.left
    assert cmp.op == ">" and cmp.left.op == "+"
    prod = cmp.left.left
    assert prod.op == "*" and isinstance(prod.left, ast.UnaryOp) and prod.left.operand.op == "^"
    assert parse("let a = 2^3^2").stmts[0].value.right.op == "^"


def test_newlines_ignored_in_brackets_not_braces():
    p = parse("let a = f(1,\n  2)\nlet b = [1,\n 2]\nsolve {\n steps = 3\n seed = 1\n}")
    assert len(p.stmts) == 3 and len(p.stmts[2].fields) == 2


def test_spans_point_at_source():
    p = parse("const a = 1\nlet bb = a + 2")
    let = p.stmts[1]
    assert (let.span.line, let.span.col) == (2, 1)
    assert (let.value.span.line, let.value.span.col, let.value.span.end_col) == (2, 10, 15)


def test_equality_ignores_spans():
    assert parse("let a = 1 + 2") == parse("\n\n  let   a=1+2  # comment")


@pytest.mark.parametrize("text, where", [("let a = (1 + 2", (1, 9)), ("let a = $", (1, 9)),
                                         ("minimize\n", (1, 9)), ("let a = 'x'", (1, 9))])
def test_syntax_errors_are_located(text, where):
    with pytest.raises(GradlangError) as info:
        parse(text)
    span = info.value.span
    assert (span.line, span.col) == where
    assert info.value.diagnostics[0].help
