"""Applications on the engine: train, cost, stats, make-eval, eval, score."""
