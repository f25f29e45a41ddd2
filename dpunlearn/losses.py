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
    """

    name: str
    value: Callable[[Array, Array], Array]
    grad: Callable[[Array, Array], Array]
    hess: Callable[[Array, Array], Array]
    gamma: float
    gamma_paper: float
    grad_bound: float
    labels: str

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


LOGISTIC = MarginLoss(
    name="logistic",
    value=_logistic_value,
    grad=_logistic_grad,
    hess=_logistic_hess,
    gamma=1.0 / (6.0 * math.sqrt(3.0)),
    gamma_paper=0.25,
    grad_bound=1.0,
    labels="pm1",
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
