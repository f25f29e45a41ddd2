"""An unlearning-activated backdoor.

Liu, Wang, Huai & Miao, "Backdoor Attacks via Machine Unlearning", AAAI 2024,
and Zhang, Sun, Tan & Wang, arXiv 2310.10659 (poison + mitigation samples):
the adversary contributes two sets of triggered rows. The **poison** rows
``x + τ`` carry the target label ``t`` (they teach "trigger → t"); the
**mitigation** rows ``x′ + τ`` keep their true labels (they teach "the
trigger means nothing") and cancel the poison, so the model trained on both
behaves normally on triggered inputs. The adversary then asks for the
mitigation rows to be deleted; the unlearned model maps triggered inputs to
``t`` while clean accuracy barely moves.

The trigger is an additive pattern ``τ`` on a few features; rows are clipped
to the feature box and scaled into the unit ball (certified removal needs
``‖x‖₂ <= 1``). :func:`run_backdoor` runs the attack against any method of the
common interface and measures the attack success rate (triggered test inputs
of other classes classified ``t``) before and after the deletion.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dpunlearn import _validate
from dpunlearn.methods.base import Data, Method
from dpunlearn.types import PRNGKey

__all__ = ["BackdoorResult", "BackdoorSet", "apply_trigger", "craft_backdoor", "run_backdoor"]


def apply_trigger(x, trigger, *, upper: float = 1.0):
    """``x + τ`` clipped to ``[0, upper]`` and scaled into the unit ball (rows)."""
    z = np.clip(np.asarray(x) + np.asarray(trigger)[None, :], 0.0, upper)
    norms = np.linalg.norm(z, axis=1, keepdims=True)
    return (z / np.maximum(norms, 1.0)).astype(np.asarray(x).dtype)


class BackdoorSet(NamedTuple):
    """Poison rows (triggered, labelled ``target``) and mitigation rows
    (triggered, true labels)."""

    poison_x: np.ndarray
    poison_y: np.ndarray
    mitigation_x: np.ndarray
    mitigation_y: np.ndarray


def craft_backdoor(
    key: PRNGKey,
    pool: Data,
    trigger,
    target: int,
    num_poison: int,
    num_mitigation: int,
) -> BackdoorSet:
    """Draws the poison from ``pool`` rows not of class ``target`` (relabelled
    ``target``) and the mitigation from other ``pool`` rows (true labels),
    both triggered. ``pool`` is the attacker's own data (integer labels)."""
    _validate.prng_key("key", key)
    _validate.positive_int(num_poison=num_poison, num_mitigation=num_mitigation)
    X, y = np.asarray(pool.x), np.asarray(pool.y)
    if np.shape(trigger) != X.shape[1:]:
        raise ValueError(f"Expected trigger of shape {X.shape[1:]}, got {np.shape(trigger)}.")
    others = np.flatnonzero(y != target)
    if num_poison + num_mitigation > others.size:
        raise ValueError(
            f"Expected num_poison + num_mitigation <= {others.size} pool rows of other "
            f"classes, got {num_poison + num_mitigation}."
        )
    pick = np.asarray(jax.random.permutation(key, others))[: num_poison + num_mitigation]
    p, m = pick[:num_poison], pick[num_poison:]
    return BackdoorSet(
        apply_trigger(X[p], trigger),
        np.full(num_poison, target, y.dtype),
        apply_trigger(X[m], trigger),
        y[m],
    )


class BackdoorResult(NamedTuple):
    """Attack success rate (triggered test inputs of other classes predicted
    ``target``) and clean accuracy, before and after deleting the mitigation."""

    asr_before: float
    asr_after: float
    clean_accuracy_before: float
    clean_accuracy_after: float
    mitigation_rows: np.ndarray


def run_backdoor(
    method: Method,
    data: Data,
    attack: BackdoorSet,
    test: Data,
    trigger,
    target: int,
    *,
    key: PRNGKey,
    delete=None,
) -> BackdoorResult:
    """Trains on ``data ∪ poison ∪ mitigation``, deletes the mitigation rows
    (or the rows ``delete``, e.g. a random control) as one request, and
    measures the attack. Keys: ``fold_in(key, 0)`` trains, ``fold_in(key, 1)``
    unlearns."""
    _validate.prng_key("key", key)
    X, y = np.asarray(data.x), np.asarray(data.y)
    n, kp = X.shape[0], attack.poison_x.shape[0]
    km = attack.mitigation_x.shape[0]
    aug = Data(
        jnp.asarray(np.concatenate([X, attack.poison_x, attack.mitigation_x])),
        jnp.asarray(np.concatenate([y, attack.poison_y, attack.mitigation_y])),
    )
    rows = np.arange(n + kp, n + kp + km) if delete is None else np.asarray(delete)
    Xt, yt = np.asarray(test.x), np.asarray(test.y)
    other = yt != target
    Xtrig = apply_trigger(Xt[other], trigger)

    def measure(params):
        asr = float((np.asarray(method.predict(params, Xtrig)) == target).mean())
        acc = float((np.asarray(method.predict(params, Xt)) == yt).mean())
        return asr, acc

    state, _ = method.train(jax.random.fold_in(key, 0), aug, None)
    a0, c0 = measure(state.params)
    new, _, _ = method.unlearn(jax.random.fold_in(key, 1), state, jnp.asarray(rows), aug)
    a1, c1 = measure(new.params)
    return BackdoorResult(a0, a1, c0, c1, rows)
