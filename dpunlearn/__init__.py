"""dpunlearn: certified and differentially private machine unlearning in JAX."""

__version__ = "0.1.0"
