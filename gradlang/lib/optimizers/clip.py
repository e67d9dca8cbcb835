import optax

from . import OPTIMIZERS, gradient_transform


@OPTIMIZERS.register(
    "clip",
    cite="Mikolov, Statistical Language Models Based on Neural Networks, PhD thesis, "
    "Brno University of Technology 2012",
)
def clip(max_delta=1.0, opt=None):
    """Clip each gradient coordinate to [-max_delta, max_delta] (before ``opt`` when given).

    g <- clip(g, -max_delta, max_delta);  then opt's update on g
    ``clip(1.0)`` alone is the transform for a chain: ``chain(clip(1.0), adam())`` = ``clip(1.0, adam())``.
    """
    return gradient_transform("clip", lambda: optax.clip(max_delta), opt, max_delta)
