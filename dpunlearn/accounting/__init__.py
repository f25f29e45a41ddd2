"""Privacy accounting for dpunlearn: host-side float64, never jitted.

Submodules:
  mechanisms: closed-form privacy of single mechanisms (exact Gaussian, Laplace,
    zCDP, group privacy).
"""

from dpunlearn.accounting.mechanisms import (
    gaussian_delta,
    gaussian_epsilon,
    gaussian_sigma_analytic,
    gaussian_sigma_classic,
    gaussian_zcdp,
    group_privacy,
    laplace_epsilon,
    zcdp_to_dp,
)

__all__ = [
    # mechanisms
    "gaussian_delta",
    "gaussian_epsilon",
    "gaussian_sigma_analytic",
    "gaussian_sigma_classic",
    "gaussian_zcdp",
    "group_privacy",
    "laplace_epsilon",
    "zcdp_to_dp",
]
