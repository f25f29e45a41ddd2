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
Certified fine-tuning  nothing (latest release)     n/a (every request is certified alone)
DP extractor + CR head group size k and head β      full retrain only
Exact (retrain, SISA)  rows removed (ε = 0 always)  yes (counts only)
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
  Koloskova, Allouah, Jha, Guerraoui, Koyejo. Certified Unlearning for Neural
  Networks. ICML 2025. https://arxiv.org/abs/2506.06985
"""

from dpunlearn.accounting.currencies._common import *  # noqa: F401,F403
from dpunlearn.accounting.currencies.certified_removal import *  # noqa: F401,F403
from dpunlearn.accounting.currencies.sekhari import *  # noqa: F401,F403
from dpunlearn.accounting.currencies.d2d import *  # noqa: F401,F403
from dpunlearn.accounting.currencies.langevin import *  # noqa: F401,F403
from dpunlearn.accounting.currencies.noisy_sgd import *  # noqa: F401,F403
from dpunlearn.accounting.currencies.dp_extractor import *  # noqa: F401,F403
from dpunlearn.accounting.currencies.finetune import *  # noqa: F401,F403
from dpunlearn.accounting.currencies.exact import *  # noqa: F401,F403
from dpunlearn.accounting.currencies.registry import REGISTRY, Currency, get  # noqa: F401

from dpunlearn.accounting.currencies import (  # noqa: E402
    _common,
    certified_removal,
    d2d,
    dp_extractor,
    exact,
    finetune,
    langevin,
    noisy_sgd,
    sekhari,
)

__all__ = [
    "REGISTRY",
    "Currency",
    "get",
    *_common.__all__,
    *certified_removal.__all__,
    *sekhari.__all__,
    *d2d.__all__,
    *langevin.__all__,
    *noisy_sgd.__all__,
    *dp_extractor.__all__,
    *finetune.__all__,
    *exact.__all__,
]
