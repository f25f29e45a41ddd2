"""A monitor of deletion requests: score each request, flag or rate-limit
the anomalous ones, before the request is applied.

Malicious deletion requests (:mod:`dpunlearn.threats`) look ordinary one by
one (a data subject asks for its data back) but differ from ordinary
requests in what they do to the model. Following the defences the survey of
Chen, Li, Zhao & Huai (AI Magazine 2025) names, and the request-level
detectors of Marchant et al. (AAAI 2022, §7: "rate-limit requests whose
influence is anomalously large"), this module scores a request ``R`` (row
indices into the training data) against the current released weights ``w``
and the data, never against the secret of a certified model:

* **budget cost**: the certified-removal charge of ``R`` (Guo et al., ICML
  2020, Corollary 1 in its integral form, :mod:`dpunlearn.certified`):
  ``v = H⁻¹Δ``, ``Δ = |R|λw + Σ_{i∈R} ∇ℓ_i``, ``s = X′v``,
  ``cost = (γ/2)‖X‖₂‖s ⊙ s‖₂`` with ``H`` the Hessian of the remaining rows;
* **accuracy influence**: the first-order rise of a held-out loss when ``R``
  is removed, ``∇L_val(w)ᵀv`` (Koh & Liang, ICML 2017, eq. 4; removal moves
  the weights by ``+v``);
* **fairness influence**: the same for a smooth equalized-odds gap
  (:func:`dpunlearn.threats.fairness.smooth_gap`);
* **distance from the data**: the mean distance from ``R``'s rows to their
  ``k``-th nearest neighbour among the other rows;
* **clustering**: ``−log`` of the mean pairwise distance among ``R``'s rows
  and the rows of the last requests (coordinated requests are tight).

Each component becomes a robust z-score against the same component of
*ordinary* requests (random rows, :func:`reference_features`): ``z = (f −
median)/(1.4826·MAD)``; the distance is two-sided, the others one-sided.
The request's score is the largest z (:func:`combine`); the threshold is the
``1 − alpha`` quantile of the ordinary requests' scores, so about a fraction
``alpha`` of ordinary requests are flagged.

:class:`RequestMonitor` is the small host-side stateful wrapper: it keeps the
reference, the last requests (for the clustering score) and the recent flags
(for rate limiting) and returns a :class:`Decision` that
:func:`dpunlearn.serve.serve` (``monitor=``) applies and records in the
ledger's ``note``. Evaluation: :func:`roc_auc` of malicious against ordinary
requests.
"""

from __future__ import annotations

import collections
import functools
import json
from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dpunlearn import _sharding, _validate
from dpunlearn.methods.base import Data
from dpunlearn.solvers import mm
from dpunlearn.types import Array, PRNGKey

__all__ = [
    "COMPONENTS",
    "Decision",
    "Reference",
    "RequestMonitor",
    "combine",
    "fit_reference",
    "knn_distance",
    "linear_features",
    "linear_influence",
    "reference_features",
    "roc_auc",
    "tightness",
]

#: Score components, in the order of a feature vector.
COMPONENTS = ("cost", "accuracy", "fairness", "distance", "clustering")
_TWO_SIDED = {"distance"}


# ---------------------------------------------------------------------------
# pure scoring functions
# ---------------------------------------------------------------------------


def _heads(params: Array, y: Array, num_classes: int | None):
    if num_classes is None:
        return params[None, :], jnp.asarray(y, params.dtype)[None, :]
    Y = jnp.where(jnp.asarray(y)[None, :] == jnp.arange(num_classes)[:, None], 1.0, -1.0)
    return params, Y.astype(params.dtype)


@functools.partial(jax.jit, static_argnames=("num_classes",))
def linear_influence(
    params: Array,
    X: Array,
    y: Array,
    mask: Array,
    rows: Array,
    lam: float | Array,
    *,
    num_classes: int | None = None,
    gamma: float = 0.25,
) -> tuple[Array, Array]:
    """Removal step ``v`` and certified-removal charge of removing ``rows``.

    For a logistic-loss linear model (binary ``params [d]``, labels ``±1``; or
    one-vs-rest ``params [K, d]``, labels ``0..K−1`` with ``num_classes=K``)
    trained on the rows where ``mask`` holds, in Guo et al.'s sum form with
    L2 strength ``λ`` (mean form). Per head ``h``: ``Δ_h = |R|λw_h + Σ_{i∈R}
    ∇ℓ_h,i``, ``H_h`` the Hessian of the remaining rows plus ``λn′I``,
    ``v_h = H_h⁻¹Δ_h``, ``s_h = X′v_h``, ``cost_h = (γ/2)‖X′‖₂‖s_h ⊙ s_h‖₂``
    (the integral form of Corollary 1); heads combine in ℓ2. Jittable.

    Returns:
      ``(v [K, d] (or [1, d] for binary), cost)``.
    """
    W, Y = _heads(params, y, num_classes)
    keep = _sharding.scatter(jnp.asarray(mask, X.dtype), rows, 0.0)
    n_left = jnp.sum(keep)
    norm = jnp.sqrt(jnp.linalg.eigvalsh(mm(X.T * keep, X))[-1])

    def head(w, yh):
        z = yh * mm(X, w)
        curv = keep * jax.nn.sigmoid(z) * jax.nn.sigmoid(-z)
        H = mm(X.T * curv, X) + lam * n_left * jnp.eye(X.shape[1], dtype=X.dtype)
        lg = -yh * jax.nn.sigmoid(-z)
        g = _sharding.gather_rows(lg, rows)[:, None] * _sharding.gather_rows(X, rows)
        delta = rows.shape[0] * lam * w + jnp.sum(g, axis=0)
        v = jnp.linalg.solve(H, delta)
        s = mm(X, v) * keep
        return v, 0.5 * gamma * norm * jnp.linalg.norm(s * s)

    V, costs = jax.vmap(head)(W, Y)
    return V, jnp.sqrt(jnp.sum(costs**2))


def _val_loss(params, X, y, num_classes):
    W, Y = _heads(params, y, num_classes)
    return jnp.mean(jnp.sum(jax.nn.softplus(-Y * mm(W, X.T)), axis=0))


@functools.partial(jax.jit, static_argnames=("k",))
def knn_distance(X: Array, mask: Array, rows: Array, *, k: int = 5) -> Array:
    """Mean over ``rows`` of the distance to the ``k``-th nearest other row.

    Neighbours are the rows where ``mask`` holds, excluding ``rows``
    themselves (a request cannot vouch for itself). Jittable.
    """
    others = _sharding.scatter(jnp.asarray(mask, bool), rows, False)
    Q = _sharding.gather_rows(X, rows)
    d2 = jnp.sum(Q**2, 1)[:, None] + jnp.sum(X**2, 1)[None, :] - 2 * mm(Q, X.T)
    d2 = jnp.where(others[None, :], jnp.maximum(d2, 0.0), jnp.inf)
    kth = -jax.lax.top_k(-_sharding.replicated(d2), k)[0][:, -1]  # [m, n], not X
    return jnp.mean(jnp.sqrt(kth))


def tightness(points: Array) -> Array:
    """``−log`` of the mean pairwise distance among ``points [m, d]`` (``m >= 2``)."""
    m = points.shape[0]
    d2 = jnp.sum((points[:, None, :] - points[None, :, :]) ** 2, -1)
    off = ~jnp.eye(m, dtype=bool)
    mean = jnp.sum(jnp.where(off, jnp.sqrt(jnp.maximum(d2, 0.0)), 0.0)) / (m * (m - 1))
    return -jnp.log(jnp.maximum(mean, 1e-12))


class Reference(NamedTuple):
    """Robust location and scale of each component over ordinary requests,
    and the score threshold at the chosen false-flag rate.

    Attributes:
      median, scale: ``[len(COMPONENTS)]`` (NaN where a component is absent).
      threshold: The ``1 − alpha`` quantile of the ordinary requests' scores.
      alpha: The intended false-flag rate.
    """

    median: np.ndarray
    scale: np.ndarray
    threshold: float
    alpha: float


def _zscores(features: np.ndarray, ref: Reference) -> np.ndarray:
    z = (features - ref.median) / ref.scale
    two = np.array([c in _TWO_SIDED for c in COMPONENTS])
    return np.where(two, np.abs(z), z)


def combine(features, ref: Reference) -> tuple[float, np.ndarray]:
    """``(score, z)``: the largest z-score over the components present, and all z.

    ``features``: ``[len(COMPONENTS)]`` with NaN for absent components.
    """
    f = np.asarray(features, float)
    if f.shape != (len(COMPONENTS),):
        raise ValueError(f"Expected features of shape ({len(COMPONENTS)},), got {f.shape}.")
    z = _zscores(f, ref)
    ok = np.isfinite(z)
    return (float(np.max(z[ok])) if ok.any() else float("-inf")), z


def fit_reference(ordinary: np.ndarray, *, alpha: float = 0.05) -> Reference:
    """Fits a :class:`Reference` to the features of ordinary requests ``[m, C]``.

    A component is kept when it is finite on every ordinary request; its
    scale is ``1.4826·MAD`` (consistent with the standard deviation for
    normal data), floored at ``1e-6·(|median| + 1e-12)`` so constant
    components do not divide by zero.
    """
    F = np.asarray(ordinary, float)
    if F.ndim != 2 or F.shape[1] != len(COMPONENTS) or F.shape[0] < 5:
        raise ValueError(
            f"Expected ordinary features of shape (m >= 5, {len(COMPONENTS)}), got {F.shape}."
        )
    _validate.open_interval(0.0, 1.0, alpha=alpha)
    present = np.isfinite(F).all(0)
    med = np.where(present, np.median(np.where(present, F, 0), 0), np.nan)
    mad = np.median(np.abs(np.where(present, F, 0) - np.nan_to_num(med)), 0)
    scale = np.where(present, np.maximum(1.4826 * mad, 1e-6 * (np.abs(np.nan_to_num(med)) + 1e-12)), np.nan)
    ref = Reference(med, scale, np.inf, float(alpha))
    scores = np.array([combine(f, ref)[0] for f in F])
    return ref._replace(threshold=float(np.quantile(scores, 1 - alpha)))


def roc_auc(malicious: Sequence[float], ordinary: Sequence[float]) -> float:
    """ROC AUC of malicious (positive) against ordinary scores: the
    Mann–Whitney probability ``P(s_mal > s_ord) + ½P(s_mal = s_ord)``."""
    a = np.asarray(malicious, float)
    b = np.asarray(ordinary, float)
    if a.ndim != 1 or b.ndim != 1 or a.size == 0 or b.size == 0:
        raise ValueError(
            f"Expected two non-empty 1-D score arrays, got shapes {a.shape} and {b.shape}."
        )
    gt = (a[:, None] > b[None, :]).mean()
    eq = (a[:, None] == b[None, :]).mean()
    return float(gt + 0.5 * eq)


# ---------------------------------------------------------------------------
# features of a request for a linear model
# ---------------------------------------------------------------------------


def linear_features(
    lam: float,
    *,
    num_classes: int | None = None,
    validation: Data | None = None,
    fairness: tuple[Data, Any] | None = None,
    k: int = 5,
    temperature: float = 0.1,
) -> Callable[[Any, Any, Data, np.ndarray | None], np.ndarray]:
    """A feature function ``(request, state, data, history) -> [len(COMPONENTS)]``
    for linear logistic models (``state.params``, ``state.mask``; e.g.
    :func:`dpunlearn.methods.certified_removal`).

    Args:
      lam: The model's ``λ`` (mean form).
      num_classes: ``K`` for one-vs-rest params ``[K, d]``; ``None`` for binary.
      validation: Held-out ``Data`` for the accuracy influence (else NaN).
      fairness: ``(Data, group)`` held out with its sensitive attribute, for
        the fairness influence of a binary model (else NaN).
      k: Neighbour rank of the distance score.
      temperature: Of the smooth gap.

    ``history`` (rows of recent requests, ``[h, d]`` or ``None``) enters the
    clustering score; with fewer than two points in all it is NaN.
    """
    _validate.positive(lam=lam)
    _validate.positive_int(k=k)
    from dpunlearn.threats.fairness import smooth_gap

    if fairness is not None and num_classes is not None:
        raise ValueError("Expected fairness=None for a one-vs-rest model (binary only).")

    def features(request, state, data: Data, history=None) -> np.ndarray:
        X = jnp.asarray(data.x)
        rows = jnp.atleast_1d(jnp.asarray(request))
        params = jnp.asarray(state.params)
        V, cost = linear_influence(params, X, jnp.asarray(data.y), state.mask, rows, lam, num_classes=num_classes)
        out = np.full(len(COMPONENTS), np.nan)
        out[0] = float(cost)
        if validation is not None:
            g = jax.grad(_val_loss)(params, jnp.asarray(validation.x, X.dtype), jnp.asarray(validation.y), num_classes)
            out[1] = float(jnp.sum(jnp.reshape(g, V.shape) * V))
        if fairness is not None:
            fd, fg = fairness
            g = jax.grad(smooth_gap)(
                params, jnp.asarray(fd.x, X.dtype), jnp.asarray(fd.y, X.dtype), jnp.asarray(fg, bool),
                temperature=temperature,
            )  # fmt: skip
            out[2] = float(jnp.dot(g, V[0]))
        out[3] = float(knn_distance(X, state.mask, rows, k=k))
        pts = np.asarray(_sharding.gather_rows(X, rows))
        if history is not None and len(history):
            pts = np.concatenate([pts, np.asarray(history)])
        if pts.shape[0] >= 2:
            out[4] = float(tightness(jnp.asarray(pts)))
        return out

    return features


def reference_features(
    features: Callable,
    state,
    data: Data,
    *,
    key: PRNGKey,
    num_requests: int = 50,
    request_size: int = 1,
    history_size: int = 0,
) -> np.ndarray:
    """Features of ``num_requests`` ordinary requests: random rows still in
    ``state.mask``, ``request_size`` each; with ``history_size`` rows of other
    random rows as the recent history. ``[num_requests, len(COMPONENTS)]``."""
    _validate.prng_key("key", key)
    _validate.positive_int(num_requests=num_requests, request_size=request_size)
    alive = np.flatnonzero(np.asarray(state.mask))
    X = np.asarray(data.x)
    out = []
    for i in range(num_requests):
        pick = np.asarray(jax.random.choice(jax.random.fold_in(key, i), alive, (request_size + history_size,), replace=False))
        hist = X[pick[request_size:]] if history_size else None
        out.append(features(pick[:request_size], state, data, hist))
    return np.stack(out)


# ---------------------------------------------------------------------------
# the host-side monitor
# ---------------------------------------------------------------------------


def _finite(v: float) -> float | None:
    """Rounded for the ledger; ``None`` where not finite (strict JSON)."""
    return round(float(v), 4) if np.isfinite(v) else None


class Decision(NamedTuple):
    """What the monitor decided about one request.

    Attributes:
      action: ``"allow"``, ``"flag"`` (allowed, marked for audit), ``"refuse"``
        or ``"defer"`` (rate-limited: resubmit later).
      score: The combined score (:func:`combine`); threshold: the flag level.
      components: ``{name: z-score}`` of the components present.
      reason: Why, in words.
    """

    action: Literal["allow", "flag", "refuse", "defer"]
    score: float
    threshold: float
    components: dict
    reason: str

    @property
    def applied(self) -> bool:
        return self.action in ("allow", "flag")

    def note(self) -> str:
        """A compact JSON record for the ledger's ``note`` field."""
        return json.dumps(
            {
                "monitor": self.action,
                "score": _finite(self.score),
                "threshold": _finite(self.threshold),
                "z": {k: round(v, 3) for k, v in self.components.items()},
            },
            sort_keys=True,
        )


class RequestMonitor:
    """Scores each request before it is applied; flags, refuses or rate-limits.

    Args:
      features: ``(request, state, data, history) -> [len(COMPONENTS)]``, e.g.
        :func:`linear_features`.
      reference: A :class:`Reference` of ordinary requests (:func:`fit_reference`).
      on_flag: ``"flag"`` (apply and mark) or ``"refuse"`` (do not apply).
      window: How many recent requests the rate limit and the clustering
        score look at.
      max_flags: Within the last ``window`` requests, at most this many
        flagged; further anomalous requests are ``"defer"``-red.
      history_rows: Rows of recent requests kept for the clustering score.

    Use inline: ``serve(method, state, request, data, key=..., ledger=...,
    monitor=monitor)``; or call ``monitor(request, state, data)`` yourself.
    Not thread-safe (one instance per serving loop).
    """

    def __init__(
        self,
        features: Callable,
        reference: Reference,
        *,
        on_flag: Literal["flag", "refuse"] = "flag",
        window: int = 20,
        max_flags: int = 3,
        history_rows: int = 0,
    ):
        if on_flag not in ("flag", "refuse"):
            raise ValueError(f"Expected on_flag in ('flag', 'refuse'), got {on_flag!r}.")
        _validate.positive_int(window=window, max_flags=max_flags)
        if history_rows < 0:
            raise ValueError(f"Expected history_rows >= 0, got {history_rows}.")
        self.features = features
        self.reference = reference
        self.on_flag = on_flag
        self.max_flags = max_flags
        self.recent = collections.deque(maxlen=window)
        self.history = collections.deque(maxlen=max(history_rows, 1))
        self.history_rows = history_rows
        self.decisions: list[Decision] = []

    def score(self, request, state, data: Data) -> tuple[float, np.ndarray]:
        hist = np.stack(list(self.history)) if self.history_rows and self.history else None
        return combine(self.features(request, state, data, hist), self.reference)

    def __call__(self, request, state, data: Data) -> Decision:
        score, z = self.score(request, state, data)
        comps = {c: float(v) for c, v in zip(COMPONENTS, z) if np.isfinite(v)}
        thr = self.reference.threshold
        anomalous = score > thr
        if not anomalous:
            action, reason = "allow", "score within the ordinary range"
        elif sum(self.recent) >= self.max_flags:
            action = "defer"
            reason = f"rate limit: {sum(self.recent)} flagged in the last {len(self.recent)} requests"
        else:
            action = self.on_flag
            top = max(comps, key=comps.get)
            reason = f"score {score:.2f} > {thr:.2f} (largest: {top})"
        self.recent.append(bool(anomalous))
        if self.history_rows:
            for row in np.atleast_2d(np.asarray(data.x)[np.atleast_1d(np.asarray(request))]):
                self.history.append(row)
        d = Decision(action, score, thr, comps, reason)
        self.decisions.append(d)
        return d
