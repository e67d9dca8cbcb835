import optax

from . import OPTIMIZERS


@OPTIMIZERS.register(
    "rmsprop",
    cite="Tieleman & Hinton, Lecture 6.5 - rmsprop: Divide the gradient by a running average of its "
    "recent magnitude, COURSERA: Neural Networks for Machine Learning 2012",
)
def rmsprop(lr=1e-3, decay=0.9, eps=1e-8):
    """RMSProp: scale the gradient by a running root-mean-square of past gradients.

    v <- decay v + (1-decay) g^2;  p <- p - lr * g / sqrt(v + eps)
    """
    return optax.with_extra_args_support(optax.rmsprop(lr, decay=decay, eps=eps))
