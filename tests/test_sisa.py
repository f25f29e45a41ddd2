"""SISA (Bourtoule et al. 2021): exact unlearning, checked bit for bit.

Every check here is deterministic (fixed keys, exact equality): no
statistical test, so no false-failure rate beyond a real bug.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dpunlearn import checkpoints, models, serve
from dpunlearn.accounting import currencies as cur
from dpunlearn.accounting import ledger as L
from dpunlearn.methods import Data, sisa
from dpunlearn.methods.sisa import SisaParams

pytest.importorskip("flax")

S, R = 4, 3


def leaves_equal(a, b) -> bool:
    def eq(u, v):
        if jax.dtypes.issubdtype(u.dtype, jax.dtypes.prng_key):
            u, v = jax.random.key_data(u), jax.random.key_data(v)
        return bool(jnp.array_equal(u, v)) and u.dtype == v.dtype

    return jax.tree.structure(a) == jax.tree.structure(b) and all(
        jax.tree.leaves(jax.tree.map(eq, a, b))
    )


@pytest.fixture(scope="module")
def digits():
    from dpunlearn import data

    ds = data.load("digits", seed=0)
    n = 240
    return Data(jnp.asarray(ds.X_train[:n]), jnp.asarray(ds.y_train[:n])), ds


@pytest.fixture(scope="module")
def mlp():
    model, _ = models.from_nnx(models.init_nnx_mlp(jax.random.key(0), (64, 16, 10)))
    return model


@pytest.fixture(scope="module")
def method(mlp):
    return sisa(model=mlp, num_shards=S, num_slices=R, epochs=3, batch_size=16, learning_rate=0.05)


@pytest.fixture(scope="module")
def trained(method, digits):
    data, _ = digits
    return method.train(jax.random.key(7), data)


def rows_at(state, shard, slc):
    sh, sl, m = (np.asarray(a) for a in (state.shard, state.slice, state.mask))
    return np.flatnonzero((sh == shard) & (sl == slc) & m)


def test_layout_partitions_rows_into_balanced_shards_and_slices(trained, digits):
    state, charge = trained
    data, _ = digits
    n = data.num_rows
    layout = np.asarray(state.layout)
    assert layout.shape[:2] == (S, R)
    placed = layout[layout >= 0]
    assert np.array_equal(np.sort(placed), np.arange(n))  # every row exactly once
    sizes = np.bincount(np.asarray(state.shard), minlength=S)
    assert sizes.max() - sizes.min() <= 1
    for s in range(S):
        for r in range(R):
            rows = layout[s, r][layout[s, r] >= 0]
            assert np.all(np.asarray(state.shard)[rows] == s)
            assert np.all(np.asarray(state.slice)[rows] == r)
    assert int(charge.num_shards_retrained) == S and int(charge.num_slice_steps) == S * R
    # The released constituents are the last checkpoints.
    assert leaves_equal(
        state.params.constituents, jax.tree.map(lambda c: c[:, -1], state.checkpoints)
    )


@pytest.mark.parametrize("slices", [(0,), (2,), (1, 2)], ids=["slice0", "last", "two"])
def test_unlearned_is_bit_identical_to_training_without_the_rows(
    method, trained, digits, slices
):
    state, _ = trained
    data, _ = digits
    # One row per listed slice in shard 1, plus (for "two") a row of shard 3.
    req = [int(rows_at(state, 1, r)[0]) for r in slices]
    if len(slices) > 1:
        req.append(int(rows_at(state, 3, 0)[1]))
    new, charge, info = method.unlearn(jax.random.key(1), state, np.array(req), data)
    mask = np.asarray(state.mask).copy()
    mask[req] = False
    ref, _ = method.train(jax.random.key(7), data, jnp.asarray(mask))
    assert leaves_equal(new, ref)
    first = np.full(S, R)
    for row in req:
        s, r = int(state.shard[row]), int(state.slice[row])
        first[s] = min(first[s], r)
    assert np.array_equal(np.asarray(info.first_slice), first)
    assert int(charge.num_removed) == len(req) and bool(charge.valid)
    assert int(charge.num_shards_retrained) == int(np.sum(first < R))
    assert int(charge.num_slice_steps) == int(np.sum(R - first))


def test_only_the_affected_shard_from_its_first_affected_slice_changes(
    method, trained, digits
):
    state, _ = trained
    data, _ = digits
    row = int(rows_at(state, 2, 1)[0])
    new, _, _ = method.unlearn(jax.random.key(1), state, np.array([row]), data)
    for s in range(S):
        for r in range(R):
            old_c = jax.tree.map(lambda c, s=s, r=r: c[s, r], state.checkpoints)
            new_c = jax.tree.map(lambda c, s=s, r=r: c[s, r], new.checkpoints)
            same = leaves_equal(old_c, new_c)
            assert same == (s != 2 or r < 1), (s, r)
    assert leaves_equal(new.layout, state.layout) and leaves_equal(new.keys, state.keys)
    assert int(np.sum(np.asarray(state.mask) != np.asarray(new.mask))) == 1


def test_sequential_requests_equal_training_without_all_of_them(method, trained, digits):
    state, _ = trained
    data, _ = digits
    a, b = int(rows_at(state, 0, 2)[0]), int(rows_at(state, 0, 0)[0])
    s1, _, _ = method.unlearn(jax.random.key(1), state, np.array([a]), data)
    s2, _, _ = method.unlearn(jax.random.key(2), s1, np.array([b]), data)
    mask = np.asarray(state.mask).copy()
    mask[[a, b]] = False
    ref, _ = method.train(jax.random.key(7), data, jnp.asarray(mask))
    assert leaves_equal(s2, ref)


def test_vmapped_training_equals_a_loop_over_shards(mlp, trained, digits):
    state, _ = trained
    data, _ = digits
    loop = sisa(model=mlp, num_shards=S, num_slices=R, epochs=3, batch_size=16, learning_rate=0.05, vectorize=False)
    looped, _ = loop.train(jax.random.key(7), data)
    assert leaves_equal(looped, state)


def test_linear_model_and_one_slice_are_exact_too(digits):
    data, _ = digits
    m = sisa(model=models.linear(64, num_classes=10), num_shards=5, epochs=2, batch_size=8)
    state, _ = m.train(jax.random.key(3), data)
    new, _, _ = m.unlearn(jax.random.key(0), state, np.array([4, 9]), data)
    mask = np.ones(data.num_rows, bool)
    mask[[4, 9]] = False
    ref, _ = m.train(jax.random.key(3), data, jnp.asarray(mask))
    assert leaves_equal(new, ref)


def test_checkpoints_save_and_restore_to_identical_predictions(
    method, trained, digits, tmp_path
):
    state, _ = trained
    data, ds = digits
    path = checkpoints.save(tmp_path / "sisa.npz", state)
    back = checkpoints.restore(path, like=state)
    assert leaves_equal(back, state)
    X = jnp.asarray(ds.X_test)
    assert np.array_equal(method.predict(back.params, X), method.predict(state.params, X))
    row = int(rows_at(state, 3, 1)[0])
    a, _, _ = method.unlearn(jax.random.key(0), state, np.array([row]), data)
    b, _, _ = method.unlearn(jax.random.key(0), back, np.array([row]), data)
    assert leaves_equal(a, b)
    # A template of another shape is refused, naming the leaf.
    other, _ = sisa(model=models.linear(64, num_classes=10), num_shards=S).train(
        jax.random.key(0), data
    )
    with pytest.raises(ValueError, match="leaves|Leaf"):
        checkpoints.restore(path, like=other)


def test_ensemble_is_accurate_and_mean_aggregation_agrees_mostly(mlp, trained, digits):
    state, _ = trained
    _, ds = digits
    X, y = jnp.asarray(ds.X_test), np.asarray(ds.y_test)
    vote = sisa(model=mlp, num_shards=S, num_slices=R, epochs=3, batch_size=16, learning_rate=0.05)
    mean = sisa(model=mlp, num_shards=S, num_slices=R, epochs=3, batch_size=16, learning_rate=0.05, aggregation="mean")
    pv, pm = np.asarray(vote.predict(state.params, X)), np.asarray(mean.predict(state.params, X))
    assert np.mean(pv == y) > 0.5 and np.mean(pm == y) > 0.5  # 10 classes: chance is 0.1
    assert np.mean(pv == pm) > 0.8


def test_vote_majority_ties_and_inactive_shards():
    # Three linear constituents on 2 features, 3 classes: constituent s votes
    # for class argmax(W_s x). Class of x = e0 under each: 0, 0, 2; under e1: 1, 2, 2.
    W = jnp.array(
        [
            [[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]],
            [[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]],
            [[0.0, 0.0], [0.0, 0.0], [1.0, 1.0]],
        ]
    )
    m = sisa(model=models.linear(2, num_classes=3), num_shards=3)
    X = jnp.eye(2)
    on = SisaParams(W, jnp.array([True, True, True]))
    assert np.array_equal(m.predict(on, X), [0, 2])
    # Shard 0 inactive: e0 gets one vote each for 0 and 2 (tie -> smallest, 0).
    off = SisaParams(W, jnp.array([False, True, True]))
    assert np.array_equal(m.predict(off, X), [0, 2])
    off2 = SisaParams(W, jnp.array([True, False, False]))
    assert np.array_equal(m.predict(off2, X), [0, 1])


def test_bad_input_raises_clear_errors(mlp, method, trained, digits):
    state, _ = trained
    data, _ = digits
    row = int(rows_at(state, 0, 0)[0])
    new, _, _ = method.unlearn(jax.random.key(0), state, np.array([row]), data)
    with pytest.raises(ValueError, match="already removed"):
        method.unlearn(jax.random.key(0), new, np.array([row]), data)
    with pytest.raises(ValueError, match=r"num_shards=300 <= the 240 rows"):
        sisa(model=mlp, num_shards=300).train(jax.random.key(0), data)
    with pytest.raises(ValueError, match="num_slices"):
        sisa(model=mlp, num_shards=2, num_slices=0)
    with pytest.raises(ValueError, match="num_slices=200 <= the 120 rows per shard"):
        sisa(model=mlp, num_shards=2, num_slices=200).train(jax.random.key(0), data)
    mask = np.zeros(data.num_rows, bool)
    mask[:3] = True
    with pytest.raises(ValueError, match="num_shards=4 <= the 3 rows the mask keeps"):
        method.train(jax.random.key(0), data, jnp.asarray(mask))
    with pytest.raises(ValueError, match="aggregation"):
        sisa(model=mlp, num_shards=2, aggregation="median")
    with pytest.raises(ValueError, match="rows"):
        method.unlearn(jax.random.key(0), state, np.array([1]), Data(data.x[:10], data.y[:10]))


def test_invalid_request_under_jit_changes_nothing_and_is_not_recorded(
    method, trained, digits, tmp_path
):
    state, _ = trained
    data, _ = digits
    step = jax.jit(method.unlearn)
    new, charge, _ = step(jax.random.key(0), state, jnp.array([5, 5]), data)
    assert not bool(charge.valid) and int(charge.num_removed) == 0
    assert leaves_equal(new.checkpoints, state.checkpoints)
    assert np.array_equal(new.mask, state.mask)
    with pytest.raises(ValueError, match="invalid request"):
        cur.get("exact").from_charge(jax.device_get(charge))


def test_ledger_reports_exact_epsilon_zero(method, trained, digits, tmp_path):
    state, charge = trained
    data, _ = digits
    led = L.Ledger.create(
        tmp_path / "sisa.jsonl", currency="exact", params={}, target_epsilon=1.0,
        target_delta=1e-5,
    )
    s = serve.record_training(led, charge)
    assert s.unlearning.certified and s.unlearning.epsilon == 0.0
    for i, row in enumerate([int(rows_at(state, 1, 0)[0]), int(rows_at(state, 2, 2)[0])]):
        out = serve.serve(method, state, np.array([row]), data, key=jax.random.key(i), ledger=led)
        state = out.state
        assert not out.retrained
    s = out.summary
    assert s.currency == "exact" and s.unlearning.certified
    assert s.unlearning.epsilon == 0.0 and s.unlearning.delta == 0.0
    assert s.state.num_removed == 2 and s.state.shards_retrained == 2
    assert s.dp_method == "non-private"  # SISA releases are not DP: (D) says so
    assert L.replay_file(tmp_path / "sisa.jsonl")[0] == s
