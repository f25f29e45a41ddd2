"""The slow-down attack on certified removal (Marchant, Rubinstein & Alfeld,
"Hard to Forget: Poisoning Attacks on Certified Machine Unlearning", AAAI 2022).

Threat: the attacker owns ``m`` training rows. Before training it perturbs
them, within a norm ball around its clean reference rows, so that their later
removal spends the certified-removal residual budget (Guo et al., ICML 2020,
Algorithm 2) as fast as possible; then it asks for their removal one by one.
Every time the budget is spent the server must retrain from scratch: the
attack maximises computation (Marchant et al., §3).

The attack's objective is a surrogate of the removal charge of each poison
row ``p`` (Guo et al., Corollary 1 / the integral form of
:mod:`dpunlearn.certified`): with ``Z`` the full design matrix, ``w`` the
trained weights, ``Δ_p = λw + ∇ℓ(w; x_p, y_p)``, ``v_p = H⁻¹Δ_p`` and
``s_p = Z v_p``,

  charge_p = (γ/2)·‖Z‖₂·‖s_p ⊙ s_p‖₂        (``objective="integral"``)
  charge_p = γ·‖Z‖₂·‖v_p‖₂·‖s_p‖₂            (``objective="grnb"``, Marchant's
                                              ``grnb_norm``)
  charge_p = ‖v_p‖₂                          (``objective="influence"``,
                                              Marchant's ``influence_norm``)

summed over the poison. Unlike Marchant et al.'s code, which by default
freezes ``w`` (and ``H``) while differentiating, the gradient here also flows
through training: ``w`` is the implicitly differentiated minimiser of
:func:`dpunlearn.threats._implicit.fit_logistic`. The attacker does not know
the secret perturbation ``b``; the surrogate trains with ``b = 0`` (Marchant's
grey-box setting).

Constraint (Marchant et al., §4): each poison row stays in an ``ℓ∞`` or ``ℓ2``
ball of radius ``radius`` around its reference row, inside the feature box
``[lower, upper]`` and inside the unit ball (certified removal needs
``‖x‖₂ <= 1``); the projection onto the intersection is Dykstra's alternating
projection (Boyle & Dykstra 1986). Optimiser: projected signed-gradient ascent
(``ℓ∞``) or normalised-gradient ascent (``ℓ2``).

:func:`serve_removals` drives any method through :func:`dpunlearn.serve.serve`
with a ledger and counts the retrains, so the same poison can be replayed
against other methods.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dpunlearn import _validate
from dpunlearn.methods.base import Data, Method
from dpunlearn.solvers import mm
from dpunlearn.threats._implicit import (
    fit_logistic,
    logistic_grad_rows,
    logistic_hessian,
)
from dpunlearn.types import Array, PRNGKey

__all__ = [
    "RemovalCount",
    "SlowdownPoison",
    "craft_slowdown",
    "project_ball_box",
    "removal_charges",
    "serve_removals",
]

Objective = Literal["integral", "grnb", "influence"]


def removal_charges(
    X: Array,
    y: Array,
    poison_x: Array,
    poison_y: Array,
    *,
    lam: float,
    gamma: float = 0.25,
    objective: Objective = "integral",
) -> Array:
    """Surrogate removal charge of each poison row, ``[m]`` (see module docstring).

    ``X, y``: the clean rows (``[n, d]``, ``±1``); ``poison_x, poison_y``: the
    attacker's rows. The model is trained on all ``n + m`` rows with ``b = 0``
    and differentiated implicitly. ``gamma = 1/4`` is the logistic constant of
    Guo et al.
    """
    Z = jnp.concatenate([X, poison_x])
    yz = jnp.concatenate([y, poison_y])
    N = Z.shape[0]
    w = fit_logistic(Z, yz, lam)
    H = logistic_hessian(w, Z, yz, jnp.ones((N,), Z.dtype), lam * N)
    delta = lam * w + logistic_grad_rows(w, poison_x, poison_y)  # [m, d]
    V = jnp.linalg.solve(H, delta.T).T  # [m, d]
    if objective == "influence":
        return jnp.linalg.norm(V, axis=1)
    S = mm(V, Z.T)  # [m, N]
    # ‖Z‖₂ through a differentiable eigenvalue of the Gram matrix.
    norm = jnp.sqrt(jnp.linalg.eigvalsh(mm(Z.T, Z))[-1])
    if objective == "grnb":
        return gamma * norm * jnp.linalg.norm(V, axis=1) * jnp.linalg.norm(S, axis=1)
    if objective == "integral":
        return 0.5 * gamma * norm * jnp.linalg.norm(S * S, axis=1)
    raise ValueError(
        f"Expected objective in ('integral', 'grnb', 'influence'), got {objective!r}."
    )


def project_ball_box(
    x: Array,
    center: Array,
    *,
    radius: float,
    norm: Literal["linf", "l2"] = "linf",
    lower: float = 0.0,
    upper: float = 1.0,
    num_iters: int = 50,
) -> Array:
    """Projection of rows ``x`` onto ``{‖x − c‖ <= radius} ∩ [lower, upper]^d ∩ {‖x‖₂ <= 1}``.

    Dykstra's alternating projection (Boyle & Dykstra 1986) over the convex
    sets, row by row (``vmap``); ``num_iters`` rounds. The ``ℓ∞`` ball and the
    box are one box. Jittable.
    """
    if norm not in ("linf", "l2"):
        raise ValueError(f"Expected norm in ('linf', 'l2'), got {norm!r}.")

    def unit_ball(z):
        return z / jnp.maximum(1.0, jnp.linalg.norm(z))

    def one(z, c):
        if norm == "linf":
            lo, hi = jnp.maximum(c - radius, lower), jnp.minimum(c + radius, upper)
            sets = (lambda u: jnp.clip(u, lo, hi), unit_ball)
        else:

            def l2_ball(u):
                d = u - c
                return c + d * jnp.minimum(1.0, radius / jnp.maximum(jnp.linalg.norm(d), 1e-30))

            sets = (lambda u: jnp.clip(u, lower, upper), l2_ball, unit_ball)

        def body(_, carry):
            u, incs = carry
            new_incs = []
            for proj, inc in zip(sets, incs):
                nu = proj(u + inc)
                new_incs.append(u + inc - nu)
                u = nu
            return u, tuple(new_incs)

        init = (z, tuple(jnp.zeros_like(z) for _ in sets))
        u, _ = jax.lax.fori_loop(0, num_iters, body, init)
        # Dykstra converges to the projection; finish inside every set (the
        # last projection is the unit ball, so ‖x‖₂ <= 1 holds exactly).
        for proj in sets:
            u = proj(u)
        return u

    return jax.vmap(one)(x, center)


class SlowdownPoison(NamedTuple):
    """The crafted rows and the surrogate charge before and after.

    Attributes:
      x: ``[m, d]`` poison features. y: ``[m]`` their labels (the reference labels).
      charge_before, charge_after: the surrogate's total over the poison rows at
        the reference rows and at the poison (:func:`removal_charges`).
      trace: the surrogate's total after every ascent step, ``[num_steps]``.
    """

    x: Array
    y: Array
    charge_before: Array
    charge_after: Array
    trace: Array


@functools.partial(
    jax.jit, static_argnames=("num_steps", "norm", "objective", "lower", "upper")
)
def _craft(X, y, ref_x, ref_y, lam, radius, step_size, *, num_steps, norm, objective, lower, upper):
    def total(px):
        return jnp.sum(removal_charges(X, y, px, ref_y, lam=lam, objective=objective))

    value_and_grad = jax.value_and_grad(total)

    def step(px, _):
        val, g = value_and_grad(px)
        if norm == "linf":
            direction = jnp.sign(g)
        else:
            direction = g / jnp.maximum(jnp.linalg.norm(g, axis=1, keepdims=True), 1e-30)
        px = project_ball_box(
            px + step_size * direction, ref_x, radius=radius, norm=norm, lower=lower, upper=upper
        )
        return px, val

    px, trace = jax.lax.scan(step, ref_x, None, length=num_steps)
    return px, total(ref_x), total(px), trace


def craft_slowdown(
    data: Data,
    attacker_rows: Sequence[int] | Array,
    *,
    lam: float,
    radius: float,
    norm: Literal["linf", "l2"] = "linf",
    num_steps: int = 30,
    step_size: float | None = None,
    objective: Objective = "integral",
    lower: float = 0.0,
    upper: float = 1.0,
) -> SlowdownPoison:
    """Crafts Marchant et al.'s poison from the attacker's reference rows.

    Args:
      data: The training set as it will be, with the attacker's rows at their
        clean reference values (``Data(X [n, d], y ±1)``).
      attacker_rows: Indices of the rows the attacker owns.
      lam: The ``λ`` the attacker assumes the server trains with.
      radius: The perturbation budget (``ℓ∞`` or ``ℓ2`` radius per row).
      norm: ``"linf"`` or ``"l2"``.
      num_steps: Ascent steps. step_size: default ``radius / 5``.
      objective: The surrogate (module docstring).
      lower, upper: The feature box.

    Returns:
      A :class:`SlowdownPoison`; write ``poison.x`` into the attacker's rows
      (:meth:`SlowdownPoison` is independent of the server's secret ``b``).
    """
    _validate.positive(lam=lam, radius=radius)
    _validate.positive_int(num_steps=num_steps)
    X = jnp.asarray(data.x)
    y = jnp.asarray(data.y, X.dtype)
    rows = np.asarray(attacker_rows)
    if rows.ndim != 1 or rows.size == 0 or rows.dtype.kind not in "iu":
        raise ValueError(
            f"Expected attacker_rows to be a non-empty 1-D integer array, got {rows!r}."
        )
    if rows.min() < 0 or rows.max() >= X.shape[0] or np.unique(rows).size != rows.size:
        raise ValueError(
            f"Expected distinct attacker_rows in [0, {X.shape[0] - 1}], got {rows.tolist()}."
        )
    keep = np.ones(X.shape[0], bool)
    keep[rows] = False
    step = radius / 5 if step_size is None else step_size
    _validate.positive(step_size=step)
    px, before, after, trace = _craft(
        X[keep], y[keep], X[rows], y[rows], lam, radius, step,
        num_steps=num_steps, norm=norm, objective=objective, lower=lower, upper=upper,
    )  # fmt: skip
    return SlowdownPoison(px, y[rows], before, after, trace)


class RemovalCount(NamedTuple):
    """How a removal sequence was served.

    Attributes:
      num_removals: Requests served.
      num_retrains: Requests that forced a retrain (ledger refusal or the
        method's own ``RetrainRequired``).
      removals_per_retrain: ``num_removals / max(num_retrains, 1)`` (the
        retrain interval of Marchant et al.).
      retrained: Per request, whether it forced a retrain.
      num_blocked: Requests a monitor refused or deferred (not applied, not
        counted in ``num_removals``).
    """

    num_removals: int
    num_retrains: int
    removals_per_retrain: float
    retrained: tuple[bool, ...]
    num_blocked: int = 0


def serve_removals(
    method: Method,
    data: Data,
    order: Sequence[int],
    *,
    key: PRNGKey,
    ledger,
    monitor=None,
) -> RemovalCount:
    """Trains ``method`` on ``data``, then serves ``order`` one row per request.

    With ``monitor`` (:class:`dpunlearn.monitor.RequestMonitor`) every request
    is screened first; blocked ones are skipped and counted.

    Every request goes through :func:`dpunlearn.serve.serve` with ``ledger``
    (a fresh :class:`~dpunlearn.accounting.ledger.Ledger` of the method's
    currency), which refuses a release past the budget; :func:`serve` then
    retrains. Keys: ``fold_in(key, 0)`` trains; request ``i`` uses
    ``fold_in(key, i + 1)``.
    """
    from dpunlearn import serve as serve_mod

    _validate.prng_key("key", key)
    state, charge = method.train(jax.random.fold_in(key, 0), data, None)
    serve_mod.record_training(ledger, charge)
    flags = []
    blocked = 0
    for i, row in enumerate(order):
        res = serve_mod.serve(
            method, state, np.array([int(row)]), data,
            key=jax.random.fold_in(key, i + 1), ledger=ledger, monitor=monitor,
        )  # fmt: skip
        state = res.state
        if res.monitor is not None and not res.monitor.applied:
            blocked += 1
            continue
        flags.append(bool(res.retrained))
    n_re = int(sum(flags))
    return RemovalCount(len(flags), n_re, len(flags) / max(n_re, 1), tuple(flags), blocked)
