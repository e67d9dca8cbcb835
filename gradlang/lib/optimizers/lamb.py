import optax

from . import OPTIMIZERS


@OPTIMIZERS.register(
    "lamb",
    cite="You, Li, Reddi, Hseu, Kumar, Bhojanapalli, Song, Demmel, Keutzer & Hsieh, Large Batch "
    "Optimization for Deep Learning: Training BERT in 76 minutes, ICLR 2020",
)
def lamb(lr=1e-3, b1=0.9, b2=0.999, eps=1e-6, weight_decay=0.0):
    """LAMB: Adam with decoupled weight decay and a layer-wise trust ratio.

    u = m_hat / (sqrt(v_hat) + eps) + weight_decay * p   (moments as in adam)
    p <- p - lr * (||p|| / ||u||) * u   (per parameter array; ratio 1 if either norm is 0)
    """
    return optax.with_extra_args_support(
        optax.lamb(lr, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay)
    )
