import optax

from . import OPTIMIZERS


@OPTIMIZERS.register("nadam", cite="Dozat, Incorporating Nesterov Momentum into Adam, ICLR 2016 Workshop")
def nadam(lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
    """NAdam: Adam with a Nesterov look-ahead on the first moment.

    m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2
    p <- p - lr * (b1 m / (1-b1^(t+1)) + (1-b1) g / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
    """
    return optax.with_extra_args_support(optax.nadam(lr, b1=b1, b2=b2, eps=eps))
