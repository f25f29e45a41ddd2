"""Certified removal (Guo et al., ICML 2020) as a method of the common interface.

Wraps :mod:`dpunlearn.certified` (loss perturbation, Newton removal, the
rigorous pointwise certificate) and :mod:`dpunlearn.retrain_schedule` (the
shadow models that decide, from the data alone, when the live model must be
retrained). The state carries both; a charge carries what the ledger needs:
the number of marked shadows (the sound currency ``"certified_removal"``)
and, for reports only, the live model's residual bound and pointwise ``ε̄``
(they depend on the secret ``b``; never decide on them).

With ``num_shadows=0`` there is no schedule: the charge's residual bound is
Algorithm 2's uncertified currency ``"certified_removal_paper"``.

Data: ``Data(x=X [n, d], y)`` with rows of norm ``<= 1``; labels ``±1``
(binary logistic), reals (``loss="ridge"``), or class ids (``num_classes``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from dpunlearn import certified, removal_certificate, retrain_schedule
from dpunlearn.methods.base import Data, Method, check_data, check_mask
from dpunlearn.types import Array, PRNGKey

__all__ = ["CertifiedRemovalCharge", "CertifiedRemovalMethodState", "certified_removal"]


class CertifiedRemovalMethodState(NamedTuple):
    """The live model and its shadows (``schedule`` is ``None`` without them)."""

    model: certified.CertifiedState
    schedule: retrain_schedule.RetrainSchedule | None

    @property
    def params(self) -> Array:
        return self.model.params

    @property
    def mask(self) -> Array:
        return self.model.mask


class CertifiedRemovalCharge(NamedTuple):
    """What one (re)training or request costs.

    Attributes:
      num_removed: Rows removed by this request (0 for a training).
      num_exceeded: Shadows whose ``ε̄`` passed ``ε`` (the sound currency).
      num_shadows: ``M``.
      residual_bound: ``β`` of the live model (Algorithm 2's currency; secret-
        dependent).
      epsilon_pointwise: ``ε̄`` of the live model at the target's ``δ_E``
        (secret-dependent; report only).
      rounding_failure: float32 rounding failure probability (added to δ).
      valid: The request was valid (else the model is unchanged, bounds ``inf``).
    """

    num_removed: Array
    num_exceeded: Array
    num_shadows: Array
    residual_bound: Array
    epsilon_pointwise: Array
    rounding_failure: Array
    valid: Array


def certified_removal(
    *,
    lam: float,
    sigma: float,
    epsilon: float,
    delta: float,
    num_shadows: int | None = None,
    **config_kwargs,
) -> Method:
    """Guo et al.'s certified removal with a data-only retrain schedule.

    Args:
      lam, sigma: L2 strength and std of the loss perturbation.
      epsilon, delta: The certificate each released model must carry.
      num_shadows: Shadows deciding when to retrain. Default: the fewest that
        can certify ``delta`` (:func:`retrain_schedule.min_shadows`; about
        ``3·10⁵`` at ``δ = 1e-4``). ``0``: no schedule (uncertified paper rule).
      **config_kwargs: :func:`dpunlearn.certified.make_config` fields.
    """
    config = certified.make_config(**config_kwargs)
    if num_shadows is None:
        probe = retrain_schedule.make_target(epsilon, delta, 10**12)
        num_shadows = retrain_schedule.min_shadows(probe.delta_schedule, probe.confidence)
    target = (
        retrain_schedule.make_target(epsilon, delta, num_shadows) if num_shadows else None
    )
    currency = "certified_removal" if target else "certified_removal_paper"
    delta_noise = target.delta_noise if target else delta / 2

    def charge(state, valid, num_removed=0):
        model = state.model
        event = removal_certificate.noise_event(
            delta_noise, num_rows=model.mask.shape[0], num_heads=config.num_heads
        )
        eps = certified.pointwise_epsilon(model, event)
        if state.schedule is None:
            exceeded, rounding = jnp.zeros((), jnp.int32), model.rounding_failure
        else:
            exceeded = jnp.sum(state.schedule.exceeded).astype(jnp.int32)
            rounding = jnp.max(state.schedule.shadows.rounding_failure)
        return CertifiedRemovalCharge(
            num_removed=jnp.asarray(num_removed, jnp.int32),
            num_exceeded=exceeded,
            num_shadows=jnp.asarray(num_shadows, jnp.int32),
            residual_bound=model.grad_residual_bound,
            epsilon_pointwise=eps,
            rounding_failure=jnp.maximum(rounding, model.rounding_failure),
            valid=jnp.asarray(valid),
        )

    def train(key: PRNGKey, data: Data, mask=None):
        data = check_data(data)
        mask = check_mask(mask, data.num_rows, data=data)
        k_live, k_shadows = jax.random.split(key)
        model = certified.train(
            k_live, data.x, data.y, lam=lam, sigma=sigma, mask=mask, config=config
        )
        schedule = (
            retrain_schedule.init_shadows(k_shadows, model, data.x, data.y, target)
            if target
            else None
        )
        state = CertifiedRemovalMethodState(model, schedule)
        return state, charge(state, jnp.isfinite(model.grad_residual_bound))

    def unlearn(key: PRNGKey, state: CertifiedRemovalMethodState, request, data: Data):
        del key  # Newton removal is deterministic: the only secret is b.
        data = check_data(data, num_rows=state.model.mask.shape[0])
        model, info = certified.remove(state.model, request, data.x, data.y)
        schedule = state.schedule
        if schedule is not None:
            schedule, _ = retrain_schedule.advance(
                schedule, jnp.atleast_1d(jnp.asarray(request)), data.x, data.y
            )
        new = CertifiedRemovalMethodState(model, schedule)
        return new, charge(new, info.valid, jnp.size(request)), info

    def predict(params, inputs):
        scores = jnp.matmul(inputs, params.T if params.ndim == 2 else params,
                            precision=jax.lax.Precision.HIGHEST)
        if config.num_classes is not None:
            return jnp.argmax(scores, axis=-1)
        if config.loss.labels == "real":
            return scores
        return jnp.where(scores >= 0, 1, -1)

    return Method(
        name="certified_removal",
        currency=currency,
        train=train,
        unlearn=unlearn,
        predict=predict,
    )
