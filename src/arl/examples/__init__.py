"""Components of the example experiments in ``experiments/``."""
