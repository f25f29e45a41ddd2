"""Type aliases used across dpunlearn."""

from typing import Any, Protocol

import jax
from jax.typing import ArrayLike

Array = jax.Array
PRNGKey = jax.Array
PyTree = Any

__all__ = ["Array", "ArrayLike", "LossFn", "PRNGKey", "PyTree"]


class LossFn(Protocol):
    """A per-example loss ``loss(margin_or_params, x, y) -> scalar``."""

    def __call__(self, *args: Any) -> Array: ...
