"""gradlang: a small language for differentiable and probabilistic programs."""

__version__ = "0.1.0"
