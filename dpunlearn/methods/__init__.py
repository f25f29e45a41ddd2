"""Unlearning methods, one module each, all behind one interface (:mod:`.base`).

========================  ==========================================  ==================
factory                   method                                       currency
========================  ==========================================  ==================
``certified_removal``     Guo et al. 2020: loss perturbation + Newton  ``certified_removal``
``sekhari``               Sekhari et al. 2021: Newton + output noise   ``sekhari``
``descent_to_delete``     Neel et al. 2021: projected GD + noise       ``d2d``
========================  ==========================================  ==================

Add a method: write a module with a factory returning
:class:`~dpunlearn.methods.base.Method`, name its currency (an entry of
:data:`dpunlearn.accounting.currencies.REGISTRY`), register the factory in
:data:`FACTORIES` below, and run ``tests/test_methods_interface.py``, which
drives every registered method through the same contract.
"""

from dpunlearn.methods.base import Data, Method
from dpunlearn.methods.certified_removal import certified_removal
from dpunlearn.methods.descent_to_delete import descent_to_delete
from dpunlearn.methods.sekhari import sekhari

FACTORIES = {
    "certified_removal": certified_removal,
    "descent_to_delete": descent_to_delete,
    "sekhari": sekhari,
}

__all__ = [
    "FACTORIES",
    "Data",
    "Method",
    "certified_removal",
    "descent_to_delete",
    "sekhari",
]
