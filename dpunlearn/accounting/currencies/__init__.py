"""Unlearning currencies: what each certified-unlearning method spends per request.

Every method certifies the same kind of statement, **(U)**: the model released
after a deletion request is (ε, δ)-indistinguishable from retraining without
the deleted records. What differs is the quantity that accumulates across
requests (``docs/accounting.md`` §1):

=====================  ==========================  =============================
currency               state (a NamedTuple)         reset by a full retrain?
=====================  ==========================  =============================
Guo certified removal  β = Σ residual-norm bounds   yes (fresh b, β ← β_train)
Sekhari et al.         number of deleted points     yes (count ← 0)
Descent-to-Delete      nothing (n shrinks only)     n/a (per-release noise)
Langevin (Rényi)       the requests since retrain   yes (curve ← 0)
Noisy-SGD (W∞)         the W∞ radius Z              yes (Z ← 0)
DP extractor + CR head group size k and head β      full retrain only
Exact (SISA)           rows removed (ε = 0 always)  yes (counts only)
=====================  ==========================  =============================

Each currency is a pure state, an ``*_init`` / ``*_update`` /
``*_reset`` triple and a ``*_report`` returning a :class:`CertificateReport`.
Constants live in frozen config dataclasses validated on construction.
Calibration helpers (smallest σ, largest number of requests, smallest number
of fine-tuning steps) are built on :func:`dpunlearn.accounting.calibration.calibrate`,
which never returns a value on the wrong side of the target.

None of these is the **(D)** ledger (DP of all releases for the records that
remain, which a retrain never resets): see :mod:`dpunlearn.accounting.ledger`.

Everything is host-side float64 NumPy/SciPy; nothing is jitted. Functions over
Rényi orders are vectorised over the order grid (no Python loop over orders).

References:
  Guo, Goldstein, Hannun, van der Maaten. Certified Data Removal from Machine
  Learning Models. ICML 2020. https://arxiv.org/abs/1911.03030
  Sekhari, Acharya, Kamath, Suresh. Remember What You Want to Forget:
  Algorithms for Machine Unlearning. NeurIPS 2021. https://arxiv.org/abs/2103.03279
  Neel, Roth, Sharifi-Malvajerdi. Descent-to-Delete: Gradient-Based Methods for
  Machine Unlearning. ALT 2021. https://arxiv.org/abs/2007.02923
  Chien, Wang, Chen, Li. Langevin Unlearning. NeurIPS 2024.
  https://arxiv.org/abs/2401.10371
  Chien, Wang, Chen, Li. Certified Machine Unlearning via Noisy Stochastic
  Gradient Descent. NeurIPS 2024. https://arxiv.org/abs/2403.17105
  Bourtoule, Chandrasekaran, Choquette-Choo, Jia, Travers, Zhang, Lie,
  Papernot. Machine Unlearning. IEEE S&P 2021. https://arxiv.org/abs/1912.03817
  Mironov. Rényi Differential Privacy. CSF 2017 (Prop. 11, weak triangle
  inequality). https://arxiv.org/abs/1702.07476
"""

from dpunlearn.accounting.currencies._common import *  # noqa: F401,F403
from dpunlearn.accounting.currencies.certified_removal import *  # noqa: F401,F403
from dpunlearn.accounting.currencies.sekhari import *  # noqa: F401,F403
from dpunlearn.accounting.currencies.d2d import *  # noqa: F401,F403
from dpunlearn.accounting.currencies.langevin import *  # noqa: F401,F403
from dpunlearn.accounting.currencies.noisy_sgd import *  # noqa: F401,F403
from dpunlearn.accounting.currencies.dp_extractor import *  # noqa: F401,F403
from dpunlearn.accounting.currencies.exact import *  # noqa: F401,F403
from dpunlearn.accounting.currencies.registry import REGISTRY, Currency, get  # noqa: F401

__all__ = [
    "REGISTRY",
    "Currency",
    "get",
    "CertificateReport",
    "DEFAULT_MAX_ORDER",
    "minimise_over_orders",
    "cr_constant",
    "cr_budget",
    "cr_epsilon",
    "cr_sigma",
    "supported_removals",
    "CertifiedRemovalConfig",
    "CertifiedRemovalState",
    "cr_init",
    "cr_update",
    "cr_reset",
    "cr_report",
    "sekhari_gamma",
    "sekhari_sigma",
    "sekhari_capacity",
    "sekhari_max_deletions",
    "SekhariConfig",
    "SekhariState",
    "sekhari_init",
    "sekhari_update",
    "sekhari_reset",
    "sekhari_report",
    "d2d_contraction",
    "d2d_sensitivity",
    "d2d_sigma",
    "d2d_epsilon",
    "d2d_initial_iterations",
    "d2d_min_iterations",
    "d2d_strong_min_iterations",
    "d2d_strong_iterations",
    "d2d_strong_sigma",
    "D2DConfig",
    "D2DState",
    "d2d_init",
    "d2d_update",
    "d2d_reset",
    "d2d_report",
    "langevin_constants",
    "LangevinConfig",
    "LangevinState",
    "langevin_init",
    "langevin_update",
    "langevin_reset",
    "langevin_rdp",
    "langevin_epsilon",
    "langevin_min_steps",
    "langevin_max_requests",
    "langevin_min_sigma",
    "langevin_report",
    "wsgd_contraction",
    "wsgd_step_radius",
    "WassersteinConfig",
    "WassersteinState",
    "wsgd_init",
    "wsgd_update",
    "wsgd_reset",
    "wsgd_rdp",
    "wsgd_epsilon",
    "wsgd_min_epochs",
    "wsgd_max_requests",
    "wsgd_min_sigma",
    "wsgd_radius",
    "wsgd_report",
    "extractor_head_epsilon",
    "extractor_max_removals",
    "ExtractorHeadConfig",
    "ExtractorHeadState",
    "extractor_init",
    "extractor_update",
    "extractor_reset",
    "extractor_report",
    "ExactConfig",
    "ExactState",
    "exact_from_charge",
    "exact_init",
    "exact_update",
    "exact_reset",
    "exact_report",
]
