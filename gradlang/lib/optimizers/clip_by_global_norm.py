import optax

from . import OPTIMIZERS, gradient_transform


@OPTIMIZERS.register(
    "clip_by_global_norm",
    cite="Pascanu, Mikolov & Bengio, On the difficulty of training recurrent neural networks, ICML 2013",
)
def clip_by_global_norm(max_norm=1.0, opt=None):
    """Rescale the whole gradient to global norm at most ``max_norm`` (before ``opt`` when given).

    g <- g * min(1, max_norm / ||g||_2)   (norm over all parameters);  then opt's update on g
    ``chain(clip_by_global_norm(1.0), adam())`` = ``clip_by_global_norm(1.0, adam())``.
    """
    return gradient_transform("clip_by_global_norm", lambda: optax.clip_by_global_norm(max_norm), opt, max_norm)
