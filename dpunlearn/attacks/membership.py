"""Membership inference on unlearning: the classic attack and the dual-model attack.

Chen, Zhang, Wang, Backes, Humbert, Zhang. *When Machine Unlearning Jeopardizes
Privacy.* ACM CCS 2021. https://arxiv.org/abs/2005.02205

**Threat model.** Black-box access to the posteriors of the original model
``M_o`` and of the unlearned model ``M_u`` (after one record was deleted),
a shadow data set from the same distribution and the training recipe (here:
the :class:`~dpunlearn.methods.Method` itself). For a target record ``x``:
was ``x`` in ``M_o``'s training set and deleted (label 1), or never trained
on (label 0)?

**Protocol** (as the authors' code): the records are split 50/50 into a
shadow and a target pool, each 80 % "positive" (may be trained on) and
20 % "negative" (never trained on). On each side, ``num_originals`` original
models are trained on random subsets of the positive pool, and from each,
``num_unlearned`` unlearned models each delete one random training record
(``method.unlearn``; for the ``retrain`` method this is exact retraining).
Each (original, unlearned) pair gives one positive (the deleted record) and
one negative (a record of the negative pool), queried on both models.

**Features** of the two posterior vectors ``p_o``, ``p_u`` (:data:`FEATURES`):
``direct_concat`` ``[p_o ‖ p_u]``; ``sorted_concat`` (both reordered by the
ascending order of ``p_o``); ``direct_diff`` ``p_o − p_u``; ``sorted_diff``;
``l2_distance`` ``‖p_o − p_u‖₂``. The **classic** attack (the paper's
baseline, "basic MIA") uses ``p_o`` alone, sorted in descending order so that
the attack model is class-agnostic; ``classic_unlearned`` uses ``p_u``
alone (sorted) (the usual unlearning MIA on the released model). An attack model is
trained on the shadow side's features and evaluated on the target side.

**Degradation** (the paper's privacy-degradation metrics, as its code computes
them): for each target sample, the probability each attack assigns to the
sample's *true* label; ``DegCount`` = fraction where the dual attack's is
higher than the classic one's, ``DegRate`` = mean difference.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dpunlearn import _validate
from dpunlearn.attacks import classifier, roc, shadows
from dpunlearn.attacks.query import Query, linear_query, posteriors
from dpunlearn.methods.base import Data, Method, as_data
from dpunlearn.types import PRNGKey

__all__ = [
    "FEATURES",
    "DualModelResult",
    "PairSamples",
    "degradation",
    "dual_features",
    "dual_model_attack",
    "pair_samples",
]

FEATURES = ("direct_concat", "sorted_concat", "direct_diff", "sorted_diff", "l2_distance")


def dual_features(p_orig, p_unl, feature: str) -> np.ndarray:
    """Chen et al.'s features of posterior pairs ``[N, K]`` -> ``[N, F]``."""
    if feature not in FEATURES:
        raise ValueError(f"Expected feature in {FEATURES}, got {feature!r}.")
    po, pu = np.asarray(p_orig, np.float64), np.asarray(p_unl, np.float64)
    if po.shape != pu.shape or po.ndim != 2:
        raise ValueError(f"Shape mismatch: got {po.shape} and {pu.shape}.")
    if feature == "l2_distance":
        return np.linalg.norm(po - pu, axis=1, keepdims=True)
    if feature.startswith("sorted"):
        order = np.argsort(po, axis=1, kind="stable")
        po = np.take_along_axis(po, order, axis=1)
        pu = np.take_along_axis(pu, order, axis=1)
    if feature.endswith("concat"):
        return np.concatenate([po, pu], axis=1)
    return po - pu


def degradation(prob_dual, prob_classic, labels) -> tuple[float, float]:
    """``(DegCount, DegRate)`` from each attack's ``P(label = 1)`` per sample."""
    pd, pc = np.asarray(prob_dual, np.float64), np.asarray(prob_classic, np.float64)
    y = np.asarray(labels).astype(bool)
    true_d = np.where(y, pd, 1 - pd)
    true_c = np.where(y, pc, 1 - pc)
    diff = true_d - true_c
    return float(np.mean(diff > 0)), float(np.mean(diff))


class PairSamples(NamedTuple):
    """Posteriors of target records on (original, unlearned) model pairs.

    Attributes:
      p_orig, p_unl: ``[2P, K]`` released posteriors on ``M_o`` and ``M_u``.
      labels: ``[2P]``, 1 for the deleted record, 0 for a never-trained one.
      rows: ``[2P]`` row indices of the records.
      pair: ``[2P]`` index of the (original, unlearned) pair.
    """

    p_orig: np.ndarray
    p_unl: np.ndarray
    labels: np.ndarray
    rows: np.ndarray
    pair: np.ndarray


def pair_samples(
    key: PRNGKey,
    method: Method,
    data: Data,
    positive_pool,
    negative_pool,
    *,
    query: Query,
    num_originals: int,
    num_unlearned: int,
    original_size: int,
    batch_size: int | None = None,
) -> PairSamples:
    """Trains originals on subsets of ``positive_pool``, unlearns one record each.

    Every original model deletes ``num_unlearned`` distinct records of its own
    training set, one per unlearned model; every pair is queried on its
    deleted record and on one random record of ``negative_pool``.
    """
    data = as_data(data)
    _validate.positive_int(
        num_originals=num_originals, num_unlearned=num_unlearned, original_size=original_size
    )
    pos, neg = np.asarray(positive_pool), np.asarray(negative_pool)
    if original_size > pos.size:
        raise ValueError(f"Expected original_size={original_size} <= {pos.size} (positive pool).")
    if num_unlearned > original_size - 1:
        raise ValueError("Expected num_unlearned < original_size.")
    n = data.num_rows
    k_sub, k_train, k_unl, k_neg = jax.random.split(key, 4)
    O, U = num_originals, num_unlearned
    # Each original: a random subset of the positive pool; its first U rows are
    # the records its unlearned models delete.
    perms = jax.vmap(lambda k: jax.random.permutation(k, pos.size))(jax.random.split(k_sub, O))
    chosen = pos[np.asarray(perms)[:, :original_size]]  # [O, size]
    masks = np.zeros((O, n), bool)
    np.put_along_axis(masks, chosen, True, axis=1)
    states, _ = shadows.train_models(
        method, jax.random.split(k_train, O), data, jnp.asarray(masks), batch_size=batch_size
    )
    deleted = chosen[:, :U].reshape(-1)  # [O·U]
    repeated = jax.tree.map(lambda a: jnp.repeat(a, U, axis=0), states)
    unl, _, _ = shadows.unlearn_models(
        method,
        jax.random.split(k_unl, O * U),
        repeated,
        jnp.asarray(deleted[:, None], jnp.int32),
        data,
        batch_size=batch_size,
    )
    negatives = neg[np.asarray(jax.random.randint(k_neg, (O * U,), 0, neg.size))]

    rows = jnp.asarray(np.concatenate([deleted, negatives]))
    params_o = jax.tree.map(lambda a: jnp.concatenate([a, a]), repeated.params)
    params_u = jax.tree.map(lambda a: jnp.concatenate([a, a]), unl.params)
    post = _posterior_program(query)
    p_orig = np.asarray(post(params_o, rows, data.x))
    p_unl = np.asarray(post(params_u, rows, data.x))
    labels = np.concatenate([np.ones(O * U, int), np.zeros(O * U, int)])
    pair = np.concatenate([np.arange(O * U), np.arange(O * U)])
    return PairSamples(p_orig, p_unl, labels, np.asarray(rows), pair)


@functools.lru_cache(maxsize=32)
def _posterior_program(query: Query):
    """``(params [P, ...], rows [P], x) -> [P, K]``: model ``i`` queried on row ``i``."""

    @jax.jit
    def post(params, rows, x):
        return jax.vmap(lambda p, r: posteriors(query, p, x[r][None])[0])(params, rows)

    return post


class DualModelResult(NamedTuple):
    """The dual-model attack against one method, with its baselines.

    Attributes:
      feature: The dual feature used.
      dual: :class:`~dpunlearn.attacks.roc.AttackResult` of the dual-model
        attack on the target side.
      classic: The classic attack (``p_o`` only; the paper's baseline).
      classic_unlearned: The classic attack on the unlearned model (``p_u`` only).
      deg_count, deg_rate: Chen et al.'s degradation, dual vs classic.
      target: The target side's :class:`PairSamples`.
    """

    feature: str
    dual: roc.AttackResult
    classic: roc.AttackResult
    classic_unlearned: roc.AttackResult
    deg_count: float
    deg_rate: float
    target: PairSamples


def _sorted(p) -> np.ndarray:
    """Posteriors sorted in descending order (class-agnostic, as the shadow
    attacks the classic baseline comes from)."""
    return -np.sort(-np.asarray(p, np.float64), axis=1)


def _fit_predict(model, Xs, ys, Xt) -> np.ndarray:
    m = classifier.fresh(model)
    m.fit(Xs, ys)
    return np.asarray(m.predict_proba(Xt))[:, 1]


def dual_model_attack(
    key: PRNGKey,
    method: Method,
    data: Data,
    *,
    query: Query | None = None,
    feature: str = "sorted_diff",
    attack_model: Any = None,
    num_originals: int = 8,
    num_unlearned: int = 15,
    original_size: int | None = None,
    positive_fraction: float = 0.8,
    fprs: tuple[float, ...] = (1e-3, 1e-2),
    batch_size: int | None = None,
) -> DualModelResult:
    """Chen et al.'s dual-model attack against ``method``, with the classic baselines.

    Args:
      key: Randomness of the split, the subsets and the models.
      method: Any method of the common interface.
      data: All records (they are split into shadow and target pools here).
      query: How posteriors are read from parameters (default
        :func:`~dpunlearn.attacks.query.linear_query`).
      feature: One of :data:`FEATURES`.
      attack_model: An unfitted classifier with ``fit``/``predict_proba``
        (scikit-learn style; cloned for each use). Default
        :class:`~dpunlearn.attacks.classifier.MLPAttack`.
      num_originals, num_unlearned: Originals per side and unlearned models
        per original (the authors' defaults are 10 and 20).
      original_size: Training-set size of an original (default: the whole
        positive pool of a side).
      positive_fraction: Share of each pool that may be trained on.
      fprs: FPRs at which TPR is reported.
      batch_size: Models per vmapped chunk.
    """
    data = as_data(data)
    query = linear_query() if query is None else query
    attack_model = classifier.MLPAttack() if attack_model is None else attack_model
    _validate.open_interval(0.0, 1.0, positive_fraction=positive_fraction)
    n = data.num_rows
    k_split, k_shadow, k_target = jax.random.split(key, 3)
    perm = np.asarray(jax.random.permutation(k_split, n))
    sides = []
    for half, k in ((perm[: n // 2], k_shadow), (perm[n // 2 :], k_target)):
        cut = int(round(positive_fraction * half.size))
        pos, neg = half[:cut], half[cut:]
        size = pos.size if original_size is None else original_size
        sides.append(
            pair_samples(
                k, method, data, pos, neg, query=query, num_originals=num_originals,
                num_unlearned=num_unlearned, original_size=size, batch_size=batch_size,
            )
        )
    sh, tg = sides
    dual = _fit_predict(attack_model, dual_features(sh.p_orig, sh.p_unl, feature), sh.labels,
                        dual_features(tg.p_orig, tg.p_unl, feature))
    classic = _fit_predict(attack_model, _sorted(sh.p_orig), sh.labels, _sorted(tg.p_orig))
    classic_u = _fit_predict(attack_model, _sorted(sh.p_unl), sh.labels, _sorted(tg.p_unl))
    y = tg.labels.astype(bool)

    def ev(name, s):
        return roc.evaluate(name, s[y], s[~y], fprs=fprs)

    deg_count, deg_rate = degradation(dual, classic, tg.labels)
    return DualModelResult(
        feature=feature,
        dual=ev(f"dual_{feature}", dual),
        classic=ev("classic", classic),
        classic_unlearned=ev("classic_unlearned", classic_u),
        deg_count=deg_count,
        deg_rate=deg_rate,
        target=tg,
    )
