"""LiRA and U-LiRA: per-example likelihood-ratio membership tests from shadow models.

Carlini, Chien, Nasr, Song, Terzis, Tramèr. *Membership Inference Attacks From
First Principles.* IEEE S&P 2022. https://arxiv.org/abs/2112.03570

Hayes, Shumailov, Triantafillou, Khalifa, Papernot. *Inexact Unlearning Needs
More Careful Evaluations to Avoid a False Sense of Privacy.* SaTML 2025.
https://arxiv.org/abs/2403.01218

**LiRA.** ``M`` shadow models are trained on random halves of the data
(:func:`~dpunlearn.attacks.shadows.balanced_masks`: every example is "in"
exactly half of them), all in one ``vmap`` of ``method.train``. For every
example, the logit-scaled confidences ``φ`` of the "in" and the "out" models
are summarised by their **median** and standard deviation (per example, or
one global deviation: "fixed variance", better with few shadows). A target
model's ``φ`` on an example is then scored:

* online: ``log N(φ; μ_in, σ_in²) − log N(φ; μ_out, σ_out²)``;
* offline (no "in" models needed): the one-sided test of the paper,
  ``log Φ((φ − μ_out)/σ_out)`` (large when ``φ`` is above the out
  distribution; the released code uses ``−log N(φ; μ_out, σ_out²)``, a
  two-sided variant);
* the global-threshold baseline: ``φ`` itself.

Fixed variance here uses the global deviation of the "in" confidences for the
"in" Gaussian and of the "out" confidences for the "out" one (the released
online code uses the "in" one for both).

**U-LiRA.** The hypotheses of unlearning: was the target model trained on
``x`` and then asked to unlearn it ("forgotten"), or never trained on ``x``?
Every shadow model trains on a random half of the data and then unlearns a
random ``forget_size`` of its rows with ``method.unlearn`` (one request, so
the method's own unlearning produces the "forgotten" distribution). For
every example, the "forgotten" shadows (``x`` in their forget set) and the
"out" shadows (``x`` never in their training set) give the two Gaussians;
target models are scored as in LiRA on their forgotten examples (positives)
and their out examples (negatives). The *population* baseline thresholds
``φ`` globally (the usual "MIA efficacy" of unlearning papers).

Evaluation: ``num_targets`` models trained the same way as the shadows but
held out of the statistics; the (score, label) pairs of all target models and
examples are pooled into one ROC curve (as the LiRA code does).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats as _stats

from dpunlearn import _validate
from dpunlearn.attacks import roc, shadows
from dpunlearn.attacks.query import Query, confidence, linear_query
from dpunlearn.methods.base import Data, Method, as_data
from dpunlearn.types import PRNGKey

__all__ = [
    "LiraStats",
    "fit",
    "lira_attack",
    "model_confidences",
    "score",
    "ulira_attack",
]

VARIANTS = ("online", "online_fixed", "offline", "offline_fixed")


class LiraStats(NamedTuple):
    """Per-example Gaussians of the "in" and "out" confidences.

    Attributes:
      mean_in, mean_out: Medians ``[n]`` (NaN where an example has no sample).
      std_in, std_out: Standard deviations ``[n]``.
      global_std_in, global_std_out: One deviation over all examples
        (each example's samples centred on its median).
      count_in, count_out: Samples per example ``[n]``.
    """

    mean_in: np.ndarray
    mean_out: np.ndarray
    std_in: np.ndarray
    std_out: np.ndarray
    global_std_in: float
    global_std_out: float
    count_in: np.ndarray
    count_out: np.ndarray


def _summary(conf: np.ndarray, member: np.ndarray):
    vals = np.where(member, conf, np.nan)
    count = member.sum(axis=0)
    with np.errstate(all="ignore"), _quiet():
        med = np.nanmedian(vals, axis=0)
        sd = np.nanstd(vals, axis=0)
        centred = vals - med[None]
        gsd = float(np.sqrt(np.nanmean(centred**2))) if np.isfinite(centred).any() else np.nan
    return med, sd, gsd, count


class _quiet:
    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        self._w.__exit__(*exc)


def fit(conf, members, nonmembers=None) -> LiraStats:
    """LiRA's per-example statistics from shadow confidences.

    Args:
      conf: ``[M, n]`` confidences ``φ`` of every example under every shadow.
      members: ``bool[M, n]``: the example is in the "in" hypothesis for that
        shadow (trained on it; for U-LiRA: forgotten).
      nonmembers: ``bool[M, n]``, the "out" hypothesis (default ``~members``).
    """
    conf = np.asarray(conf, np.float64)
    members = np.asarray(members, bool)
    nonmembers = ~members if nonmembers is None else np.asarray(nonmembers, bool)
    if conf.shape != members.shape or conf.shape != nonmembers.shape or conf.ndim != 2:
        raise ValueError(f"Shape mismatch: conf {conf.shape}, members {members.shape}.")
    if np.any(members & nonmembers):
        raise ValueError("An example cannot be in both hypotheses for one shadow.")
    mi, si, gi, ci = _summary(conf, members)
    mo, so, go, co = _summary(conf, nonmembers)
    return LiraStats(mi, mo, si, so, gi, go, ci, co)


def score(stats: LiraStats, conf_target, variant: str = "online") -> np.ndarray:
    """Membership scores (higher = member) of target confidences ``[..., n]``.

    ``variant`` is one of ``"online"``, ``"online_fixed"``, ``"offline"``,
    ``"offline_fixed"``, or ``"global"`` (``φ`` itself).
    """
    c = np.asarray(conf_target, np.float64)
    if variant == "global":
        return c
    if variant not in VARIANTS:
        raise ValueError(f"Expected variant in {VARIANTS + ('global',)}, got {variant!r}.")
    fixed = variant.endswith("fixed")
    tiny = 1e-30
    s_out = (stats.global_std_out if fixed else stats.std_out) + tiny
    if variant.startswith("offline"):
        return _stats.norm.logcdf(c, stats.mean_out, s_out)
    s_in = (stats.global_std_in if fixed else stats.std_in) + tiny
    return _stats.norm.logpdf(c, stats.mean_in, s_in) - _stats.norm.logpdf(c, stats.mean_out, s_out)


def model_confidences(query: Query, params, data: Data) -> np.ndarray:
    """``φ`` of every row of ``data`` under every stacked model: ``[M, n]``."""
    data = as_data(data)
    return np.asarray(_confidence_program(query)(params, data.x, data.y), np.float64)


@functools.lru_cache(maxsize=32)
def _confidence_program(query: Query):
    """Compiled once per query (a NamedTuple of functions: hashable)."""
    return jax.jit(jax.vmap(lambda p, x, y: confidence(query, p, x, y), in_axes=(0, None, None)))


def _pooled(name, scores, positive, negative, fprs):
    s = np.asarray(scores)
    return roc.evaluate(name, s[positive], s[negative], fprs=fprs)


class LiraResult(NamedTuple):
    """Every variant of one attack.

    Attributes:
      results: ``{variant: AttackResult}`` (``"online"``, ``"online_fixed"``,
        ``"offline"``, ``"offline_fixed"``, ``"global"``).
      stats: The shadow statistics.
      num_shadows, num_targets: Models used.
      seconds_train: Wall-clock seconds of training (and unlearning) all models.
    """

    results: dict
    stats: LiraStats
    num_shadows: int
    num_targets: int
    seconds_train: float


def _evaluate_all(prefix, stats, conf_t, pos, neg, fprs):
    out = {}
    for v in VARIANTS + ("global",):
        s = score(stats, conf_t, v)
        s = np.where(np.isnan(s), -np.inf, s)  # no shadow sample for the example
        out[v] = _pooled(f"{prefix}_{v}", s, pos, neg, fprs)
    return out


def lira_attack(
    key: PRNGKey,
    method: Method,
    data: Data,
    *,
    query: Query | None = None,
    num_shadows: int = 64,
    num_targets: int = 4,
    fprs: tuple[float, ...] = (1e-3, 1e-2),
    batch_size: int | None = None,
) -> LiraResult:
    """LiRA against models trained by ``method`` (the training release).

    Trains ``num_shadows + num_targets`` models on balanced random halves in
    one ``vmap``; the last ``num_targets`` are the targets.
    """
    import time

    data = as_data(data)
    query = linear_query() if query is None else query
    _validate.positive_int(num_shadows=num_shadows, num_targets=num_targets)
    M = num_shadows + num_targets
    k_mask, k_train = jax.random.split(key)
    masks = shadows.balanced_masks(k_mask, M, data.num_rows)
    t0 = time.perf_counter()
    states, _ = shadows.train_models(
        method, jax.random.split(k_train, M), data, masks, batch_size=batch_size
    )
    jax.block_until_ready(states)
    seconds = time.perf_counter() - t0
    conf = model_confidences(query, states.params, data)
    keep = np.asarray(masks)
    stats = fit(conf[:num_shadows], keep[:num_shadows])
    ct, kt = conf[num_shadows:], keep[num_shadows:]
    return LiraResult(
        _evaluate_all("lira", stats, ct, kt, ~kt, fprs), stats, num_shadows, num_targets, seconds
    )


def ulira_attack(
    key: PRNGKey,
    method: Method,
    data: Data,
    *,
    query: Query | None = None,
    num_shadows: int = 64,
    num_targets: int = 4,
    forget_size: int | None = None,
    fprs: tuple[float, ...] = (1e-3, 1e-2),
    batch_size: int | None = None,
) -> LiraResult:
    """U-LiRA against ``method``'s unlearning: forgotten vs never trained.

    Every model trains on a random half of the rows, then unlearns the first
    ``forget_size`` (default a quarter of all rows) of a random order of its
    training rows in one request.
    """
    import time

    data = as_data(data)
    query = linear_query() if query is None else query
    _validate.positive_int(num_shadows=num_shadows, num_targets=num_targets)
    n = data.num_rows
    half = n // 2
    forget_size = max(1, n // 4) if forget_size is None else forget_size
    _validate.positive_int(forget_size=forget_size)
    if forget_size >= half:
        raise ValueError(f"Expected forget_size={forget_size} < n/2 = {half}.")
    M = num_shadows + num_targets
    k_perm, k_train, k_unl = jax.random.split(key, 3)
    perms = np.asarray(jax.vmap(lambda k: jax.random.permutation(k, n))(jax.random.split(k_perm, M)))
    trained = np.zeros((M, n), bool)
    np.put_along_axis(trained, perms[:, :half], True, axis=1)
    forgotten = np.zeros((M, n), bool)
    np.put_along_axis(forgotten, perms[:, :forget_size], True, axis=1)
    t0 = time.perf_counter()
    states, _ = shadows.train_models(
        method, jax.random.split(k_train, M), data, jnp.asarray(trained), batch_size=batch_size
    )
    states, charges, _ = shadows.unlearn_models(
        method,
        jax.random.split(k_unl, M),
        states,
        jnp.asarray(perms[:, :forget_size], jnp.int32),
        data,
        batch_size=batch_size,
    )
    jax.block_until_ready(states)
    seconds = time.perf_counter() - t0
    if hasattr(charges, "valid") and not np.all(np.asarray(charges.valid)):
        raise ValueError(
            f"{method.name} refused some forget requests (charge.valid is False): "
            "check the method's capacity for forget_size rows."
        )
    conf = model_confidences(query, states.params, data)
    out = ~trained
    S = num_shadows
    stats = fit(conf[:S], forgotten[:S], out[:S])
    res = _evaluate_all("ulira", stats, conf[S:], forgotten[S:], out[S:], fprs)
    res["population"] = res.pop("global")._replace(name="ulira_population")
    return LiraResult(res, stats, num_shadows, num_targets, seconds)
