"""Careless and hostile input to certified removal: a clear error, or a poisoned
certificate under ``jit``, never a finite bound that is wrong.

``S`` below is the setup of the hardening review: 40 rows in 5 dimensions with
norms 1/2, labels from the first coordinate, λ = 0.1, σ = 1.
"""

from __future__ import annotations

import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify

from dpunlearn import certified as C


def setup():
    r = np.random.default_rng(0)
    X = r.normal(size=(40, 5)).astype("f4")
    X /= 2 * np.linalg.norm(X, axis=1, keepdims=True)
    y = np.where(X[:, 0] > 0, 1.0, -1.0)
    s = C.train(jax.random.key(0), X, y, lam=0.1, sigma=1.0)
    return X, y, s


@pytest.fixture(scope="module")
def S():
    return setup()


def exact_residual(state, X, y):
    """``‖∇L_b(w; D′)‖`` of the stored model, in float64 NumPy."""
    X = np.asarray(X, np.float64)
    w = np.asarray(state.params, np.float64)
    b = np.asarray(state.perturbation, np.float64)
    m = np.asarray(state.mask, np.float64)
    y = np.asarray(y, np.float64)
    g = -y / (1 + np.exp(y * (X @ w)))
    return np.linalg.norm((m * g) @ X + float(state.lam) * m.sum() * w + b)


def poisoned(state, info=None, like=None):
    ok = not np.isfinite(float(state.grad_residual_bound))
    if info is not None:
        ok &= not bool(info.valid) and not np.isfinite(float(info.cumulative_bound))
    if like is not None:  # the model is left unchanged
        ok &= np.array_equal(state.params, like.params)
        ok &= np.array_equal(state.mask, like.mask)
    return ok


# ---------------------------------------------------------------------------
# 1. The data a removal is given must be the data the model was trained on.
# ---------------------------------------------------------------------------


def _other_data(X, y):
    j = int(np.flatnonzero(y < 0)[0])
    other = X.copy()
    other[0] = -other[0]
    big = X.copy()
    big[1] *= 3  # a row of norm 1.5
    return j, {
        "labels": (X, (y > 0) * 1.0),  # {0, 1} labels for the negative row j
        "flipped label": (X, np.where(np.arange(40) == j, -y, y)),
        "another X": (other, y),
        "row norm > 1": (big, y),
    }


def test_removal_on_other_data_is_refused(S):
    X, y, s = S
    j, variants = _other_data(X, y)
    for name, (Xo, yo) in variants.items():
        with pytest.raises(ValueError):
            C.remove(s, np.array([j]), Xo, yo)


def test_removal_on_other_data_under_jit_poisons(S):
    X, y, s = S
    j, variants = _other_data(X, y)
    for name, (Xo, yo) in variants.items():
        new, info = jax.jit(C.remove)(s, jnp.array([j]), jnp.asarray(Xo), jnp.asarray(yo))
        assert poisoned(new, info, like=s), name
    # The same call on the right data is certified and covers the residual.
    new, info = jax.jit(C.remove)(s, jnp.array([j]), jnp.asarray(X), jnp.asarray(y))
    assert bool(info.valid)
    assert exact_residual(new, X, y) <= float(info.cumulative_bound)


# ---------------------------------------------------------------------------
# 2. Under jit and vmap no check is skipped silently.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "idx", [[3, 3], [40], [2**20], [-1], [0, 41]], ids=str
)
def test_invalid_indices_under_jit_poison(S, idx):
    X, y, s = S
    new, info = jax.jit(lambda s, j: C.remove(s, j, X, y))(s, jnp.array(idx))
    assert poisoned(new, info, like=s)
    assert int(new.num_removed) == 0


def test_already_removed_under_jit_poisons(S):
    X, y, s = S
    step = jax.jit(lambda s, j: C.remove(s, j, X, y))
    once, info = step(s, jnp.array([5]))
    assert bool(info.valid)
    twice, info = step(once, jnp.array([5]))
    assert poisoned(twice, info, like=once)
    # Poison is sticky: a later valid request does not launder it.
    later, info = step(twice, jnp.array([6]))
    assert poisoned(later, info)


def test_invalid_indices_under_vmap_poison_only_their_model(S):
    X, y, s = S
    states = jax.vmap(lambda k: C.train(k, X, y, lam=0.1, sigma=1.0))(
        jax.random.split(jax.random.key(1), 3)
    )
    idx = jnp.array([[1], [1], [1]])
    bad = jnp.array([[1], [40], [-1]])
    good, gi = jax.vmap(lambda s, j: C.remove(s, j, X, y))(states, idx)
    mixed, mi = jax.vmap(lambda s, j: C.remove(s, j, X, y))(states, bad)
    assert np.asarray(gi.valid).all()
    assert np.asarray(mi.valid).tolist() == [True, False, False]
    assert np.isfinite(np.asarray(mi.cumulative_bound)[0])
    assert not np.isfinite(np.asarray(mi.cumulative_bound)[1:]).any()


def test_removing_a_class_under_jit_poisons(S):
    X, y, s = S
    positives = jnp.asarray(np.flatnonzero(y > 0))
    new, info = jax.jit(lambda s, j: C.remove(s, j, X, y))(s, positives)
    assert poisoned(new, info, like=s)


def test_checkify_turns_invalid_requests_into_errors(S):
    X, y, s = S
    f = checkify.checkify(lambda s, j: C.remove(s, j, X, y, checks="checkify"))
    err, _ = jax.jit(f)(s, jnp.array([3, 3]))
    with pytest.raises(checkify.JaxRuntimeError, match="distinct"):
        err.throw()
    err, _ = jax.jit(f)(s, jnp.array([3]))
    err.throw()  # a valid request raises nothing


@pytest.mark.parametrize(
    "change",
    [
        dict(X="nan"),
        dict(y="zero_one"),
        dict(lam=0.0),
        dict(lam=-1.0),
        dict(sigma=-1.0),
        dict(X="too_long"),
    ],
    ids=str,
)
def test_train_under_jit_poisons_bad_input(S, change):
    X, y, _ = S
    Xb, yb = X.copy(), y.copy()
    if change.get("X") == "nan":
        Xb[3, 1] = np.nan
    if change.get("X") == "too_long":
        Xb[3] *= 4
    if change.get("y") == "zero_one":
        yb = (y > 0) * 1.0
    lam, sigma = change.get("lam", 0.1), change.get("sigma", 1.0)
    state = jax.jit(
        lambda X, y, lam, sigma: C.train(jax.random.key(0), X, y, lam=lam, sigma=sigma)
    )(Xb, yb, lam, sigma)
    assert not np.isfinite(float(state.grad_residual_bound))
    with pytest.raises(ValueError):  # and eagerly, a clear error
        C.train(jax.random.key(0), Xb, yb, lam=lam, sigma=sigma)


# ---------------------------------------------------------------------------
# 3. Indices, 4. randomness.
# ---------------------------------------------------------------------------


def test_index_past_int32_does_not_wrap(S):
    X, y, s = S
    for idx in (np.array([2**32 + 7]), np.array([2**31]), 2**32 + 7):
        with pytest.raises(ValueError, match="idx"):
            C.remove(s, idx, X, y)
    with pytest.raises(ValueError, match="idx_batches"):
        C.remove_sequence(s, np.array([[2**32 + 7]]), X, y)


def test_retrain_with_the_training_key_and_empty_mask_are_refused(S):
    X, y, s = S
    with pytest.raises(ValueError, match="fresh key"):
        C.retrain(jax.random.key(0), s, X, y)
    with pytest.raises(ValueError, match="at least one row"):
        C.train(jax.random.key(0), X, y, lam=0.1, sigma=1.0, mask=np.zeros(40, bool))
    empty = jax.jit(
        lambda m: C.train(jax.random.key(0), X, y, lam=0.1, sigma=1.0, mask=m)
    )(jnp.zeros(40, bool))
    assert not np.isfinite(float(empty.grad_residual_bound))


# ---------------------------------------------------------------------------
# 7. Messages: a ValueError naming the argument, never a raw JAX/NumPy error.
# ---------------------------------------------------------------------------


def _bad_calls(X, y, s):
    key = jax.random.key(0)
    train = lambda **kw: C.train(**({"key": key, "X": X, "y": y, "lam": 0.1, "sigma": 1.0} | kw))
    return {
        "float16 X": (lambda: train(X=X.astype(np.float16)), "X"),
        "bfloat16 X": (lambda: train(X=jnp.asarray(X, jnp.bfloat16)), "X"),
        "str X": (lambda: train(X="abc"), "X"),
        "object X": (lambda: train(X=np.array([[object()] * 5] * 40)), "X"),
        "ragged X": (lambda: train(X=[[0.1, 0.2], [0.3]]), "X"),
        "string lam": (lambda: train(lam="0.1"), "lam"),
        "empty X": (lambda: train(X=X[:0], y=y[:0]), "X"),
        "zero columns": (lambda: train(X=X[:, :0]), "X"),
        "integer X": (lambda: train(X=(X * 10).astype(int)), "X"),
        "NaN in y": (lambda: train(y=np.where(np.arange(40) == 3, np.nan, y)), "y"),
        "string labels": (lambda: train(y=np.array(["a"] * 40)), "y"),
        "negative cg_tol": (lambda: train(cg_tol=-1.0), "cg_tol"),
        "NaN cg_tol": (lambda: train(cg_tol=float("nan")), "cg_tol"),
        "num_classes=0": (lambda: train(num_classes=0), "num_classes"),
        "key None": (lambda: train(key=None), "key"),
        "key int": (lambda: train(key=0), "key"),
        "2-D index": (lambda: C.remove(s, np.array([[1, 2]]), X, y), "idx"),
        "string index": (lambda: C.remove(s, "3", X, y), "idx"),
        "float index": (lambda: C.remove(s, 1.0, X, y), "idx"),
        "X with other n": (lambda: C.remove(s, np.array([1]), X[:-1], y[:-1]), "X"),
        "X with other d": (lambda: C.remove(s, np.array([1]), X[:, :-1], y), "X"),
        "y with other n": (lambda: C.remove(s, np.array([1]), X, y[:-1]), "y"),
        "not a state": (lambda: C.remove("s", np.array([1]), X, y), "state"),
    }


def test_bad_input_gets_a_value_error_naming_the_argument(S):
    X, y, s = S
    for name, (call, arg) in _bad_calls(X, y, s).items():
        with pytest.raises(ValueError) as err:
            call()
        assert arg in str(err.value), (name, str(err.value))


# ---------------------------------------------------------------------------
# 8. Random malformed requests: an error or poison, never a wrong finite bound.
# ---------------------------------------------------------------------------

_STATE = setup()


@hypothesis.settings(max_examples=60, deadline=None, derandomize=True)
@hypothesis.given(
    idx=st.lists(st.integers(-3, 45), min_size=1, max_size=4),
    corrupt=st.sampled_from(["none", "label", "row", "scale", "nan"]),
    jit=st.booleans(),
)
def test_malformed_requests_never_certify_a_wrong_bound(idx, corrupt, jit):
    X, y, s = _STATE
    Xo, yo = X.copy(), y.copy()
    if corrupt == "label":
        yo[idx[0] % 40] *= -1
    elif corrupt == "row":
        Xo[(idx[0] + 1) % 40] = Xo[(idx[0] + 2) % 40]
    elif corrupt == "scale":
        Xo *= 1.5
    elif corrupt == "nan":
        Xo[0, 0] = np.nan
    request = np.array(idx)
    if jit:
        new, info = jax.jit(C.remove)(s, jnp.asarray(request), jnp.asarray(Xo), jnp.asarray(yo))
        if bool(info.valid):
            assert exact_residual(new, X, y) <= float(info.cumulative_bound)
            assert corrupt == "none"
        else:
            assert poisoned(new, info, like=s)
        return
    try:
        new, info = C.remove(s, request, Xo, yo)
    except ValueError:
        return
    assert corrupt == "none" and bool(info.valid)
    assert exact_residual(new, X, y) <= float(info.cumulative_bound)
