"""Privacy accounting for dpunlearn: host-side float64, never jitted.

Submodules:
  mechanisms: closed-form privacy of single mechanisms (exact Gaussian,
    analytic Gaussian calibration, Laplace, zCDP conversion, group privacy)
    and the exact optimal k-fold composition of pure (ε0, 0)-DP mechanisms.
  rdp: vectorised Rényi-DP curves (Gaussian, Poisson-subsampled Gaussian,
    Laplace, randomized response), composition, RDP -> (ε, δ) conversion.
  calibration: monotone bisection that never overshoots a target; Gaussian σ
    calibration and maximal composition counts under exact/RDP/PLD accounting.
  events: small event types and interop with dp_accounting (PLD/RDP), with a
    guard for its randomized-response count bug; pure (ε, 0)-DP and
    sampling-without-replacement Gaussian events.
"""

from dpunlearn.accounting.calibration import calibrate, calibrate_gaussian_sigma, max_count
from dpunlearn.accounting.events import (
    Event,
    GaussianEvent,
    LaplaceEvent,
    PureDPEvent,
    PureEpsilonDpEvent,
    RandomizedResponseEvent,
    SampledWithoutReplacementGaussianEvent,
    SubsampledGaussianEvent,
    ZCDPEvent,
    delta_pld,
    epsilon_pld,
    epsilon_rdp,
    rdp_curve,
    to_dp_event,
)
from dpunlearn.accounting.mechanisms import (
    gaussian_delta,
    gaussian_epsilon,
    gaussian_sigma_analytic,
    gaussian_sigma_classic,
    gaussian_zcdp,
    group_privacy,
    laplace_epsilon,
    pure_dp_composition_delta,
    pure_dp_composition_epsilon,
    zcdp_to_dp,
)
from dpunlearn.accounting.rdp import (
    DEFAULT_ORDERS,
    compose_rdp,
    gaussian_rdp,
    laplace_rdp,
    pure_dp_rdp,
    randomized_response_rdp,
    rdp_delta,
    rdp_to_dp,
    subsampled_gaussian_rdp,
)

# (Other modules of the package, e.g. currencies and ledger, add their imports here.)

__all__ = [
    # mechanisms
    "gaussian_delta",
    "gaussian_epsilon",
    "gaussian_sigma_analytic",
    "gaussian_sigma_classic",
    "gaussian_zcdp",
    "group_privacy",
    "laplace_epsilon",
    "pure_dp_composition_delta",
    "pure_dp_composition_epsilon",
    "zcdp_to_dp",
    # rdp
    "DEFAULT_ORDERS",
    "compose_rdp",
    "gaussian_rdp",
    "laplace_rdp",
    "pure_dp_rdp",
    "randomized_response_rdp",
    "rdp_delta",
    "rdp_to_dp",
    "subsampled_gaussian_rdp",
    # calibration
    "calibrate",
    "calibrate_gaussian_sigma",
    "max_count",
    # events (dp_accounting interop)
    "Event",
    "GaussianEvent",
    "LaplaceEvent",
    "PureDPEvent",
    "PureEpsilonDpEvent",
    "RandomizedResponseEvent",
    "SampledWithoutReplacementGaussianEvent",
    "SubsampledGaussianEvent",
    "ZCDPEvent",
    "delta_pld",
    "epsilon_pld",
    "epsilon_rdp",
    "rdp_curve",
    "to_dp_event",
]
from dpunlearn.accounting import currencies, ledger  # noqa: E402,F401  (issue 3B: unlearning currencies, ledger)
