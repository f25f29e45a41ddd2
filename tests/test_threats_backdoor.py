"""Unlearning-activated backdoor (Liu et al., AAAI 2024; poison + mitigation)."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from dpunlearn import data as D
from dpunlearn import methods
from dpunlearn.threats import backdoor as B


def test_backdoor_activates_only_when_the_mitigation_is_deleted():
    # Digits, 10 classes, one-vs-rest certified removal (λ = 1e-5) on 1,000
    # rows; the attacker adds 20 poison rows (trigger: +0.3 on the four corner
    # pixels, label 0) and 60 mitigation rows (same trigger, true labels) from
    # its own pool. Deleting the mitigation must raise the attack success rate
    # from <= 0.2 to >= 0.8 at a clean-accuracy cost <= 0.02; deleting 60
    # random rows instead (the control) must not reach 0.8.
    ds = D.load("digits", seed=0, label_format="int")
    tr = methods.Data(ds.X_train[:1000], ds.y_train[:1000].astype(np.int32))
    pool = methods.Data(ds.X_train[1000:], ds.y_train[1000:].astype(np.int32))
    test = methods.Data(ds.X_test, ds.y_test.astype(np.int32))
    trig = np.zeros(64, np.float32)
    trig[[0, 7, 56, 63]] = 0.3
    method = methods.certified_removal(
        lam=1e-5, sigma=0.01, epsilon=1.0, delta=1e-4, num_shadows=0, num_classes=10
    )
    attack = B.craft_backdoor(jax.random.key(0), pool, trig, 0, 20, 60)
    assert set(np.asarray(attack.poison_y).tolist()) == {0}
    assert (np.asarray(attack.mitigation_y) != 0).all()
    r = B.run_backdoor(method, tr, attack, test, trig, 0, key=jax.random.key(1))
    assert r.asr_before <= 0.2 and r.asr_after >= 0.8
    assert r.clean_accuracy_before - r.clean_accuracy_after <= 0.02
    rnd = np.random.default_rng(0).choice(1000, 60, replace=False)
    c = B.run_backdoor(method, tr, attack, test, trig, 0, key=jax.random.key(1), delete=rnd)
    assert c.asr_after < 0.8


def test_bad_input_is_named():
    pool = methods.Data(np.zeros((10, 4), np.float32), np.arange(10) % 2)
    with pytest.raises(ValueError, match="trigger"):
        B.craft_backdoor(jax.random.key(0), pool, np.zeros(3), 0, 1, 1)
    with pytest.raises(ValueError, match="num_poison"):
        B.craft_backdoor(jax.random.key(0), pool, np.zeros(4), 0, 4, 4)
    z = B.apply_trigger(np.full((2, 4), 0.9, np.float32), np.full(4, 0.5))
    assert np.linalg.norm(z, axis=1).max() <= 1 + 1e-6 and (z >= 0).all()
