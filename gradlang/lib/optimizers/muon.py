import optax
import optax.contrib

from . import OPTIMIZERS


@OPTIMIZERS.register(
    "muon",
    cite="Jordan, Jin, Boza, You, Cesista, Newhouse & Bernstein, Muon: An optimizer for hidden "
    "layers in neural networks, 2024 (kellerjordan.github.io/posts/muon)",
)
def muon(lr=0.02, beta=0.95, ns_steps=5, eps=1e-8, weight_decay=0.0):
    """Muon: momentum orthogonalised by Newton-Schulz iterations, for matrix parameters.

    m <- beta m + (1-beta) g;  O = NewtonSchulz_{ns_steps}(beta m_hat + (1-beta) g_hat)  (~ U V^T)
    p <- p - lr * (sqrt(max(1, fan_out/fan_in)) O + weight_decay * p)   for 2-D parameters;
    every other parameter uses adamw(lr, 0.9, 0.999, eps, weight_decay=0)   (Optax's split)
    """
    return optax.with_extra_args_support(
        optax.contrib.muon(lr, ns_steps=int(ns_steps), beta=beta, eps=eps, weight_decay=weight_decay)
    )
