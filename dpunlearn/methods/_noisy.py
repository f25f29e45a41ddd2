"""Shared machinery of the noisy-gradient methods (:mod:`.langevin`, :mod:`.noisy_sgd`).

Both methods run projected noisy (stochastic) gradient descent on the
L2-regularised objective

    F_D(θ) = (1/N) Σ_{i kept} ℓ(θ, x_i, y_i) + (λ/2)‖θ‖²,

through :func:`dpunlearn.transforms.noisy_clipped_step`, and certify
unlearning by the contraction of that process. What they need from the model
is collected here:

* :class:`LossConstants` — the smoothness ``β`` and the gradient bound ``G``
  of the per-example loss on the ball ``‖θ‖ ≤ R``; ``m = λ`` and ``L = β + λ``
  are the objective's constants. :func:`linear_constants` derives them for
  :func:`dpunlearn.models.linear` (binary logistic or softmax, rows of norm
  ``<= row_norm``), after checking that the model is that one.
* :func:`resolve` — validates the static configuration and turns it into a
  :class:`Setup` (``m``, ``L``, ``η``, the clip ``M``), refusing a loss that
  is not strongly convex (``λ <= 0``, or no constants for a model that is not
  the linear one) unless the escape hatch ``allow_nonconvex`` is set.
* :func:`curvature_probe` — a cheap necessary check of the declared
  constants: power iteration on Hessian-vector products of ``F`` (all rows)
  at the initial parameters and at a point of the ball. Its estimate of
  ``λ_min`` can only be too high and that of ``λ_max`` too low, so a truly
  ``m``-strongly convex, ``L``-smooth objective never fails it; a failure is
  proof that the declaration is wrong. It reads the data, so a refusal is itself one
  data-dependent bit; it never fires for a truly convex loss, and when it
  fires no model is released.
* per-example gradients of masked rows, parameter-pytree checks, and the
  on-device validity of data.

References:
  Chien, Wang, Chen, Li. Langevin Unlearning: A New Perspective of Noisy
  Gradient Descent for Machine Unlearning. NeurIPS 2024.
  https://arxiv.org/abs/2401.10371
  Chien, Wang, Chen, Li. Certified Machine Unlearning via Noisy Stochastic
  Gradient Descent. NeurIPS 2024. https://arxiv.org/abs/2403.17105
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dpunlearn import _sharding, _validate
from dpunlearn.models import Model
from dpunlearn.types import Array, PyTree

__all__ = ["LossConstants", "ObjectiveConstants", "linear_constants"]

ADJACENCIES = ("replace", "remove")


class LossConstants(NamedTuple):
    """Constants of the per-example loss ``θ ↦ ℓ(θ, x, y)`` on the ball ``‖θ‖ ≤ R``.

    Attributes:
      smoothness: ``β``: ``∇ℓ`` is ``β``-Lipschitz for every example (the
        loss itself must be convex; the objective's strong convexity comes
        from the L2 term ``λ``).
      gradient_bound: ``G``: ``‖∇ℓ‖ ≤ G`` for every example.
    """

    smoothness: float
    gradient_bound: float


def linear_constants(model: Model, *, row_norm: float = 1.0) -> LossConstants:
    """Constants of :func:`dpunlearn.models.linear` for rows with ``‖x‖ <= row_norm``.

    Binary logistic ``log(1 + e^{−y w·x})``: ``β = r²/4``, ``G = r`` (the
    derivative of the softplus is in ``(0, 1)``, its second derivative at
    most 1/4). Softmax cross-entropy of ``W x``: ``β = r²/2`` (the largest
    eigenvalue of ``diag(p) − ppᵀ`` is at most 1/2), ``G = √2·r`` (``‖p − e_y‖
    <= √2``). Both losses are convex in the parameters.

    The model is checked to BE that model: ``apply(P, x) = P x`` and the loss
    matches, at random points. Anything else raises.

    Raises:
      ValueError: If the model is not the linear logistic/softmax model.
    """
    _validate.positive(row_norm=row_norm)
    params = model.params
    ndim = np.ndim(params) if isinstance(params, (jax.Array, np.ndarray)) else -1
    if ndim not in (1, 2):
        raise ValueError(
            "Cannot derive loss constants: the model's parameters are not a single "
            "1-D (logistic) or 2-D (softmax) array, so it is not "
            "dpunlearn.models.linear. "
            "Pass loss_constants=LossConstants(smoothness, gradient_bound) (a "
            "declaration you are responsible for), or allow_nonconvex=True."
        )
    with jax.ensure_compile_time_eval():  # concrete even if built inside a trace
        rng = np.random.default_rng(0)
        shape = np.shape(params)
        dim = shape[-1]
        ok = True
        for _ in range(3):
            p = jnp.asarray(rng.normal(size=shape), jnp.float32)
            x = jnp.asarray(rng.normal(size=dim), jnp.float32)
            out = np.asarray(model.apply(p, x), np.float64)
            ref = np.asarray(p, np.float64) @ np.asarray(x, np.float64)
            ok &= out.shape == np.shape(ref) and np.allclose(
                out, ref, rtol=1e-4, atol=1e-4
            )
            if ndim == 1:
                y = 1.0 if rng.random() < 0.5 else -1.0
                loss = float(model.loss(p, x, jnp.asarray(y, jnp.float32)))
                want = float(np.logaddexp(0.0, -y * float(ref)))
            else:
                y = int(rng.integers(shape[0]))
                loss = float(model.loss(p, x, jnp.asarray(y, jnp.int32)))
                want = float(np.logaddexp.reduce(ref) - ref[y])
            ok &= math.isclose(loss, want, rel_tol=1e-4, abs_tol=1e-4)
    if not ok:
        raise ValueError(
            "Cannot derive loss constants: the model does not compute the linear "
            "logistic/softmax loss of dpunlearn.models.linear. Pass "
            "loss_constants=LossConstants(smoothness, gradient_bound), or "
            "allow_nonconvex=True."
        )
    r = float(row_norm)
    if ndim == 1:
        return LossConstants(smoothness=r * r / 4.0, gradient_bound=r)
    return LossConstants(smoothness=r * r / 2.0, gradient_bound=math.sqrt(2.0) * r)


@dataclasses.dataclass(frozen=True)
class ObjectiveConstants:
    """Resolved static constants of a noisy method (what :func:`resolve` returns).

    Attributes:
      lam: ``λ``, the L2 strength; the objective's strong convexity ``m``.
      smoothness: ``L = β + λ`` (None when unknown, ``allow_nonconvex``).
      step_size: ``η`` (``1/L`` by default).
      clip_norm: ``M``: per-example clip, and the sensitivity constant.
      row_norm: Data contract ``‖x_i‖ <= row_norm`` (derived constants only).
      assumed: ``allow_nonconvex``: the constants are assumed, not checked.
      probe_iters: Power iterations of the curvature probe (0: off).
    """

    lam: float
    smoothness: float | None
    step_size: float
    clip_norm: float
    row_norm: float | None
    assumed: bool
    probe_iters: int

    @property
    def contraction(self) -> float:
        """``c = 1 − ηm``."""
        return 1.0 - self.step_size * self.lam


def resolve(
    model: Model,
    *,
    lam,
    sigma,
    radius,
    epsilon,
    delta,
    learning_rate,
    loss_constants: LossConstants | None,
    clip_norm,
    allow_nonconvex: bool,
    adjacency: str,
    probe_iters: int,
) -> ObjectiveConstants:
    """Validates the static configuration of a noisy method (see module doc)."""
    if not isinstance(model, Model):
        raise ValueError(
            "Expected model to be a dpunlearn.models.Model, got "
            f"{type(model).__name__}."
        )
    if adjacency not in ADJACENCIES:
        raise ValueError(f"Expected adjacency in {ADJACENCIES}, got {adjacency!r}.")
    _validate.positive(sigma=sigma, radius=radius, epsilon=epsilon)
    _validate.open_interval(0.0, 1.0, delta=delta)
    if (
        isinstance(probe_iters, bool)
        or not isinstance(probe_iters, int)
        or probe_iters < 0
    ):
        raise ValueError(
            f"Expected probe_iters to be an integer >= 0, got {probe_iters!r}."
        )
    v = _validate._as_float("lam", lam)
    if v is None or not (v > 0 and math.isfinite(v)):
        raise ValueError(
            f"The objective is not strongly convex: lam={lam}. The certificates of "
            "noisy-gradient unlearning (Chien et al. 2024) need m = lam > 0 (a "
            "convex loss plus (lam/2)·||θ||²); pass lam > 0."
        )
    lam = float(v)
    row_norm = None
    if loss_constants is None and not allow_nonconvex:
        loss_constants = linear_constants(model)
        row_norm = 1.0
    if loss_constants is not None:
        loss_constants = LossConstants(*loss_constants)
        _validate.non_negative(smoothness=loss_constants.smoothness)
        _validate.positive(gradient_bound=loss_constants.gradient_bound)
        smoothness = float(loss_constants.smoothness) + lam
    else:
        smoothness = None
    if clip_norm is None:
        if loss_constants is None:
            raise ValueError(
                "allow_nonconvex=True needs clip_norm (the per-example clip M that "
                "bounds the sensitivity)."
            )
        clip_norm = float(loss_constants.gradient_bound)
    _validate.positive(clip_norm=clip_norm)
    clip_norm = float(clip_norm)
    if not allow_nonconvex and clip_norm < float(loss_constants.gradient_bound) * (
        1 - 1e-12
    ):
        raise ValueError(
            f"clip_norm={clip_norm} is below the loss's gradient bound "
            f"{loss_constants.gradient_bound}: clipping would then change the update "
            "away from a gradient step of the strongly convex objective, which the "
            "certificate needs. Raise clip_norm, or set allow_nonconvex=True."
        )
    if learning_rate is None:
        if smoothness is None:
            raise ValueError(
                "allow_nonconvex=True without loss_constants needs an explicit "
                "learning_rate (η = 1/L needs the smoothness L)."
            )
        learning_rate = 1.0 / smoothness
    _validate.positive(learning_rate=learning_rate)
    learning_rate = float(learning_rate)
    if smoothness is not None and learning_rate > (1.0 / smoothness) * (1 + 1e-12):
        raise ValueError(
            f"Expected learning_rate={learning_rate} <= 1/L = {1.0 / smoothness} "
            "(the contraction 1 − ηm of a gradient step needs η <= 1/L)."
        )
    if learning_rate * lam > 1.0:
        raise ValueError(f"Expected learning_rate*lam={learning_rate * lam} <= 1.")
    return ObjectiveConstants(
        lam=lam,
        smoothness=smoothness,
        step_size=learning_rate,
        clip_norm=clip_norm,
        row_norm=row_norm,
        assumed=bool(allow_nonconvex),
        probe_iters=0 if allow_nonconvex else probe_iters,
    )


# ---------------------------------------------------------------------------
# On-device helpers
# ---------------------------------------------------------------------------


def check_params_like(name: str, params: PyTree, reference: PyTree) -> None:
    """Structural check: same pytree structure, shapes and dtypes as ``reference``."""
    s_ref, s_got = jax.tree.structure(reference), jax.tree.structure(params)
    if s_ref != s_got:
        raise ValueError(
            f"Mismatched parameter pytree in {name}: expected structure {s_ref}, "
            f"got {s_got}."
        )
    for a, b in zip(jax.tree.leaves(reference), jax.tree.leaves(params)):
        if np.shape(a) != np.shape(b) or jnp.result_type(a) != jnp.result_type(b):
            raise ValueError(
                f"Mismatched parameter pytree in {name}: a leaf of shape "
                f"{np.shape(b)} / dtype {jnp.result_type(b)} where the model has "
                f"{np.shape(a)} / {jnp.result_type(a)}."
            )


def per_example_grads(loss, params, x, y, keep: Array):
    """``∇ℓ(θ, x_i, y_i)`` for every row (leading axis), zero where ``keep`` is false.

    Also returns each row's gradient norm (zero for dropped rows).
    """
    grads = jax.vmap(jax.grad(loss), in_axes=(None, 0, 0))(params, x, y)
    keep = _sharding.rows_like(keep, x)
    leaves = jax.tree.leaves(grads)
    sq = sum(jnp.sum(jnp.reshape(g, (g.shape[0], -1)) ** 2, axis=1) for g in leaves)
    norms = jnp.where(keep, jnp.sqrt(sq), 0.0)
    grads = jax.tree.map(
        lambda g: jnp.where(jnp.reshape(keep, (-1,) + (1,) * (g.ndim - 1)), g, 0), grads
    )
    return grads, norms


# Rows per block of :func:`clipped_grad_sum`: a block's per-example gradients
# (rows x parameters floats) are kept near 2**18 floats (1 MiB in float32), so
# they stay in cache between the pass that writes them and the two that read
# them. Measured on a 2-core CPU, linear model, n = 11,982, d = 784: blocks of
# 256 rows cost 1.0-1.5x a plain gradient step, one block of all rows 3.2x.
_BLOCK_FLOATS = 2**18


def clipped_grad_sum(loss, params, x, y, keep: Array, clip_norm: float, *, block_rows=None):
    """``Σ_{i kept} clip_C(∇ℓ(θ, x_i, y_i))`` and every row's gradient norm.

    The same sum as :func:`per_example_grads` followed by
    :func:`dpunlearn.transforms.clip_per_example` (times its normaliser), up
    to float rounding, computed block by block: for each block of
    ``block_rows`` rows, the per-example gradients (``jax.vmap(jax.grad)``),
    their norms, the clip factors ``c_i = keep_i·min(1, C/‖∇ℓ_i‖)`` and
    ``Σ_i c_i ∇ℓ_i`` (``lax.scan`` over the blocks, the remainder last). The
    ``[n, p]`` per-example gradients are never materialised at once: peak
    memory is one block (about 2**18 floats by default), which stays in cache,
    so the data are read once per step. (The previous path, per-example
    gradients then the clip transform, materialised ``[n, p]`` floats, read
    them twice and masked them in a third pass: 1.2 GB for a 25k-parameter
    MLP on 4,000 rows.) On rows sharded over ``k`` devices (an explicit
    mesh) a block is ``block_rows / k`` consecutive rows of every shard, so
    the blocks never move rows between devices.

    Dropped rows enter through ``jnp.where`` on the loss, so their gradient
    is zero for finite data (the methods poison the charge of non-finite
    data, :func:`data_ok`). Returns ``(sum, norms)``; ``norms`` are zero for
    dropped rows, as in :func:`per_example_grads`.

    Args:
      loss, params, x, y: Per-example loss, parameters, rows (leading axis;
        ``x`` may be a pytree), labels.
      keep: ``bool[n]``; rows where false contribute nothing.
      clip_norm: ``C > 0``.
      block_rows: Rows per block (static); default ``max(1, 2**18 // p)``.
    """
    n = int(keep.shape[0])
    p = sum(int(np.prod(np.shape(a))) for a in jax.tree.leaves(params))
    rows = int(block_rows) if block_rows is not None else max(1, _BLOCK_FLOATS // max(p, 1))
    rows = min(rows, n)
    keep = _sharding.rows_like(keep, x)
    y = _sharding.rows_like(y, x)

    def masked(q, xi, yi, ki):
        return jnp.where(ki, loss(q, xi, yi), 0.0)

    per_grad = jax.vmap(jax.grad(masked), in_axes=(None, 0, 0, 0))

    def block(xb, yb, kb):
        g = per_grad(params, xb, yb, kb)
        # Materialise the block's gradients once (XLA otherwise recomputes
        # them inside the norm's reduction, which is slow for dense layers).
        g = jax.lax.optimization_barrier(g)
        leaves = jax.tree.leaves(g)
        sq = sum(jnp.sum(jnp.square(jnp.reshape(a, (a.shape[0], -1))), axis=1) for a in leaves)
        norms = jnp.where(kb, jnp.sqrt(sq), 0.0)
        tiny = jnp.finfo(norms.dtype).tiny
        c = jnp.where(kb, jnp.minimum(1.0, clip_norm / jnp.maximum(norms, tiny)), 0.0)
        weighted = lambda a: _sharding.tensordot(c.astype(a.dtype), a, axes=1)
        return jax.tree.map(weighted, g), norms

    if rows >= n:
        return block(x, y, keep)

    # Rows split over k devices (data explicitly sharded over a mesh axis): a
    # block takes the same consecutive rows of every shard, so every device
    # works on every block and no row moves. k = 1 otherwise: blocks of
    # consecutive rows.
    k = _sharding.row_shards(jax.tree.leaves(x)[0], n)
    local = n // k
    per = max(1, rows // k)  # rows of each shard in a block
    full = local // per

    def by_shard(a):
        return jnp.reshape(a, (k, local) + a.shape[1:])

    xs, ys, ks = jax.tree.map(by_shard, x), by_shard(y), by_shard(keep)

    def take(start, size):
        def cut(a):
            b = jax.lax.dynamic_slice_in_dim(a, start, size, axis=1)
            return jnp.reshape(b, (k * size,) + b.shape[2:])

        return jax.tree.map(cut, xs), cut(ys), cut(ks)

    def body(acc, i):
        total, norms = block(*take(i * per, per))
        return jax.tree.map(jnp.add, acc, total), jnp.reshape(norms, (k, per))

    zero = jax.tree.map(jnp.zeros_like, params)
    total, norms = _sharding.scan(body, zero, jnp.arange(full))  # [full, k, per]
    norms = jnp.reshape(jnp.moveaxis(norms, 0, 1), (k, full * per))
    if full * per < local:
        rest, rest_norms = block(*take(full * per, local - full * per))
        total = jax.tree.map(jnp.add, total, rest)
        norms = jnp.concatenate([norms, jnp.reshape(rest_norms, (k, -1))], axis=1)
    return total, jnp.reshape(norms, (n,))


def data_ok(data, row_norm: float | None) -> Array:
    """On-device: every feature finite and (if set) every row norm ``<= row_norm``."""
    ok = jnp.asarray(True)
    for leaf in jax.tree.leaves(data.x):
        if jnp.issubdtype(leaf.dtype, jnp.inexact):
            ok &= jnp.all(jnp.isfinite(leaf))
    if jnp.issubdtype(jnp.result_type(data.y), jnp.inexact):
        ok &= jnp.all(jnp.isfinite(data.y))
    if row_norm is not None:
        ok &= max_row_norm(data) <= row_norm * (1 + 1e-5)
    return ok


def max_row_norm(data) -> Array:
    leaves = jax.tree.leaves(data.x)
    n = leaves[0].shape[0]
    sq = sum(
        jnp.sum(jnp.reshape(a, (n, -1)).astype(jnp.float32) ** 2, axis=1)
        for a in leaves
    )
    return jnp.sqrt(jnp.max(sq))


def check_row_norms(data, row_norm: float | None) -> None:
    """Eager: rows of norm ``<= row_norm`` (the data contract of derived constants)."""
    if row_norm is None or not _validate.is_concrete(data.x):
        return
    leaves = [np.asarray(a, np.float64) for a in jax.tree.leaves(data.x)]
    n = leaves[0].shape[0]
    r = float(
        np.sqrt(np.max(sum(np.sum(a.reshape(n, -1) ** 2, axis=1) for a in leaves)))
    )
    if not r <= row_norm * (1 + 1e-5):
        raise ValueError(
            f"Expected every row of data.x to have norm <= {row_norm} (the constants "
            f"derived for the linear model assume it); the largest is {r:.6g}. "
            "Normalise the rows."
        )


def tree_finite(tree) -> Array:
    ok = jnp.asarray(True)
    for leaf in jax.tree.leaves(tree):
        if jnp.issubdtype(leaf.dtype, jnp.inexact):
            ok &= jnp.all(jnp.isfinite(leaf))
    return ok


def tree_select(pred: Array, on_true, on_false):
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


def curvature_probe(
    loss, params, data, lam: float, smoothness: float, iters: int, radius
):
    """Estimates ``(λ_min, λ_max)`` of ``∇²F`` at the initial params and one point
    of the ball, ``F = mean_i ℓ_i + (λ/2)‖θ‖²`` over all rows.

    Power iteration on ``H`` gives ``λ̂_max <= λ_max``; on ``sI − H`` with
    ``s >= λ_max`` it gives ``λ̂_min >= λ_min``. Returns the smallest
    ``λ̂_min`` and largest ``λ̂_max`` over the probe points (float32).
    """
    from jax.flatten_util import ravel_pytree

    flat0, unravel = ravel_pytree(params)
    dtype = flat0.dtype

    def objective(flat):
        p = unravel(flat)
        per = jax.vmap(loss, in_axes=(None, 0, 0))(p, data.x, data.y)
        return jnp.mean(per) + 0.5 * lam * jnp.sum(flat**2)

    def hvp(flat, v):
        return jax.jvp(jax.grad(objective), (flat,), (v,))[1]

    def power(matvec, v):
        def body(_, v):
            w = matvec(v)
            return w / jnp.maximum(jnp.linalg.norm(w), 1e-30)

        v = _sharding.fori_loop(0, iters, body, v / jnp.linalg.norm(v))
        return jnp.vdot(v, matvec(v))

    key = jax.random.key(0)  # fixed: the probe is not part of the mechanism
    k1, k2, k3 = jax.random.split(key, 3)
    far = jax.random.normal(k1, flat0.shape, dtype)
    far = far / jnp.linalg.norm(far) * 0.5 * radius
    lo, hi = jnp.inf, -jnp.inf

    def extremes(point, kv):
        v0 = jax.random.normal(kv, flat0.shape, dtype)
        top = power(lambda v: hvp(point, v), v0)
        shift = jnp.maximum(top, smoothness) * 1.05 + 1e-6
        return shift - power(lambda v: shift * v - hvp(point, v), v0), top

    for point, kv in ((flat0, k2), (far, k3)):
        bottom, top = extremes(point, kv)
        lo, hi = jnp.minimum(lo, bottom), jnp.maximum(hi, top)
    return lo, hi


class Probe:
    """The curvature probe of one method: eager when the data are concrete
    (raises), in-graph otherwise (the caller poisons its charge)."""

    def __init__(self, loss, setup: ObjectiveConstants, params0, radius: float):
        self.setup = setup
        self.active = bool(setup.probe_iters)
        self._run = jax.jit(
            lambda data: curvature_probe(
                loss,
                params0(),
                data,
                setup.lam,
                setup.smoothness,
                setup.probe_iters,
                radius,
            )
        )

    def eager(self, data) -> bool:
        """Runs and raises now if the data are concrete; True if it ran."""
        if not self.active or not _validate.is_concrete(data):
            return False
        with jax.ensure_compile_time_eval():  # concrete even inside an outer trace
            lo, hi = self._run(data)
        lo, hi = float(lo), float(hi)
        if not bool(probe_verdict(lo, hi, self.setup.lam, self.setup.smoothness)):
            raise_probe(lo, hi, self.setup.lam, self.setup.smoothness)
        return True

    def in_graph(self, data) -> Array:
        """On-device verdict (True when inactive)."""
        if not self.active:
            return jnp.asarray(True)
        lo, hi = self._run(data)
        return probe_verdict(lo, hi, self.setup.lam, self.setup.smoothness)


def probe_verdict(lo, hi, lam: float, smoothness: float) -> Array:
    """True when the probe found nothing against ``m = lam``, ``L = smoothness``."""
    tol = 1e-3 * smoothness + 1e-6
    if isinstance(lo, float) and isinstance(hi, float):
        return lo >= lam * (1 - 1e-3) - tol and hi <= smoothness * (1 + 1e-3) + tol
    return (lo >= lam * (1 - 1e-3) - tol) & (hi <= smoothness * (1 + 1e-3) + tol)


def raise_probe(lo, hi, lam: float, smoothness: float) -> None:
    found = []
    if not lo >= lam * (1 - 1e-3) - (1e-3 * smoothness + 1e-6):
        found.append(f"a Hessian eigenvalue {float(lo):.4g} < m = lam = {lam:.4g}")
    if not hi <= smoothness * (1 + 1e-3) + (1e-3 * smoothness + 1e-6):
        found.append(f"a Hessian eigenvalue {float(hi):.4g} > L = {smoothness:.4g}")
    raise ValueError(
        "The objective is not strongly convex / smooth as declared: the curvature "
        f"probe found {' and '.join(found)}. The certificate does not apply. Check "
        "loss_constants, or pass allow_nonconvex=True for a non-convex model "
        "(uncertified; see the factory's docstring)."
    )
