"""Generic traversal of IR expressions: children, a walk, and one bottom-up rewriter driven by a
table ``{NodeType: rule}`` (rules get the node with its children already rewritten)."""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Callable, Iterator

from . import nodes as ir


def _map_field(value, fn):
    if isinstance(value, ir.Node):
        return fn(value)
    if isinstance(value, tuple):
        return tuple(_map_field(v, fn) for v in value)
    return value


def map_children(node: ir.Node, fn: Callable[[ir.Node], ir.Node]) -> ir.Node:
    """The node with ``fn`` applied to each child node (in tuples and (name, node) pairs too)."""
    changes = {}
    for f in fields(node):
        if f.name == "span":
            continue
        old = getattr(node, f.name)
        new = _map_field(old, fn)
        if new is not old:
            changes[f.name] = new
    return replace(node, **changes) if changes else node


def children(node: ir.Node) -> Iterator[ir.Node]:
    found: list[ir.Node] = []
    map_children(node, lambda c: found.append(c) or c)
    return iter(found)


def walk(node: ir.Node) -> Iterator[ir.Node]:
    """Every node below and including ``node``, parents first."""
    yield node
    for c in children(node):
        yield from walk(c)


def rewrite(node: ir.Node, rules: dict[type, Callable[[ir.Node], ir.Node]]) -> ir.Node:
    """Rewrite bottom-up: children first, then the rule for the node's type, if any."""
    node = map_children(node, lambda c: rewrite(c, rules))
    rule = rules.get(type(node))
    return rule(node) if rule else node


def refs(node: ir.Node, kind: str | None = None) -> Iterator[ir.Ref]:
    for n in walk(node):
        if isinstance(n, ir.Ref) and (kind is None or n.kind == kind):
            yield n
