import optax

from . import OPTIMIZERS, gradient_transform


@OPTIMIZERS.register(
    "adaptive_grad_clip",
    cite="Brock, De, Smith & Simonyan, High-Performance Large-Scale Image Recognition Without "
    "Normalization, ICML 2021",
)
def adaptive_grad_clip(clipping=0.01, eps=1e-3, opt=None):
    """Unit-wise adaptive gradient clipping, AGC (before ``opt`` when given).

    g_i <- g_i * min(1, clipping * max(||p_i||, eps) / ||g_i||)   (per unit i);  then opt on g
    ``chain(adaptive_grad_clip(0.01), adam())`` = ``adaptive_grad_clip(0.01, opt=adam())``.
    """
    tx = lambda: optax.adaptive_grad_clip(clipping, eps=eps)  # noqa: E731
    return gradient_transform("adaptive_grad_clip", tx, opt, clipping, eps)
