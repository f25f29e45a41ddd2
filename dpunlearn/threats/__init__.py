"""Malicious deletion requests: attacks that use unlearning as their lever.

==========================  ==================================================
module                      threat
==========================  ==================================================
:mod:`.slowdown`            Marchant et al. (AAAI 2022): poison whose removal
                            spends the certified-removal budget fastest
:mod:`.backdoor`            Liu et al. (AAAI 2024): poison + mitigation rows;
                            deleting the mitigation activates a backdoor
:mod:`.camouflage`          Di et al. (NeurIPS 2023), dirty- and clean-label
                            (gradient matching): a poison that acts once its
                            camouflage is deleted
:mod:`.selection`           real rows chosen by influence whose deletion
                            degrades accuracy (Qian et al., KDD 2023)
:mod:`.fairness`            deletions chosen by influence to widen the
                            equalized-odds or demographic-parity gap
==========================  ==================================================

The request monitor that defends against them is :mod:`dpunlearn.monitor`.
"""

from dpunlearn.threats.backdoor import (
    BackdoorResult,
    BackdoorSet,
    apply_trigger,
    craft_backdoor,
    run_backdoor,
)
from dpunlearn.threats.camouflage import (
    CamouflageSet,
    CamouflageTrial,
    CleanCamouflageSet,
    craft_camouflage,
    craft_clean_camouflage,
    gradient_alignment,
    project_perturbation,
    run_camouflage,
)
from dpunlearn.threats.fairness import (
    FairnessSelection,
    demographic_parity_gap,
    equalized_odds_gap,
    select_fairness_deletions,
    smooth_gap,
    synthetic_groups,
)
from dpunlearn.threats.selection import AccuracySelection, select_accuracy_deletions
from dpunlearn.threats.slowdown import (
    RemovalCount,
    SlowdownPoison,
    craft_slowdown,
    project_ball_box,
    removal_charges,
    serve_removals,
)

__all__ = [
    "AccuracySelection",
    "BackdoorResult",
    "BackdoorSet",
    "CamouflageSet",
    "CamouflageTrial",
    "CleanCamouflageSet",
    "FairnessSelection",
    "RemovalCount",
    "SlowdownPoison",
    "apply_trigger",
    "craft_backdoor",
    "craft_camouflage",
    "craft_clean_camouflage",
    "craft_slowdown",
    "demographic_parity_gap",
    "equalized_odds_gap",
    "gradient_alignment",
    "project_ball_box",
    "project_perturbation",
    "removal_charges",
    "run_backdoor",
    "run_camouflage",
    "select_accuracy_deletions",
    "select_fairness_deletions",
    "serve_removals",
    "smooth_gap",
    "synthetic_groups",
]
