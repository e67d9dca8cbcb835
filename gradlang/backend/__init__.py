"""IR -> JAX: the evaluator, the compiled model and the optimisation loop."""
