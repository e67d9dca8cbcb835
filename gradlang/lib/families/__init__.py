"""Variational families: one entry a file.  ``whole(model)`` gives a NumPyro autoguide for the whole
model; ``site(name, support, shape)``, where defined, draws one latent inside a written guide."""

from __future__ import annotations

from ...registry import Registry

FAMILIES = Registry("family", "gradlang.lib.families")
