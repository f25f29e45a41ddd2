"""Unlearning methods, one module each, all behind one interface (:mod:`.base`).

========================  ==========================================  ==================
factory                   method                                       currency
========================  ==========================================  ==================
``certified_removal``     Guo et al. 2020: loss perturbation + Newton  ``certified_removal``
``sekhari``               Sekhari et al. 2021: Newton + output noise   ``sekhari``
``descent_to_delete``     Neel et al. 2021: projected GD + noise       ``d2d``
``langevin``              Chien et al. 2024: projected noisy GD,       ``langevin``
                          unlearning by more noisy GD (Rényi)
``noisy_sgd``             Chien et al. 2024: cyclic projected noisy    ``wsgd``
                          SGD, unlearning by more epochs (W∞)
``certified_finetune``    Koloskova et al. 2025: model clip + noisy    ``finetune``
                          clipped fine-tuning, any network (PABI)
``sisa``                  Bourtoule et al. 2021: shards, slices, vote  ``exact``
``dp_extractor``          Guo et al. 2020 §4.3: DP-SGD features + CR   ``dp_extractor``
                          head (group privacy caps the removals)
``retrain``               retraining from scratch (exact baseline)     ``exact``
``fair_unlearning``       Oesterling et al. 2024: fair (equalized-     ``certified_removal``
                          odds) objective, Newton removal              (paper rule)
========================  ==========================================  ==================

Add a method: write a module with a factory returning
:class:`~dpunlearn.methods.base.Method`, name its currency (an entry of
:data:`dpunlearn.accounting.currencies.REGISTRY`), register the factory in
:data:`FACTORIES` below, and run ``tests/test_methods_interface.py``, which
drives every registered method through the same contract.
"""

from dpunlearn.methods._noisy import LossConstants, linear_constants
from dpunlearn.methods.base import Data, Method
from dpunlearn.methods.certified_removal import certified_removal
from dpunlearn.methods.descent_to_delete import descent_to_delete
from dpunlearn.methods.dp_extractor import dp_extractor
from dpunlearn.methods.fair_unlearning import fair_unlearning
from dpunlearn.methods.finetune import certified_finetune, certified_finetune_plan
from dpunlearn.methods.langevin import langevin, langevin_calibration, langevin_plan
from dpunlearn.methods.noisy_sgd import noisy_sgd, noisy_sgd_calibration, noisy_sgd_plan
from dpunlearn.methods.retrain import retrain
from dpunlearn.methods.sekhari import sekhari
from dpunlearn.methods.sisa import sisa

# The factories share their modules' names, so ``dpunlearn.methods.langevin``
# is the factory; the modules' other public names are re-exported here.
# (``certified_finetune`` lives in ``dpunlearn/methods/finetune.py``.)

FACTORIES = {
    "certified_finetune": certified_finetune,
    "certified_removal": certified_removal,
    "descent_to_delete": descent_to_delete,
    "dp_extractor": dp_extractor,
    "fair_unlearning": fair_unlearning,
    "langevin": langevin,
    "noisy_sgd": noisy_sgd,
    "retrain": retrain,
    "sekhari": sekhari,
    "sisa": sisa,
}

__all__ = [
    "FACTORIES",
    "Data",
    "LossConstants",
    "Method",
    "certified_finetune",
    "certified_finetune_plan",
    "certified_removal",
    "descent_to_delete",
    "dp_extractor",
    "fair_unlearning",
    "langevin",
    "langevin_calibration",
    "langevin_plan",
    "linear_constants",
    "noisy_sgd",
    "noisy_sgd_calibration",
    "noisy_sgd_plan",
    "retrain",
    "sekhari",
    "sisa",
]
