import optax

from . import OPTIMIZERS


@OPTIMIZERS.register(
    "lbfgs",
    cite="Liu & Nocedal, On the limited memory BFGS method for large scale optimization, "
    "Mathematical Programming 1989",
)
def lbfgs(lr=1.0, memory=10, linesearch_steps=20):
    """L-BFGS with a zoom (strong Wolfe) line search.

    d = -H_t g  (two-loop recursion over the last ``memory`` pairs s = dp, y = dg)
    p <- p + eta_t * lr * d,  eta_t from the zoom line search on value_fn (no search if linesearch_steps=0)
    Needs ``value``, ``grad`` and ``value_fn`` in every update call.
    """
    linesearch = None
    if int(linesearch_steps):
        linesearch = optax.scale_by_zoom_linesearch(
            max_linesearch_steps=int(linesearch_steps), initial_guess_strategy="one"
        )
    return optax.lbfgs(lr, memory_size=int(memory), linesearch=linesearch)
