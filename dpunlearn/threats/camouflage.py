"""Camouflaged poisoning: a poison that only acts once its camouflage is deleted.

Di, Douglas, Acharya, Kamath & Sekhari, "Hidden Poison: Machine Unlearning
Enables Camouflaged Poisoning Attacks", NeurIPS 2023. The adversary adds a
poison set ``S_p`` that pushes a chosen target ``x_t`` towards a wrong label
``y_adv`` and a camouflage set ``S_c`` that cancels it, so the model trained on
``D ∪ S_p ∪ S_c`` still classifies ``x_t`` correctly; it then asks for ``S_c``
to be deleted, and the unlearned model (ideally: the model retrained on
``D ∪ S_p``) misclassifies ``x_t``.

This module implements the **dirty-label simplification** for linear
models: ``S_p`` is ``k`` noisy copies of ``x_t`` labelled ``y_adv`` and ``S_c``
is ``k`` noisy copies labelled ``y_t``. Near ``x_t`` the two sets' gradients
cancel (equal inputs, opposite label pull), which is the balance Di et al.
obtain by gradient matching (their Algorithm 1, after Geiping et al., ICLR
2021) in the clean-label setting; the clean-label construction is not
implemented here.

The attack runs against any method of the common interface
(:func:`run_camouflage`): train on ``D ∪ S_p ∪ S_c``, unlearn ``S_c`` as one
request, predict ``x_t`` before and after.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dpunlearn import _validate
from dpunlearn.methods.base import Data, Method
from dpunlearn.types import Array, PRNGKey

__all__ = ["CamouflageSet", "CamouflageTrial", "craft_camouflage", "run_camouflage"]


class CamouflageSet(NamedTuple):
    """Poison and camouflage rows (``[k, d]`` each) and their labels."""

    poison_x: Array
    poison_y: Array
    camouflage_x: Array
    camouflage_y: Array


def _copies(key, x, k, noise):
    z = x[None, :] + noise * jax.random.normal(key, (k, x.shape[0]), x.dtype)
    z = jnp.maximum(z, 0.0)  # stay in the (non-negative) feature box
    norms = jnp.linalg.norm(z, axis=1, keepdims=True)
    return z / jnp.maximum(norms, 1.0)


def craft_camouflage(
    key: PRNGKey,
    target_x: Array,
    target_y: int,
    adv_label: int,
    num_points: int,
    *,
    noise: float = 0.02,
) -> CamouflageSet:
    """``k`` poison rows labelled ``adv_label`` and ``k`` camouflage rows labelled
    ``target_y``, each ``x_t + noise·N(0, I)``, clipped at 0 and scaled into the
    unit ball (certified removal needs ``‖x‖₂ <= 1``).

    Args:
      key: Consumed (split into the poison's and the camouflage's noise).
      target_x: ``[d]``, the target. target_y: its true class.
      adv_label: The class the attacker wants after the deletion.
      num_points: ``k`` per set.
      noise: Std of the Gaussian jitter (so the rows are not exact duplicates).
    """
    _validate.prng_key("key", key)
    _validate.positive_int(num_points=num_points)
    _validate.non_negative(noise=noise)
    if int(adv_label) == int(target_y):
        raise ValueError(f"Expected adv_label != target_y, both are {int(target_y)}.")
    x = jnp.asarray(target_x)
    if x.ndim != 1:
        raise ValueError(f"Expected target_x to be 1-D, got shape {x.shape}.")
    kp, kc = jax.random.split(key)
    return CamouflageSet(
        _copies(kp, x, num_points, noise),
        jnp.full((num_points,), adv_label),
        _copies(kc, x, num_points, noise),
        jnp.full((num_points,), target_y),
    )


class CamouflageTrial(NamedTuple):
    """One attack: the target's prediction before and after deleting ``S_c``.

    Attributes:
      pred_before, pred_after: The target's predicted class.
      correct_before: The model on ``D ∪ S_p ∪ S_c`` is right (stealth).
      success: After the deletion the target is classified ``adv_label``.
      camouflage_rows: The deleted rows (indices into the augmented data).
      state: The unlearned state.
    """

    pred_before: int
    pred_after: int
    correct_before: bool
    success: bool
    camouflage_rows: np.ndarray
    state: object


def run_camouflage(
    method: Method,
    data: Data,
    attack: CamouflageSet,
    target_x: Array,
    target_y: int,
    *,
    key: PRNGKey,
) -> CamouflageTrial:
    """Trains ``method`` on ``data ∪ S_p ∪ S_c``, unlearns ``S_c``, predicts ``x_t``.

    Labels are appended in ``data.y``'s dtype. Keys: ``fold_in(key, 0)``
    trains, ``fold_in(key, 1)`` unlearns.
    """
    _validate.prng_key("key", key)
    X = jnp.asarray(data.x)
    y = jnp.asarray(data.y)
    n, k = X.shape[0], attack.poison_x.shape[0]
    aug = Data(
        jnp.concatenate([X, attack.poison_x.astype(X.dtype), attack.camouflage_x.astype(X.dtype)]),
        jnp.concatenate([y, attack.poison_y.astype(y.dtype), attack.camouflage_y.astype(y.dtype)]),
    )
    rows = np.arange(n + k, n + 2 * k)
    state, _ = method.train(jax.random.fold_in(key, 0), aug, None)
    xt = jnp.asarray(target_x)[None, :]
    before = int(np.asarray(method.predict(state.params, xt))[0])
    new, _, _ = method.unlearn(jax.random.fold_in(key, 1), state, jnp.asarray(rows), aug)
    after = int(np.asarray(method.predict(new.params, xt))[0])
    adv = int(np.asarray(attack.poison_y)[0])
    return CamouflageTrial(before, after, before == int(target_y), after == adv, rows, new)
