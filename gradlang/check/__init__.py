"""The checker: scopes and names, declarations and domains, shapes, solve fields."""

from .program import check

__all__ = ["check"]
