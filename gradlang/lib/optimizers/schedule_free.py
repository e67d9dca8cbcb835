import optax
import optax.contrib

from . import OPTIMIZERS


@OPTIMIZERS.register(
    "schedule_free",
    cite="Defazio, Yang, Mehta, Mishchenko, Khaled & Cutkosky, The Road Less Scheduled, NeurIPS 2024",
)
def schedule_free(lr=2.5e-3, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0, warmup=0,
                  weight_lr_power=2.0):
    """Schedule-free AdamW (optax.contrib.schedule_free_adamw): no decay schedule needed.

    z <- z - lr_t * (g / (sqrt(v_hat) + eps) + weight_decay * y)   (g, v taken at y; no momentum)
    x <- (1 - c) x + c z,  c = lr_t^weight_lr_power / sum_i lr_i^weight_lr_power;  y = b1 x + (1-b1) z
    The run's parameters are y; report x = final_params(state, y).  ``warmup`` > 0 warms lr up
    linearly from 0 (lr must then be a float).
    """
    return optax.contrib.schedule_free_adamw(
        lr, warmup_steps=int(warmup) or None, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay,
        weight_lr_power=weight_lr_power,
    )
