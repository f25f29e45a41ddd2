"""Malicious deletion requests: attacks that use unlearning as their lever.

==========================  ==================================================
module                      threat
==========================  ==================================================
:mod:`.slowdown`            Marchant et al. (AAAI 2022): poison whose removal
                            spends the certified-removal budget fastest
==========================  ==================================================

The request monitor that defends against them is :mod:`dpunlearn.monitor`.
"""

from dpunlearn.threats.slowdown import (
    RemovalCount,
    SlowdownPoison,
    craft_slowdown,
    project_ball_box,
    removal_charges,
    serve_removals,
)

__all__ = [
    "RemovalCount",
    "SlowdownPoison",
    "craft_slowdown",
    "project_ball_box",
    "removal_charges",
    "serve_removals",
]
