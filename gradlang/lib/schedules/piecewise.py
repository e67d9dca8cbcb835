import optax

from . import SCHEDULES


@SCHEDULES.register(
    "piecewise",
    cite="He, Zhang, Ren & Sun, Deep Residual Learning for Image Recognition, CVPR 2016",
)
def piecewise(init=1e-3, boundaries=(), scales=()):
    """Step decay: piecewise constant, multiplied by ``scales[i]`` from step ``boundaries[i]`` on.

    lr(t) = init * prod_{i : t >= boundaries[i]} scales[i]
    (optax.piecewise_constant_schedule(init, dict(zip(boundaries, scales))).)
    """
    if len(boundaries) != len(scales):
        raise ValueError(f"piecewise: {len(boundaries)} boundaries but {len(scales)} scales")
    return optax.piecewise_constant_schedule(init, {int(b): s for b, s in zip(boundaries, scales)})
