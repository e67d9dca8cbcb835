import optax

from . import OPTIMIZERS


@OPTIMIZERS.register(
    "adabelief",
    cite="Zhuang, Tang, Ding, Tatikonda, Dvornek, Papademetris & Duncan, AdaBelief Optimizer: "
    "Adapting Stepsizes by the Belief in Observed Gradients, NeurIPS 2020",
)
def adabelief(lr=1e-3, b1=0.9, b2=0.999, eps=1e-16, eps_root=1e-16):
    """AdaBelief: Adam whose second moment tracks the deviation of g from its mean.

    m <- b1 m + (1-b1) g;  s <- b2 s + (1-b2) (g-m)^2 + eps_root
    p <- p - lr * m_hat / (sqrt(s_hat) + eps)   (hats bias-corrected as in adam)
    """
    return optax.with_extra_args_support(
        optax.adabelief(lr, b1=b1, b2=b2, eps=eps, eps_root=eps_root)
    )
