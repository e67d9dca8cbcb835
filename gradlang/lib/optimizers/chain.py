import optax

from . import OPTIMIZERS


@OPTIMIZERS.register(
    "chain",
    cite="Babuschkin et al., The DeepMind JAX Ecosystem (Optax), 2020 (github.com/google-deepmind/optax)",
)
def chain(*opts):
    """Compose optimisers/transformations: each one's output updates feed the next.

    u_0 = g;  u_i = T_i(u_{i-1});  p <- p + u_n
    Extra update arguments (value, grad, value_fn) reach every member.
    """
    return optax.chain(*opts)
