"""Unlearning methods, one module each, all behind one interface (:mod:`.base`).

========================  ==========================================  ==================
factory                   method                                       currency
========================  ==========================================  ==================
``certified_removal``     Guo et al. 2020: loss perturbation + Newton  ``certified_removal``
``sisa``                  Bourtoule et al. 2021: shards, slices, vote  ``exact``
``dp_extractor``          Guo et al. 2020 §4.3: DP-SGD features + CR   ``dp_extractor``
                          head (group privacy caps the removals)
========================  ==========================================  ==================

Add a method: write a module with a factory returning
:class:`~dpunlearn.methods.base.Method`, name its currency (an entry of
:data:`dpunlearn.accounting.currencies.REGISTRY`), register the factory in
:data:`FACTORIES` below, and run ``tests/test_methods_interface.py``, which
drives every registered method through the same contract.
"""

from dpunlearn.methods.base import Data, Method
from dpunlearn.methods.certified_removal import certified_removal
from dpunlearn.methods.dp_extractor import dp_extractor
from dpunlearn.methods.sisa import sisa

FACTORIES = {
    "certified_removal": certified_removal,
    "dp_extractor": dp_extractor,
    "sisa": sisa,
}

__all__ = ["FACTORIES", "Data", "Method", "certified_removal", "dp_extractor", "sisa"]
