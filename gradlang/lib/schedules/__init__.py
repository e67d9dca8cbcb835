"""Learning-rate schedules over Optax: one entry a file, registered under its file stem.

Each entry is a plain function with explicit parameters and defaults, usable positionally in
declaration order; it returns an Optax schedule, a callable ``step -> value`` that any
optimiser's ``lr`` accepts.  The first parameter is always the (peak) value and step counts
follow, so ``cosine(0.01, 2000)`` decays 0.01 over 2000 steps, ``warmup_cosine(0.01, 100, 2000)``
warms up to 0.01 in 100 steps and decays over the remaining 1900.
"""

from ...registry import Registry

SCHEDULES = Registry("schedule", "gradlang.lib.schedules")
