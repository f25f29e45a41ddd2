"""Deletion requests chosen to degrade accuracy, served by certified removal."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dpunlearn import data as D
from dpunlearn import methods
from dpunlearn.threats import selection as S


def test_accuracy_deletions_raise_held_out_loss_3x_more_than_random():
    # Breast cancer (456 training rows); the attacker evaluates on half of the
    # test split, the effect is measured on the other half (logistic loss of
    # the unlearned model). 40 deletions (9 %); random: mean |change| over 3
    # random 40-row requests. Control: the selection with its sign flipped
    # (deletions that lower the loss) must fail the criterion.
    ds = D.load("breast-cancer", seed=0)
    tr = methods.Data(ds.X_train, ds.y_train)
    h = ds.X_test.shape[0] // 2
    ev = methods.Data(ds.X_test[:h], ds.y_test[:h])
    Xt, yt = ds.X_test[h:], ds.y_test[h:]
    lam = 1e-3
    method = methods.certified_removal(lam=lam, sigma=0.01, epsilon=1.0, delta=1e-4, num_shadows=0)
    state, _ = method.train(jax.random.key(0), tr, None)

    def loss(st):
        return float(jnp.mean(jax.nn.softplus(-yt * (Xt @ st.params))))

    base = loss(state)

    def raised(rows):
        st, _, _ = method.unlearn(jax.random.key(1), state, jnp.asarray(rows), tr)
        return loss(st) - base

    sel = S.select_accuracy_deletions(tr, 40, lam=lam, eval_data=ev, rounds=4)
    assert sel.surrogate[-1] > sel.surrogate[0]
    targeted = raised(sel.rows)
    n = tr.x.shape[0]
    random = np.mean([abs(raised(np.random.default_rng(s).choice(n, 40, replace=False))) for s in range(3)])
    wrong = S.select_accuracy_deletions(tr, 40, lam=lam, eval_data=ev, rounds=4, sign=-1)
    assert targeted >= 3 * random
    assert not raised(wrong.rows) >= 3 * random


def test_candidates_restrict_the_choice_and_bad_input():
    ds = D.load("breast-cancer", seed=0)
    tr = methods.Data(ds.X_train, ds.y_train)
    ev = methods.Data(ds.X_test, ds.y_test)
    sel = S.select_accuracy_deletions(tr, 4, lam=1e-3, eval_data=ev, rounds=2, candidates=np.arange(10))
    assert set(sel.rows.tolist()) <= set(range(10)) and len(set(sel.rows.tolist())) == 4
    with pytest.raises(ValueError, match="num_deletions"):
        S.select_accuracy_deletions(tr, 11, lam=1e-3, eval_data=ev, candidates=np.arange(10))
    with pytest.raises(ValueError, match="candidates"):
        S.select_accuracy_deletions(tr, 1, lam=1e-3, eval_data=ev, candidates=np.array([-1]))
