"""Membership inference on unlearning: features, ROC metrics, and the dual-model attack.

The end-to-end test is the expected outcome of Chen et al. (CCS 2021) on an
exact-retraining baseline: the dual-model attack (original and unlearned
posteriors) separates deleted records from never-seen ones where the
classic attack on one model cannot. Fixed seeds (deterministic); the margins
were chosen from one run (dual AUC 0.95, classic 0.58 on digits), and a
control with shuffled shadow labels must lose the signal.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from dpunlearn import data as D
from dpunlearn import methods, models
from dpunlearn.attacks import classifier, membership, query, roc


def test_confidence_is_the_logit_of_the_true_class_posterior():
    rng = np.random.default_rng(0)
    W = jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)
    x = jnp.asarray(rng.normal(size=(6, 3)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 4, 6))
    q = query.linear_query("softmax")
    p = np.asarray(query.posteriors(q, W, x), np.float64)
    py = p[np.arange(6), np.asarray(y)]
    np.testing.assert_allclose(query.confidence(q, W, x, y), np.log(py / (1 - py)), rtol=1e-4)
    # Binary ±1: φ = y·margin.
    w = jnp.asarray(rng.normal(size=3), jnp.float32)
    yb = jnp.asarray(np.where(rng.random(6) > 0.5, 1.0, -1.0), jnp.float32)
    np.testing.assert_allclose(
        query.confidence(query.linear_query("pm1"), w, x, yb), yb * (x @ w), rtol=1e-5
    )
    # Release defences.
    lo = query.posteriors(query.label_only(q), W, x)
    assert np.array_equal(np.asarray(lo).argmax(1), p.argmax(1)) and np.all(np.asarray(lo).sum(1) == 1)
    t1 = np.asarray(query.posteriors(query.top_k(q, 1), W, x))
    np.testing.assert_allclose(t1.max(1), p.max(1), rtol=1e-5)
    np.testing.assert_allclose(t1.sum(1), 1.0, rtol=1e-5)


def test_dual_features_follow_the_papers_definitions():
    po = np.array([[0.2, 0.5, 0.3]])
    pu = np.array([[0.1, 0.6, 0.3]])
    np.testing.assert_allclose(membership.dual_features(po, pu, "direct_diff"), po - pu)
    # Sorted by ascending p_o: order (0, 2, 1).
    np.testing.assert_allclose(membership.dual_features(po, pu, "sorted_diff"), [[0.1, 0.0, -0.1]])
    np.testing.assert_allclose(
        membership.dual_features(po, pu, "sorted_concat"), [[0.2, 0.3, 0.5, 0.1, 0.3, 0.6]]
    )
    np.testing.assert_allclose(membership.dual_features(po, pu, "l2_distance"), [[np.sqrt(0.02)]])
    with pytest.raises(ValueError, match="feature"):
        membership.dual_features(po, pu, "cosine")
    # DegCount / DegRate from the probability of the true label.
    count, rate = membership.degradation([0.9, 0.4], [0.6, 0.3], [1, 0])
    assert count == 0.5 and rate == pytest.approx(((0.9 - 0.6) + (0.6 - 0.7)) / 2)


def test_roc_metrics_agree_with_sklearn_and_count_exactly():
    rng = np.random.default_rng(1)
    pos, neg = rng.normal(1.0, 1, 300), rng.normal(0, 1, 700)
    ref = roc_auc_score(np.r_[np.ones(300), np.zeros(700)], np.r_[pos, neg])
    assert roc.auc(pos, neg) == pytest.approx(ref, abs=1e-12)
    pt = roc.tpr_at_fpr(pos, neg, 0.01)
    assert pt.fp <= 7 and pt.fpr == pt.fp / 700
    assert pt.tp == int(np.sum(pos >= pt.threshold)) and pt.fp == int(np.sum(neg >= pt.threshold))
    assert pt.tpr_interval[0] <= pt.tpr <= pt.tpr_interval[1]
    curve = roc.roc_curve(pos, neg)
    assert np.trapezoid(curve.tpr, curve.fpr) == pytest.approx(ref, abs=1e-12)


@pytest.fixture(scope="module")
def digits_data():
    ds = D.load("digits", seed=0)
    return methods.Data(jnp.asarray(ds.X_train[:500]), jnp.asarray(ds.y_train[:500]))


def test_dual_model_attack_beats_the_classic_attack_on_exact_retraining(digits_data):
    method = methods.retrain(models.linear(64, num_classes=10), lam=0.005, tol=1e-4)
    attack = classifier.MLPAttack(steps=400)
    res = membership.dual_model_attack(
        jax.random.key(0), method, digits_data, query=query.linear_query("softmax"),
        attack_model=attack, num_originals=4, num_unlearned=10,
    )
    assert res.dual.auc >= 0.85, res.dual.auc
    assert res.classic.auc <= 0.7, res.classic.auc
    assert res.dual.auc - res.classic.auc >= 0.2
    assert res.deg_count > 0.5 and res.deg_rate > 0
    assert set(res.dual.tpr_at) == {1e-3, 1e-2}
    # Control: the same attack trained on shuffled shadow labels has nothing
    # to learn (what the thresholds above would wrongly pass if the
    # features leaked the label some other way).
    tg = res.target
    perm = np.random.default_rng(0).permutation(tg.labels.size)
    feats = membership.dual_features(tg.p_orig, tg.p_unl, "sorted_diff")
    half = tg.labels.size // 2
    idx_fit, idx_eval = perm[:half], perm[half:]
    shuffled = np.random.default_rng(1).permutation(tg.labels[idx_fit])
    m = classifier.MLPAttack(steps=400).fit(feats[idx_fit], shuffled)
    s = m.predict_proba(feats[idx_eval])[:, 1]
    y = tg.labels[idx_eval].astype(bool)
    assert roc.auc(s[y], s[~y]) < 0.75
