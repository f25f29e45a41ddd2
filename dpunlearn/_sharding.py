"""Output shardings for explicit-sharding meshes, in one place.

On a mesh whose axes are ``AxisType.Explicit`` (``jax.make_mesh``'s default,
used under ``jax.set_mesh``), every array's type carries its sharding
(``jax.typeof(x).sharding``) and JAX refuses an operation whose output
sharding would be ambiguous or would need communication it cannot choose
alone: a contraction over a sharded axis (``Xᵀu`` with the rows of ``X`` on
``data``), a gather or a scatter along a sharded axis (``X[idx]``,
``mask.at[idx].set(False)``), a sort along a sharded axis. The helpers here
are those operations with the output sharding spelled out:

* a contraction over the row axis is replicated: each shard sums its rows and
  one all-reduce of the (small) result follows, never a gather of ``X``;
* rows gathered by index (a request, a minibatch) are replicated: each shard
  contributes the rows it holds (the others are zero) and the ``k × d`` result
  is all-reduced, never a gather of ``X``;
* a scatter into a row-sharded array (the mask) keeps its sharding.

Many models at once: :func:`over_axis` splits a batch of models (SISA's
constituents) over a mesh axis such as ``model`` before a ``vmap``, and
:func:`map_models` is ``lax.map`` in vmapped chunks with each chunk split so
(certified removal's shadow models); both keep the other axes' sharding (the
rows over ``data``) and do nothing where the context mesh lacks the axis.

Where no operand is explicitly sharded (one device, a mesh with automatic
axes, NumPy inputs) each helper is the plain ``jnp`` operation, so there is
one code path: the annotation is only added where the types demand it.
Inside ``vmap`` the types are per example; the batch axis (e.g. models over a
``model`` mesh axis) is added to the given output sharding by JAX.

Loops: in JAX 0.10 a scalar constant (``0``, ``False``, ``jnp.ones(())``) has
no mesh in its type, nor has an array made before the mesh was set (a model's
initial parameters on one device), and batching a loop whose carry holds one
over an explicit mesh axis (``vmap`` over keys sharded on ``model``) fails
("Resource axis: model ... is not found in mesh: ()"). :func:`while_loop`,
:func:`fori_loop` and :func:`scan` are the ``jax.lax`` loops with such leaves
replicated on the context mesh first (:func:`carry`); without an explicit
context mesh they are exactly ``jax.lax``'s.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

from dpunlearn.types import Array

__all__ = [
    "carry",
    "concatenate",
    "explicit",
    "fori_loop",
    "gather_rows",
    "index",
    "map_models",
    "matmul",
    "ones_rows",
    "over_axis",
    "replicated",
    "row_shards",
    "rows_like",
    "scan",
    "scatter",
    "spec",
    "stack",
    "tensordot",
    "while_loop",
]


def spec(x) -> tuple | None:
    """``x``'s sharding over explicit mesh axes, one entry per dimension.

    ``None`` when ``x`` is not explicitly sharded over any axis (one device, an
    automatic mesh, a NumPy array, a replicated array).
    """
    try:
        sharding = jax.typeof(x).sharding
    except TypeError:
        return None
    mesh = getattr(sharding, "mesh", None)
    if mesh is None or not getattr(mesh, "explicit_axes", ()):
        return None
    entries = tuple(sharding.spec) + (None,) * (jnp.ndim(x) - len(sharding.spec))
    if all(e is None for e in entries):
        return None
    return entries


def explicit(*xs) -> bool:
    """True when any of ``xs`` is sharded over an explicit mesh axis."""
    return any(spec(x) is not None for x in xs)


def _axes(entry) -> tuple:
    if entry is None:
        return ()
    return entry if isinstance(entry, tuple) else (entry,)


def _dedupe(entries) -> P:
    """A spec from per-dimension entries; a mesh axis already used is dropped."""
    used: set = set()
    out = []
    for entry in entries:
        axes = tuple(a for a in _axes(entry) if a not in used)
        used.update(axes)
        out.append(None if not axes else axes[0] if len(axes) == 1 else axes)
    return P(*out)


def _entries(x) -> tuple:
    s = spec(x)
    return (None,) * jnp.ndim(x) if s is None else s


def matmul(a, b, *, precision=None) -> Array:
    """``jnp.matmul(a, b)`` (``a`` or ``b`` up to 2-D, ``a`` any rank) with the
    output sharding of its non-contracted dimensions; the contracted one is
    reduced across shards."""
    if not explicit(a, b):
        return jnp.matmul(a, b, precision=precision)
    ea, eb = _entries(a), _entries(b)
    if jnp.ndim(b) == 1:
        out = ea[:-1]
    elif jnp.ndim(a) == 1:
        out = eb[1:]
    elif jnp.ndim(b) == 2:
        out = ea[:-1] + eb[1:]
    else:
        raise ValueError("matmul: b of rank > 2 is not supported on explicit meshes")
    return jnp.matmul(a, b, precision=precision, out_sharding=_dedupe(out))


def tensordot(a, b, axes: int = 1, *, precision=None) -> Array:
    """``jnp.tensordot(a, b, axes)`` for an integer ``axes``; the contracted
    dimensions are reduced across shards."""
    if not explicit(a, b):
        return jnp.tensordot(a, b, axes=axes, precision=precision)
    out = _dedupe(_entries(a)[: jnp.ndim(a) - axes] + _entries(b)[axes:])
    return jnp.tensordot(a, b, axes=axes, precision=precision, out_sharding=out)


def gather_rows(x, idx) -> Array:
    """``x[idx]`` along axis 0. On an explicitly sharded ``x`` the gathered axis
    is replicated (or sharded like ``idx``): each shard gives the rows it holds
    and the result is all-reduced; the other axes keep ``x``'s sharding."""
    if not explicit(x, idx):
        return x[idx]
    out = _entries(idx) + _entries(x)[1:]
    return x.at[idx].get(out_sharding=_dedupe(out))


def index(x, i) -> Array:
    """``x[i]`` for a scalar index ``i`` along axis 0 (replicated result)."""
    if not explicit(x, i):
        return x[i]
    return gather_rows(x, jnp.reshape(i, (1,)))[0]


def scatter(x, idx, values, *, op: str = "set") -> Array:
    """``x.at[idx].<op>(values)`` (``op`` in set, add, min, max); the result is
    sharded like ``x``."""
    if not explicit(x, idx, values):
        return getattr(x.at[idx], op)(values)
    return getattr(x.at[idx], op)(values, out_sharding=_dedupe(_entries(x)))


def ones_rows(x, dtype=bool) -> Array:
    """``ones((n,))`` (a mask of every row of ``x``), sharded like ``x``'s rows."""
    n = jnp.shape(jax.tree.leaves(x)[0])[0]
    row = _entries(jax.tree.leaves(x)[0])[:1]
    if row == (None,):
        return jnp.ones((n,), dtype)
    sharding = jax.typeof(jax.tree.leaves(x)[0]).sharding.update(spec=_dedupe(row))
    return jnp.ones((n,), dtype, out_sharding=sharding)


def rows_like(a, ref) -> Array:
    """``a`` (row-leading) resharded so that its rows are split like ``ref``'s
    (a mask or labels beside the features, before a ``vmap`` over rows);
    ``a`` itself unless ``ref`` or ``a`` is explicitly sharded."""
    ref = jax.tree.leaves(ref)[0]
    if not explicit(a, ref):
        return a
    row = _entries(ref)[:1]
    mine = _entries(a)
    if mine[:1] == row:
        return a
    return jax.sharding.reshard(a, _dedupe(row + (None,) * (len(mine) - 1)))


def row_shards(x, n: int) -> int:
    """How many explicit shards split the ``n`` rows of ``x`` (1 when none, or
    when they do not split ``n`` evenly)."""
    s = spec(x)
    if s is None or s[0] is None:
        return 1
    sizes = jax.typeof(x).sharding.mesh.shape
    k = math.prod(sizes[a] for a in _axes(s[0]))
    return k if n % k == 0 else 1


def replicated(x) -> Array:
    """``x`` resharded to be replicated (for sorts, cumulative sums, top-k along
    a sharded axis); ``x`` itself when it is not explicitly sharded. Use on
    vectors and small arrays only: it all-gathers."""
    if spec(x) is None:
        return x
    return jax.sharding.reshard(x, P())


def _batched_over(axis: str) -> bool:
    """Whether an enclosing ``vmap`` already splits its batch over the
    explicit mesh axis ``axis`` (models over ``model`` around a method that
    would place its own models there: the inner ones then stay together).

    JAX 0.10 has no public query for this; the trace's axis environment is
    read, and ``False`` assumed if that internal is gone.
    """
    try:
        from jax._src import core

        return axis in core.get_axis_env().explicit_mesh_axis_names
    except (ImportError, AttributeError):  # pragma: no cover (a later JAX)
        return False


def over_axis(tree, axis: str | None):
    """``tree``'s leaves (leading axes of one size, e.g. ``S`` models) split
    along that axis over the context mesh's ``axis``, so that a ``vmap`` over
    them runs ``size/devices`` models per device.

    ``tree`` itself when ``axis`` is ``None``, when no context mesh
    (``jax.set_mesh``) has that axis, when an enclosing ``vmap`` is already
    split over it, or when its size does not divide the leading axis.
    Explicit axes are resharded, automatic ones constrained.
    """
    leaves = jax.tree.leaves(tree)
    if not leaves or not _axis_size(axis, jnp.shape(leaves[0])[0]):
        return tree
    explicit_axis = axis in jax.sharding.get_abstract_mesh().explicit_axes
    return jax.tree.map(lambda a: _lead(a, axis, explicit_axis), tree)


def _lead(a, axis: str, explicit_axis: bool) -> Array:
    """``a`` with its leading axis split over ``axis``; its other axes keep
    their sharding (explicit) or are left to XLA (automatic)."""
    if explicit_axis:
        return jax.sharding.reshard(a, _dedupe((axis,) + _entries(a)[1:]))
    rest = (P.UNCONSTRAINED,) * (jnp.ndim(a) - 1)
    return jax.lax.with_sharding_constraint(a, P(axis, *rest))


def _axis_size(axis: str | None, size: int) -> int:
    """Devices on the context mesh's ``axis`` when ``size`` models can be
    split over it (:func:`over_axis`'s conditions), else 0."""
    mesh = jax.sharding.get_abstract_mesh()
    if axis is None or mesh.empty or axis not in mesh.axis_names or _batched_over(axis):
        return 0
    m = mesh.shape[axis]
    return m if m > 1 and size % m == 0 else 0


def map_models(f, xs, *, batch_size: int, axis: str | None):
    """``jax.lax.map(f, xs, batch_size=batch_size)`` with every vmapped chunk
    split over the context mesh's ``axis`` (many models: a chunk of ``B``
    runs ``B/devices`` per device), and the result's leading axis split the
    same way.

    The ``M`` models are laid out as ``[B, M/B]`` (``B`` the largest multiple
    of the axis size that divides ``M`` and is at most ``batch_size``, or the
    axis size itself), the ``B`` axis split over ``axis``, and scanned over
    ``M/B`` chunks; model ``i`` is entry ``divmod(i, M/B)``, so reshaping back
    gives them in order, still split. Plain ``lax.map`` when nothing can be
    placed (:func:`over_axis`'s conditions).
    """
    size = jnp.shape(jax.tree.leaves(xs)[0])[0]
    m = _axis_size(axis, size)
    if not m:
        return jax.lax.map(f, xs, batch_size=batch_size)
    B = max((b for b in range(m, min(batch_size, size) + 1, m) if size % b == 0), default=m)
    C = size // B
    explicit_axis = axis in jax.sharding.get_abstract_mesh().explicit_axes

    def split(a):
        a = _lead(jnp.reshape(a, (B, C) + jnp.shape(a)[1:]), axis, explicit_axis)
        return jnp.swapaxes(a, 0, 1)  # [C, B@axis, ...]

    out = jax.lax.map(jax.vmap(f), jax.tree.map(split, xs))
    out = jax.tree.map(lambda a: jnp.reshape(jnp.swapaxes(a, 0, 1), (size,) + a.shape[2:]), out)
    # Outputs that do not depend on the inputs (vmap broadcasts them) are
    # placed like the rest, so that a later vmap sees one sharding.
    return over_axis(out, axis)


def _context_is_explicit() -> bool:
    return bool(jax.sharding.get_abstract_mesh().explicit_axes)


def carry(tree):
    """``tree`` with its mesh-less leaves (scalars, arrays made before the mesh
    was set) replicated on the context mesh when it has explicit axes, so that
    a loop over them can be batched over one."""
    if not _context_is_explicit():
        return tree

    def place(leaf):
        a = jnp.asarray(leaf)
        if jax.typeof(a).sharding.mesh.empty:
            return jax.sharding.reshard(a, P())
        return a

    return jax.tree.map(place, tree)


def while_loop(cond_fun, body_fun, init_val):
    """``jax.lax.while_loop`` with a batchable carry (:func:`carry`)."""
    return jax.lax.while_loop(cond_fun, body_fun, carry(init_val))


def scan(f, init, xs=None, length=None, **kwargs):
    """``jax.lax.scan`` with a batchable carry (:func:`carry`)."""
    return jax.lax.scan(f, carry(init), xs, length, **kwargs)


def fori_loop(lower, upper, body_fun, init_val):
    """``jax.lax.fori_loop`` with a batchable carry (:func:`carry`).

    On an explicit context mesh the loop index is carried as a placed scalar
    too (a ``scan`` over the indices when both bounds are Python integers, as
    ``jax.lax.fori_loop`` does, else a ``while_loop``).
    """
    if not _context_is_explicit():
        return jax.lax.fori_loop(lower, upper, body_fun, init_val)
    static = (int, np.integer)
    if isinstance(lower, static) and isinstance(upper, static):
        step = lambda x, i: (body_fun(i, x), None)
        return jax.lax.scan(step, carry(init_val), jnp.arange(lower, upper))[0]
    dtype = jnp.result_type(lower, upper)
    start = carry(jnp.asarray(lower, dtype))
    stop = jnp.asarray(upper, dtype)
    out = jax.lax.while_loop(
        lambda c: c[0] < stop,
        lambda c: (c[0] + 1, body_fun(c[0], c[1])),
        (start, carry(init_val)),
    )
    return out[1]


def concatenate(arrays, axis: int = 0) -> Array:
    """``jnp.concatenate``. On an explicit context mesh it is built from exact
    selects of the zero-padded operands instead: in JAX 0.10 batching a
    concatenation of batched and unbatched operands over an explicit mesh
    axis (``vmap`` over models) fails ("All operands should have the same
    sharding")."""
    if not _context_is_explicit():
        return jnp.concatenate(arrays, axis)
    arrays = [jnp.asarray(a) for a in carry(list(arrays))]
    dtype = jnp.result_type(*arrays)
    axis = axis % arrays[0].ndim
    sizes = [a.shape[axis] for a in arrays]
    total = sum(sizes)
    shape = list(arrays[0].shape)
    shape[axis] = total
    pos = jax.lax.broadcasted_iota(jnp.int32, tuple(shape), axis)
    out, start = None, 0
    for a, k in zip(arrays, sizes):
        widths = [(0, 0)] * a.ndim
        widths[axis] = (start, total - start - k)
        padded = jnp.pad(a.astype(dtype), widths)
        inside = (pos >= start) & (pos < start + k)
        out = padded if out is None else jnp.where(inside, padded, out)
        start += k
    return out


def stack(arrays, axis: int = 0) -> Array:
    """``jnp.stack`` (see :func:`concatenate` for explicit context meshes)."""
    if not _context_is_explicit():
        return jnp.stack(arrays, axis)
    return concatenate([jnp.expand_dims(jnp.asarray(a), axis) for a in arrays], axis)
