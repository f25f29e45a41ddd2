"""Per-example margin losses and the constants a removal certificate assumes.

A *margin loss* is ``ℓ(z, y)`` with ``z = wᵀx``. The certified-removal bounds of
Guo et al. (ICML 2020, §3, Theorem 1 and Corollary 1) need two constants:

* ``C``, a bound on ``|ℓ'(z, y)|``; with ``‖x‖ ≤ 1`` it bounds the per-example
  gradient norm ``‖ℓ'(z, y) x‖``;
* ``γ``, a Lipschitz constant of ``ℓ''`` in ``z`` (a bound on ``|ℓ'''|``).

Each :class:`MarginLoss` carries its value and first two derivatives in closed
form (no autodiff on the hot path) and these constants. ``gamma`` is the tight
constant; ``gamma_paper`` the one the paper and its code use.

Logistic loss ``ℓ(z, y) = log(1 + exp(−y z))``, ``y ∈ {−1, +1}``:
``ℓ' = −y·s(−y z)``, ``ℓ'' = s(z)(1 − s(z))`` (independent of ``y``),
``ℓ''' = s(1 − s)(1 − 2s)``, whose maximum modulus is ``1/(6√3) ≈ 0.0962``
(attained at ``s = 1/2 ± 1/(2√3)``). The paper uses ``γ = 1/4``, a factor 2.6
looser. ``C = 1``.

Squared loss ``ℓ(z, y) = (z − y)²/2`` (ridge regression): ``ℓ'' = 1``, so
``γ = 0`` and Newton removal is exact; ``C`` is unbounded (``inf``), which only
enters the worst-case bound multiplied by ``γ = 0``.

The change-of-variables term of the certificate (the Jacobian of the map from
the perturbation to the released model) needs three more constants:

* ``hess_bound``, ``max ℓ''`` (logistic ``1/4``, squared ``1``);
* ``hess_log_lipschitz``, a constant ``c`` with ``|ℓ'''| <= c·ℓ''``, i.e. a
  Lipschitz constant of ``log ℓ''``. Logistic: ``ℓ''' = ℓ''·(1 − 2s)``, so
  ``c = 1``, and ``ℓ''(z + t) / ℓ''(z)`` lies in ``[e^{−|t|}, e^{|t|}]``;
* ``fourth_bound``, ``max |ℓ⁗|``. Logistic: with ``p = ℓ'' ∈ (0, 1/4]``,
  ``ℓ⁗ = p(1 − 2s)² − 2p² = p − 6p²``, largest in modulus at ``p = 1/4``:
  ``1/8``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

from dpunlearn.types import Array

__all__ = [
    "LOGISTIC",
    "LOSSES",
    "SQUARED",
    "MarginLoss",
    "get_loss",
]


@dataclasses.dataclass(frozen=True)
class MarginLoss:
    """A convex margin loss with closed-form derivatives and its constants.

    Attributes:
      name: Registry name.
      value: ``value(z, y) -> ℓ`` (elementwise).
      grad: ``grad(z, y) -> ∂ℓ/∂z`` (elementwise).
      hess: ``hess(z, y) -> ∂²ℓ/∂z²`` (elementwise, ``>= 0``).
      gamma: Tight Lipschitz constant of ``hess`` in ``z``.
      gamma_paper: The constant Guo et al. use (``1/4`` for logistic).
      grad_bound: ``C``, a bound on ``|grad(z, y)|`` over all ``z``.
      labels: ``"pm1"`` (labels must be ±1) or ``"real"`` (any finite value).
      hess_bound: ``max ℓ''``.
      hess_log_lipschitz: ``c`` with ``|ℓ'''| <= c·ℓ''``.
      fourth_bound: ``max |ℓ⁗|``.
      hess_peak: ``ℓ''`` is non-decreasing up to this margin and non-increasing
        after it (logistic: 0); ``None`` when ``ℓ''`` is constant.
      hess_derivative: ``ℓ'''(z, y)`` elementwise (``None`` when ``ℓ''`` is
        constant).
    """

    name: str
    value: Callable[[Array, Array], Array]
    grad: Callable[[Array, Array], Array]
    hess: Callable[[Array, Array], Array]
    gamma: float
    gamma_paper: float
    grad_bound: float
    labels: str
    hess_bound: float
    hess_log_lipschitz: float
    fourth_bound: float
    hess_peak: float | None
    hess_derivative: Callable[[Array, Array], Array] | None = None

    def hess_deviation(self, z: Array, s: Array, y: Array) -> Array:
        """``max_{t∈[0,1]} |ℓ''(z + t s) − ℓ''(z)|`` elementwise, exactly.

        ``ℓ''`` is unimodal, so the largest deviation along the segment is at
        its far end or, if the segment crosses the peak, at the peak. This is
        what bounds the Taylor remainder of a Newton step row by row
        (``|ρ_i| <= |s_i|·max_t |ℓ''(z_i + t s_i) − ℓ''(z_i)|``), sharper than
        ``γ|s_i|`` wherever the margin is confident.
        """
        if self.hess_peak is None:
            return jnp.zeros_like(z)
        h0 = self.hess(z, y)
        end = jnp.abs(self.hess(z + s, y) - h0)
        lo, hi = jnp.minimum(z, z + s), jnp.maximum(z, z + s)
        crosses = (lo <= self.hess_peak) & (self.hess_peak <= hi)
        peak = self.hess(jnp.full_like(z, self.hess_peak), y) - h0
        return jnp.where(crosses, jnp.maximum(end, peak), end)

    def gamma_for(self, which: str) -> float:
        """Returns ``gamma`` for ``which="tight"`` or ``gamma_paper`` for ``"paper"``."""
        if which == "tight":
            return self.gamma
        if which == "paper":
            return self.gamma_paper
        raise ValueError(f"Expected gamma in ('paper', 'tight'), got {which!r}.")


def _logistic_value(z: Array, y: Array) -> Array:
    return jax.nn.softplus(-y * z)


def _logistic_grad(z: Array, y: Array) -> Array:
    return -y * jax.nn.sigmoid(-y * z)


def _logistic_hess(z: Array, y: Array) -> Array:
    del y  # ℓ'' does not depend on the label when y² = 1.
    s = jax.nn.sigmoid(z)
    return s * (1 - s)


def _logistic_third(z: Array, y: Array) -> Array:
    del y
    s = jax.nn.sigmoid(z)
    return s * (1 - s) * (1 - 2 * s)


LOGISTIC = MarginLoss(
    name="logistic",
    value=_logistic_value,
    grad=_logistic_grad,
    hess=_logistic_hess,
    gamma=1.0 / (6.0 * math.sqrt(3.0)),
    gamma_paper=0.25,
    grad_bound=1.0,
    labels="pm1",
    hess_bound=0.25,
    hess_log_lipschitz=1.0,
    fourth_bound=0.125,
    hess_peak=0.0,
    hess_derivative=_logistic_third,
)

SQUARED = MarginLoss(
    name="ridge",
    value=lambda z, y: 0.5 * (z - y) ** 2,
    grad=lambda z, y: z - y,
    hess=lambda z, y: jnp.ones_like(z),
    gamma=0.0,
    gamma_paper=0.0,
    grad_bound=math.inf,
    labels="real",
    hess_bound=1.0,
    hess_log_lipschitz=0.0,
    fourth_bound=0.0,
    hess_peak=None,
)

LOSSES: dict[str, MarginLoss] = {"logistic": LOGISTIC, "ridge": SQUARED}


def get_loss(loss: str | MarginLoss) -> MarginLoss:
    """Looks up a loss by name (``"logistic"``, ``"ridge"``) or passes one through."""
    if isinstance(loss, MarginLoss):
        return loss
    try:
        return LOSSES[loss]
    except KeyError:
        raise ValueError(f"Expected loss in {sorted(LOSSES)}, got {loss!r}.") from None
