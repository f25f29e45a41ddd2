"""Camouflaged poisoning (Di et al., NeurIPS 2023), dirty-label version."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from dpunlearn import data as D
from dpunlearn import methods
from dpunlearn.threats import camouflage as C


def test_craft_shapes_and_bad_input():
    x = np.full(64, 0.125, np.float32)
    a = C.craft_camouflage(jax.random.key(0), x, 3, 4, 5)
    assert a.poison_x.shape == (5, 64) and a.camouflage_x.shape == (5, 64)
    assert set(np.asarray(a.poison_y)) == {4} and set(np.asarray(a.camouflage_y)) == {3}
    assert np.linalg.norm(np.asarray(a.poison_x), axis=1).max() <= 1 + 1e-6
    assert not np.allclose(a.poison_x, a.camouflage_x)  # independent jitter
    with pytest.raises(ValueError, match="adv_label"):
        C.craft_camouflage(jax.random.key(0), x, 3, 3, 5)
    with pytest.raises(ValueError, match="target_x"):
        C.craft_camouflage(jax.random.key(0), x[None], 3, 4, 5)


def test_camouflage_flips_the_target_only_after_the_deletion():
    # Digits (10 classes), 1,000 training rows, one-vs-rest certified removal
    # (λ = 1e-5), 12 correctly classified test targets, y_adv = y_t + 1 mod 10.
    # With k = 20 poison + 20 camouflage rows (2 % each) the target must stay
    # correct before the deletion and flip after it in >= 90 % of trials; with
    # k = 3 (the wrong scale) the attack must not reach 90 %.
    ds = D.load("digits", seed=0, label_format="int")
    tr = methods.Data(ds.X_train[:1000], ds.y_train[:1000].astype(np.int32))
    method = methods.certified_removal(
        lam=1e-5, sigma=0.01, epsilon=1.0, delta=1e-4, num_shadows=0, num_classes=10
    )
    state, _ = method.train(jax.random.key(0), tr, None)
    pred = np.asarray(method.predict(state.params, ds.X_test))
    targets = np.flatnonzero(pred == ds.y_test)[:12]

    def trials(k, idx):
        out = []
        for i, j in enumerate(idx):
            yt = int(ds.y_test[j])
            a = C.craft_camouflage(jax.random.key(100 + i), ds.X_test[j], yt, (yt + 1) % 10, k)
            r = C.run_camouflage(method, tr, a, ds.X_test[j], yt, key=jax.random.key(200 + i))
            assert not bool(np.asarray(r.state.mask)[r.camouflage_rows].any())
            out.append((r.correct_before, r.success))
        return np.array(out)

    main = trials(20, targets)
    assert main[:, 0].mean() >= 0.9  # stealth: correct before the deletion
    assert main[:, 1].mean() >= 0.9  # success after it
    control = trials(3, targets[:4])
    assert control[:, 1].mean() < 0.9
