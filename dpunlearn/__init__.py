"""dpunlearn: certified and differentially private machine unlearning in JAX.

Modules (one concept each):

* :mod:`dpunlearn.losses` — margin losses and the constants certificates assume.
* :mod:`dpunlearn.solvers` — Hessians, Newton fits, certified CG solves, ‖X‖₂ bounds.
* :mod:`dpunlearn.certified` — Guo et al. (2020) loss perturbation + Newton removal.
* :mod:`dpunlearn.accounting` — mechanisms, RDP, calibration, unlearning
  currencies and the crash-safe ledger.
* :mod:`dpunlearn.data` — embedded datasets and the MNIST IDX loader.
* :mod:`dpunlearn.cli` — the ``dpunlearn`` command (``dpunlearn budget ...``).
"""

from dpunlearn import accounting, certified, data, losses, solvers

__version__ = "0.1.0"

__all__ = ["accounting", "certified", "data", "losses", "solvers", "__version__"]
