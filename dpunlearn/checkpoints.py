"""Save and restore any pytree of arrays (a method's state, SISA's checkpoints) as ``.npz``.

A file holds one array per leaf (``jax.tree_util.keystr`` of its path is
kept beside it) and nothing else: no pickle, so loading runs no code. JAX
PRNG keys are stored as their raw key data and rewrapped on restore.
:func:`restore` needs a template with the same structure (``like``, e.g. the
state returned by ``method.train`` on the same shapes, or
``jax.eval_shape`` of it) and checks every leaf's path, shape and dtype
against the file, so a file never silently lands in the wrong leaf. Values
round-trip bit for bit.

Example:
  >>> import jax, jax.numpy as jnp, tempfile, os
  >>> tree = {"w": jnp.arange(3.0), "key": jax.random.key(0)}
  >>> path = os.path.join(tempfile.mkdtemp(), "state.npz")
  >>> _ = save(path, tree)
  >>> back = restore(path, like=tree)
  >>> bool(jnp.array_equal(back["w"], tree["w"]))
  True
"""

from __future__ import annotations

import os
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

from dpunlearn.types import PyTree

__all__ = ["restore", "save"]

_PATHS = "__paths__"
_KINDS = "__kinds__"


def _is_key(leaf) -> bool:
    dtype = getattr(leaf, "dtype", None)
    return dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def _key_impl(leaf) -> str:
    return str(jax.random.key_impl(leaf))


def save(path: str | os.PathLike, tree: PyTree) -> str:
    """Writes every leaf of ``tree`` to ``path`` (``.npz``; atomic replace).

    Returns:
      ``path`` as a string.
    """
    path = os.fspath(path)
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    arrays, paths, kinds = {}, [], []
    for i, (p, leaf) in enumerate(flat):
        paths.append(jax.tree_util.keystr(p))
        if _is_key(leaf):
            kinds.append("key:" + _key_impl(leaf))
            arrays[f"leaf_{i:06d}"] = np.asarray(jax.random.key_data(leaf))
        else:
            kinds.append("array")
            arrays[f"leaf_{i:06d}"] = np.asarray(leaf)
    arrays[_PATHS] = np.array(paths, dtype=str)
    arrays[_KINDS] = np.array(kinds, dtype=str)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".npz.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def restore(path: str | os.PathLike, *, like: PyTree) -> PyTree:
    """Reads a file written by :func:`save` into the structure of ``like``.

    Args:
      path: The ``.npz`` file.
      like: A pytree with the saved structure (arrays or
        ``jax.ShapeDtypeStruct`` leaves); only its structure, shapes, dtypes
        and key implementations are used.

    Returns:
      The tree, with ``jax.Array`` leaves (keys rewrapped).

    Raises:
      ValueError: the file's leaves do not match ``like`` (the message names
        the first leaf that differs).
    """
    flat, treedef = jax.tree_util.tree_flatten_with_path(like)
    with np.load(os.fspath(path), allow_pickle=False) as f:
        paths = [str(p) for p in f[_PATHS]]
        kinds = [str(k) for k in f[_KINDS]]
        want = [jax.tree_util.keystr(p) for p, _ in flat]
        if paths != want:
            diff = next(
                (i for i, (a, b) in enumerate(zip(paths, want)) if a != b),
                min(len(paths), len(want)),
            )
            raise ValueError(
                f"Expected the file's leaves to match the template: {len(paths)} leaves "
                f"in the file, {len(want)} in the template; first difference at leaf "
                f"{diff} ({paths[diff] if diff < len(paths) else '-'} vs "
                f"{want[diff] if diff < len(want) else '-'})."
            )
        leaves = []
        for i, ((p, ref), kind) in enumerate(zip(flat, kinds)):
            arr = f[f"leaf_{i:06d}"]
            name = jax.tree_util.keystr(p)
            if _is_key(ref):
                if kind != "key:" + _key_impl(ref):
                    raise ValueError(f"Leaf {name}: expected a {_key_impl(ref)} key, file has {kind}.")
                leaf = jax.random.wrap_key_data(jnp.asarray(arr), impl=jax.random.key_impl(ref))
            else:
                if kind != "array":
                    raise ValueError(f"Leaf {name}: expected an array, file has {kind}.")
                leaf = jnp.asarray(arr)
            if leaf.shape != tuple(ref.shape) or leaf.dtype != ref.dtype:
                raise ValueError(
                    f"Leaf {name}: expected shape {tuple(ref.shape)} and dtype {ref.dtype}, "
                    f"file has {leaf.shape} and {leaf.dtype}."
                )
            leaves.append(leaf)
    return jax.tree_util.tree_unflatten(treedef, leaves)
