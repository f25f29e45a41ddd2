"""Camouflaged poisoning: a poison that only acts once its camouflage is deleted.

Di, Douglas, Acharya, Kamath & Sekhari, "Hidden Poison: Machine Unlearning
Enables Camouflaged Poisoning Attacks", NeurIPS 2023. The adversary adds a
poison set ``S_p`` that pushes a chosen target ``x_t`` towards a wrong label
``y_adv`` and a camouflage set ``S_c`` that cancels it, so the model trained on
``D ∪ S_p ∪ S_c`` still classifies ``x_t`` correctly; it then asks for ``S_c``
to be deleted, and the unlearned model (ideally: the model retrained on
``D ∪ S_p``) misclassifies ``x_t``.

Two variants:

* **Dirty-label** (:func:`craft_camouflage`), a simplification for linear
  models: ``S_p`` is ``k`` noisy copies of ``x_t`` labelled ``y_adv`` and
  ``S_c`` is ``k`` noisy copies labelled ``y_t``. Near ``x_t`` the two sets'
  gradients cancel (equal inputs, opposite label pull).
* **Clean-label** (:func:`craft_clean_camouflage`), Di et al.'s attack (§4,
  Algorithm 1: poison generation, then camouflage generation against the
  model trained with the poison): every crafted row is a real row of the attacker's pool,
  *keeping its true label*, plus a perturbation within an ``ℓ∞`` or ``ℓ2``
  budget. The poisons are pool rows of class ``y_adv`` and the camouflages
  pool rows of class ``y_t``; both are brewed by gradient matching (Geiping
  et al., "Witches' Brew", ICLR 2021, Eq. 3): with ``θ`` the surrogate
  model's parameters, the perturbations ``Δ`` minimise

    B(Δ, θ) = 1 − ⟨∇_θ ℓ(x_t, y′; θ), Σ_i ∇_θ ℓ(x_i + Δ_i, y_i; θ)⟩
                  / (‖∇_θ ℓ(x_t, y′; θ)‖ · ‖Σ_i ∇_θ ℓ(x_i + Δ_i, y_i; θ)‖),

  so that a training step on the crafted rows is a step on the target's loss
  at the label ``y′``. Poisons: ``y′ = y_adv`` and ``θ`` trained on ``D``;
  camouflages (Di et al.'s second stage): ``y′ = y_t`` and ``θ`` trained on
  ``D ∪ S_p``. Optimiser as in Witches' Brew: signed Adam (Adam on the sign
  of the gradient; ``ℓ∞``) or Adam on per-row normalised gradients (``ℓ2``),
  projected after every step, from random starts, keeping the restart with
  the smallest ``B``.

The model of the clean-label variant is the one the linear methods of the
interface train: L2-regularised logistic regression, binary (labels ``±1``)
or one-vs-rest (``num_classes``), fitted by
:func:`dpunlearn.threats._implicit.fit_logistic` (the attacker's surrogate;
the server's secret perturbation is unknown to it and taken as zero).

The attack runs against any method of the common interface
(:func:`run_camouflage`): train on ``D ∪ S_p ∪ S_c``, unlearn ``S_c`` as one
request, predict ``x_t`` before and after.
"""

from __future__ import annotations

import functools
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dpunlearn import _validate
from dpunlearn.methods.base import Data, Method
from dpunlearn.solvers import mm
from dpunlearn.threats._implicit import fit_logistic
from dpunlearn.threats.slowdown import project_ball_box
from dpunlearn.types import Array, PRNGKey

__all__ = [
    "CamouflageSet",
    "CamouflageTrial",
    "CleanCamouflageSet",
    "craft_camouflage",
    "craft_clean_camouflage",
    "gradient_alignment",
    "project_perturbation",
    "run_camouflage",
]

Norm = Literal["linf", "l2"]


class CamouflageSet(NamedTuple):
    """Poison and camouflage rows (``[k, d]`` each) and their labels."""

    poison_x: Array
    poison_y: Array
    camouflage_x: Array
    camouflage_y: Array


def _copies(key, x, k, noise):
    z = x[None, :] + noise * jax.random.normal(key, (k, x.shape[0]), x.dtype)
    z = jnp.maximum(z, 0.0)  # stay in the (non-negative) feature box
    norms = jnp.linalg.norm(z, axis=1, keepdims=True)
    return z / jnp.maximum(norms, 1.0)


def craft_camouflage(
    key: PRNGKey,
    target_x: Array,
    target_y: int,
    adv_label: int,
    num_points: int,
    *,
    noise: float = 0.02,
) -> CamouflageSet:
    """``k`` poison rows labelled ``adv_label`` and ``k`` camouflage rows labelled
    ``target_y``, each ``x_t + noise·N(0, I)``, clipped at 0 and scaled into the
    unit ball (certified removal needs ``‖x‖₂ <= 1``).

    Args:
      key: Consumed (split into the poison's and the camouflage's noise).
      target_x: ``[d]``, the target. target_y: its true class.
      adv_label: The class the attacker wants after the deletion.
      num_points: ``k`` per set.
      noise: Std of the Gaussian jitter (so the rows are not exact duplicates).
    """
    _validate.prng_key("key", key)
    _validate.positive_int(num_points=num_points)
    _validate.non_negative(noise=noise)
    if int(adv_label) == int(target_y):
        raise ValueError(f"Expected adv_label != target_y, both are {int(target_y)}.")
    x = jnp.asarray(target_x)
    if x.ndim != 1:
        raise ValueError(f"Expected target_x to be 1-D, got shape {x.shape}.")
    kp, kc = jax.random.split(key)
    return CamouflageSet(
        _copies(kp, x, num_points, noise),
        jnp.full((num_points,), adv_label),
        _copies(kc, x, num_points, noise),
        jnp.full((num_points,), target_y),
    )


class CamouflageTrial(NamedTuple):
    """One attack: the target's prediction before and after deleting ``S_c``.

    Attributes:
      pred_before, pred_after: The target's predicted class.
      correct_before: The model on ``D ∪ S_p ∪ S_c`` is right (stealth).
      success: After the deletion the target is classified ``adv_label``.
      camouflage_rows: The deleted rows (indices into the augmented data).
      state: The unlearned state.
    """

    pred_before: int
    pred_after: int
    correct_before: bool
    success: bool
    camouflage_rows: np.ndarray
    state: object


def run_camouflage(
    method: Method,
    data: Data,
    attack: CamouflageSet,
    target_x: Array,
    target_y: int,
    *,
    key: PRNGKey,
    delete=None,
) -> CamouflageTrial:
    """Trains ``method`` on ``data ∪ S_p ∪ S_c``, unlearns ``S_c``, predicts ``x_t``.

    ``attack`` is a :class:`CamouflageSet` or a :class:`CleanCamouflageSet`
    (``S_p`` and ``S_c`` may differ in size); ``poison_y[0]`` is taken as the
    adversarial label. Labels are appended in ``data.y``'s dtype. Keys: ``fold_in(key, 0)``
    trains, ``fold_in(key, 1)`` unlearns. ``delete``: other rows of the
    augmented data to delete instead of ``S_c`` (a control).
    """
    _validate.prng_key("key", key)
    X = jnp.asarray(data.x)
    y = jnp.asarray(data.y)
    n, kp, kc = X.shape[0], attack.poison_x.shape[0], attack.camouflage_x.shape[0]
    aug = Data(
        jnp.concatenate([X, attack.poison_x.astype(X.dtype), attack.camouflage_x.astype(X.dtype)]),
        jnp.concatenate([y, attack.poison_y.astype(y.dtype), attack.camouflage_y.astype(y.dtype)]),
    )
    rows = np.arange(n + kp, n + kp + kc) if delete is None else np.asarray(delete)
    state, _ = method.train(jax.random.fold_in(key, 0), aug, None)
    xt = jnp.asarray(target_x)[None, :]
    before = int(np.asarray(method.predict(state.params, xt))[0])
    new, _, _ = method.unlearn(jax.random.fold_in(key, 1), state, jnp.asarray(rows), aug)
    after = int(np.asarray(method.predict(new.params, xt))[0])
    adv = int(np.asarray(attack.poison_y)[0])
    return CamouflageTrial(before, after, before == int(target_y), after == adv, rows, new)


# ----------------------------------------------------------------- clean label


def _head_labels(y: Array, num_classes: int | None, dtype) -> Array:
    """``[K, m]`` labels ``±1`` per head (``K = 1`` for a binary model)."""
    y = jnp.asarray(y)
    if num_classes is None:
        return jnp.where(y > 0, 1.0, -1.0).astype(dtype)[None, :]
    return jnp.where(y[None, :] == jnp.arange(num_classes)[:, None], 1.0, -1.0).astype(dtype)


@jax.jit
def _fit(X: Array, Y: Array, lam) -> Array:
    """The surrogate: one logistic head per row of ``Y``, ``[K, d]``."""
    return jax.vmap(lambda yk: fit_logistic(X, yk, lam))(Y)


def _loss(W: Array, X: Array, Y: Array) -> Array:
    """Summed one-vs-rest logistic loss ``Σ_rows Σ_k ℓ(Y_k w_kᵀx)``."""
    return jnp.sum(jax.nn.softplus(-Y * mm(W, X.T)))


def gradient_alignment(W: Array, x: Array, Y: Array, target_x: Array, target_Y: Array) -> Array:
    """Geiping et al.'s (ICLR 2021) Eq. 3 at parameters ``W``: ``1 − cos`` of the
    summed training gradient of the rows ``x`` (``[m, d]``, head labels ``Y``
    ``[K, m]``) and the gradient of the target's loss at ``target_Y`` (``[K, 1]``).

    ``0``: the rows pull the parameters exactly as a step on the target's loss
    at that label would; ``1``: orthogonal; ``2``: opposite.
    """
    gt = jax.grad(_loss)(W, target_x[None, :], target_Y)
    g = jax.grad(_loss)(W, x, Y)
    tiny = jnp.finfo(g.dtype).tiny
    return 1.0 - jnp.vdot(g, gt) / jnp.maximum(jnp.linalg.norm(g) * jnp.linalg.norm(gt), tiny)


def project_perturbation(
    x: Array,
    base: Array,
    *,
    radius: float,
    norm: Norm = "linf",
    lower: float = 0.0,
    upper: float = 1.0,
) -> Array:
    """Rows of ``x`` made feasible: ``‖x − base‖ <= radius`` (``ℓ∞`` or ``ℓ2``),
    inside the box ``[lower, upper]`` and the unit ball.

    First the Dykstra projection of :func:`dpunlearn.threats.slowdown.project_ball_box`;
    then, so that the budget holds exactly and not only at Dykstra's limit,
    the perturbation is clipped to the budget and the box, and pulled
    towards ``base`` (``base + t·Δ``, the largest ``t ∈ [0, 1]`` with
    ``‖base + tΔ‖₂ <= 1``). ``base`` must itself be feasible (rows in the
    box and the unit ball). Jittable.
    """
    x = project_ball_box(x, base, radius=radius, norm=norm, lower=lower, upper=upper)
    delta = x - base
    if norm == "linf":
        delta = jnp.clip(delta, -radius, radius)
    else:
        dn = jnp.linalg.norm(delta, axis=1, keepdims=True)
        delta = delta * jnp.minimum(1.0, radius / jnp.maximum(dn, 1e-30))
    delta = jnp.clip(base + delta, lower, upper) - base
    # ‖c + tΔ‖² <= 1  ⟺  t²‖Δ‖² + 2t cᵀΔ − (1 − ‖c‖²) <= 0.
    a = jnp.sum(delta * delta, axis=1)
    b = jnp.sum(base * delta, axis=1)
    c = jnp.maximum(1.0 - jnp.sum(base * base, axis=1), 0.0)
    root = (-b + jnp.sqrt(b * b + a * c)) / jnp.maximum(a, 1e-30)
    over = jnp.sum((base + delta) ** 2, axis=1) > 1.0
    t = jnp.where(over, jnp.clip(root, 0.0, 1.0) * (1 - 4 * jnp.finfo(x.dtype).eps), 1.0)
    return base + t[:, None] * delta


@functools.partial(
    jax.jit, static_argnames=("num_steps", "num_restarts", "norm", "lower", "upper")
)
def _brew(W, base, Yb, target_x, target_Y, key, radius, step_size, *,
          num_steps, num_restarts, norm, lower, upper):  # fmt: skip
    """Gradient matching (Witches' Brew) for rows ``base`` at fixed ``W``."""

    def objective(x):
        return gradient_alignment(W, x, Yb, target_x, target_Y)

    value_and_grad = jax.value_and_grad(objective)
    # Ten-fold decays at 3/8, 5/8 and 7/8 of the steps.
    milestones = jnp.asarray([3 * num_steps // 8, 5 * num_steps // 8, 7 * num_steps // 8])

    def one(k):
        if norm == "linf":
            d0 = jax.random.uniform(k, base.shape, base.dtype, -radius, radius)
        else:
            d0 = jax.random.normal(k, base.shape, base.dtype)
            d0 = radius * d0 / jnp.linalg.norm(d0, axis=1, keepdims=True)
        x0 = project_perturbation(base + d0, base, radius=radius, norm=norm, lower=lower, upper=upper)

        def step(carry, i):
            x, m, v = carry
            _, g = value_and_grad(x)
            if norm == "linf":
                g = jnp.sign(g)
            else:
                g = g / jnp.maximum(jnp.linalg.norm(g, axis=1, keepdims=True), 1e-30)
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * g * g
            t = (i + 1).astype(base.dtype)
            mh, vh = m / (1 - 0.9**t), v / (1 - 0.999**t)
            lr = step_size * 0.1 ** jnp.sum(i >= milestones)
            x = project_perturbation(
                x - lr * mh / (jnp.sqrt(vh) + 1e-8), base,
                radius=radius, norm=norm, lower=lower, upper=upper,
            )  # fmt: skip
            return (x, m, v), None

        zeros = jnp.zeros_like(base)
        (x, _, _), _ = jax.lax.scan(step, (x0, zeros, zeros), jnp.arange(num_steps))
        return x, objective(x)

    xs, losses = jax.vmap(one)(jax.random.split(key, num_restarts))
    best = jnp.argmin(losses)
    return xs[best], objective(base), losses[best]


class CleanCamouflageSet(NamedTuple):
    """A clean-label attack; the first four fields are those of :class:`CamouflageSet`
    (so :func:`run_camouflage` takes either).

    Attributes:
      poison_x, poison_y: ``[k, d]`` perturbed pool rows of class ``y_adv`` and
        their (true) labels.
      camouflage_x, camouflage_y: ``[k_c, d]`` perturbed pool rows of class
        ``y_t`` and their (true) labels.
      poison_index, camouflage_index: the pool rows they were made from.
      radius: the absolute budget (``epsilon · scale``). norm: ``"linf"``/``"l2"``.
      poison_alignment, camouflage_alignment: ``B`` (Geiping et al. Eq. 3) of
        each set, ``[2]``: at the unperturbed pool rows and after brewing.
      surrogate_flipped: the attacker's surrogate trained on ``D ∪ S_p``
        predicts ``y_adv`` for the target (the poison works on the surrogate).
    """

    poison_x: Array
    poison_y: Array
    camouflage_x: Array
    camouflage_y: Array
    poison_index: np.ndarray
    camouflage_index: np.ndarray
    radius: float
    norm: str
    poison_alignment: np.ndarray
    camouflage_alignment: np.ndarray
    surrogate_flipped: bool


def _predict(W: Array, x: Array, num_classes: int | None) -> int:
    s = np.asarray(mm(W, x))
    return int(np.argmax(s)) if num_classes is not None else (1 if s[0] >= 0 else -1)


def craft_clean_camouflage(
    key: PRNGKey,
    data: Data,
    pool: Data,
    target_x: Array,
    target_y: int,
    adv_label: int,
    num_points: int,
    *,
    lam: float,
    epsilon: float = 16 / 255,
    norm: Norm = "linf",
    num_classes: int | None = None,
    num_camouflage: int | None = None,
    num_steps: int = 120,
    num_restarts: int = 4,
    step_size: float | None = None,
    selection: Literal["nearest", "random"] = "nearest",
    scale: float | None = None,
    lower: float = 0.0,
    upper: float = 1.0,
) -> CleanCamouflageSet:
    """Di et al.'s clean-label camouflaged poisoning (NeurIPS 2023, §4, Algorithm 1).

    1. Poison: ``k`` pool rows of class ``adv_label`` (their true class), the
       perturbations brewed against the surrogate trained on ``data`` to match
       the gradient of the target's loss at ``adv_label``.
    2. Camouflage: ``k_c`` pool rows of class ``target_y``, brewed against the
       surrogate trained on ``data ∪ S_p`` to match the gradient of the
       target's loss at ``target_y``.

    Labels are never changed; every row stays within the budget of its pool
    row, inside the box ``[lower, upper]`` and the unit ball (certified
    removal needs ``‖x‖₂ <= 1``).

    Args:
      key: Consumed (restarts; the bases when ``selection="random"``).
      data: The server's training rows as the attacker knows them (for the
        surrogate); labels ``±1`` or, with ``num_classes``, class ids.
      pool: The attacker's own rows (true labels), where the bases come from.
      target_x: ``[d]``. target_y: its true class. adv_label: the class wanted
        after the deletion (binary: ``-target_y``).
      num_points: ``k`` poison rows. num_camouflage: ``k_c`` (default ``k``).
      lam: The ``λ`` the attacker assumes (mean form, as
        :func:`dpunlearn.methods.certified_removal` takes it).
      epsilon: The budget relative to the data scale: the radius is
        ``epsilon · scale``. Default ``16/255``, Witches' Brew's budget in
        pixel units.
      norm: ``"linf"`` (signed Adam) or ``"l2"`` (Adam on normalised gradients).
      num_classes: ``K`` for a one-vs-rest model; ``None`` for binary ``±1``.
      num_steps, num_restarts: Steps per restart and restarts (the restart
        with the smallest ``B`` is kept). step_size: default ``radius / 10``.
      selection: ``"nearest"``: the pool rows of the class closest (``ℓ2``) to
        the target; ``"random"``: a random draw (Witches' Brew's default).
      scale: Default: ``max − min`` of ``data.x`` (``ℓ∞``, the feature range,
        as pixel budgets are fractions of 255) or the mean row norm of
        ``data.x`` (``ℓ2``).
      lower, upper: The feature box.

    Returns:
      A :class:`CleanCamouflageSet`; pass it to :func:`run_camouflage`.
    """
    _validate.prng_key("key", key)
    _validate.positive_int(num_points=num_points, num_steps=num_steps, num_restarts=num_restarts)
    _validate.positive(lam=lam, epsilon=epsilon)
    if norm not in ("linf", "l2"):
        raise ValueError(f"Expected norm in ('linf', 'l2'), got {norm!r}.")
    if selection not in ("nearest", "random"):
        raise ValueError(f"Expected selection in ('nearest', 'random'), got {selection!r}.")
    kc = num_points if num_camouflage is None else num_camouflage
    _validate.positive_int(num_camouflage=kc)
    if int(adv_label) == int(target_y):
        raise ValueError(f"Expected adv_label != target_y, both are {int(target_y)}.")
    X = jnp.asarray(data.x)
    dtype = X.dtype
    xt = jnp.asarray(target_x, dtype)
    if xt.ndim != 1 or xt.shape[0] != X.shape[1]:
        raise ValueError(f"Expected target_x of shape ({X.shape[1]},), got {xt.shape}.")
    PX, Py = np.asarray(pool.x, np.dtype(dtype)), np.asarray(pool.y)
    if PX.ndim != 2 or PX.shape[1] != X.shape[1] or Py.shape != (PX.shape[0],):
        raise ValueError(
            f"Expected pool.x [m, {X.shape[1]}] and pool.y [m], got {PX.shape} and {Py.shape}."
        )
    if scale is None:
        Xn = np.asarray(X)
        scale = float(Xn.max() - Xn.min()) if norm == "linf" else float(np.linalg.norm(Xn, axis=1).mean())
    _validate.positive(scale=scale)
    radius = float(epsilon) * float(scale)
    step = radius / 10 if step_size is None else float(step_size)
    _validate.positive(step_size=step)
    k_sel, k_p, k_c = jax.random.split(key, 3)

    def bases(label, count, k):
        rows = np.flatnonzero(Py == label)
        if rows.size < count:
            raise ValueError(
                f"Expected at least {count} pool rows of class {label}, found {rows.size}."
            )
        if selection == "nearest":
            dist = np.linalg.norm(PX[rows] - np.asarray(xt)[None, :], axis=1)
            return rows[np.argsort(dist, kind="stable")[:count]]
        return np.sort(np.asarray(jax.random.choice(k, rows, (count,), replace=False)))

    kp1, kp2 = jax.random.split(k_sel)
    p_idx, c_idx = bases(adv_label, num_points, kp1), bases(target_y, kc, kp2)
    y_train = jnp.asarray(data.y)
    Y = _head_labels(y_train, num_classes, dtype)
    Yp = _head_labels(Py[p_idx], num_classes, dtype)
    Yc = _head_labels(Py[c_idx], num_classes, dtype)
    Yt_adv = _head_labels(np.array([adv_label]), num_classes, dtype)
    Yt_true = _head_labels(np.array([target_y]), num_classes, dtype)
    static = dict(num_steps=num_steps, num_restarts=num_restarts, norm=norm, lower=lower, upper=upper)
    # Stage 1 (poison): the surrogate trained on the clean data.
    W0 = _fit(X, Y, lam)
    px, p_before, p_after = _brew(
        W0, jnp.asarray(PX[p_idx]), Yp, xt, Yt_adv, k_p, radius, step, **static
    )
    # Stage 2 (camouflage): the surrogate trained on D ∪ S_p.
    Wp = _fit(jnp.concatenate([X, px]), jnp.concatenate([Y, Yp], axis=1), lam)
    cx, c_before, c_after = _brew(
        Wp, jnp.asarray(PX[c_idx]), Yc, xt, Yt_true, k_c, radius, step, **static
    )
    flipped = _predict(Wp, xt, num_classes) == int(adv_label)
    return CleanCamouflageSet(
        px,
        jnp.asarray(Py[p_idx]),
        cx,
        jnp.asarray(Py[c_idx]),
        p_idx,
        c_idx,
        radius,
        norm,
        np.array([float(p_before), float(p_after)]),
        np.array([float(c_before), float(c_after)]),
        bool(flipped),
    )
