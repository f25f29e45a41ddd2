"""Deliberately broken methods: what an audit must catch.

An audit that never fires is worthless; these methods break a certificate on
purpose, through the common interface, so that every attack and audit can be
checked against a known violation (``planted_bug: true`` in the
reproduction's records). None of them is for use.

* :func:`do_nothing`: ``unlearn`` updates the row mask and returns the
  *original* parameters (the classic failure the unlearning challenge's
  "do nothing" baseline measures), while keeping the wrapped method's
  currency and charges (it claims the certificate it no longer earns).
* :func:`paper_retrain_rule`: Guo et al.'s certified removal with the
  retrain rule of their Algorithm 2, "retrain when the accumulated residual
  bound β(b) passes the budget". β depends on the secret perturbation ``b``,
  so the released models never come from the region of ``b`` where a retrain
  fires (:func:`dpunlearn.retrain_schedule.paper_rule_uncertified` says why;
  ``docs/certified_removal.md`` §6 computes the resulting δ by quadrature).
* Noise scaled down: build a method with less noise than its certificate
  assumes (e.g. ``certified_removal(sigma=σ/k)``) and audit it against the
  claim computed at σ; no wrapper is needed.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dpunlearn.methods.base import Method
from dpunlearn.methods.certified_removal import certified_removal

__all__ = ["do_nothing", "paper_retrain_rule"]


def _replace_params(state, params):
    """``state`` with its released parameters replaced (a NamedTuple with a
    ``params`` field, or one nested a level down, e.g. certified removal's
    ``model``)."""
    fields = getattr(state, "_fields", ())
    if "params" in fields:
        return state._replace(params=params)
    for name in fields:
        sub = getattr(state, name)
        if "params" in getattr(sub, "_fields", ()):
            return state._replace(**{name: sub._replace(params=params)})
    raise ValueError(
        f"Cannot find a params field in {type(state).__name__}; do_nothing needs a "
        "NamedTuple state with params (or one nested NamedTuple with it)."
    )


def do_nothing(method: Method) -> Method:
    """``method`` whose unlearning releases the original parameters."""

    def unlearn(key, state, request, data):
        new, charge, info = method.unlearn(key, state, request, data)
        return _replace_params(new, state.params), charge, info

    return method._replace(name=f"{method.name}_do_nothing", unlearn=unlearn)


def paper_retrain_rule(
    *, lam: float, sigma: float, budget: float, epsilon: float, delta: float, **config_kwargs
) -> Method:
    """Certified removal that retrains (with the request's key) when the live
    model's β(b) exceeds ``budget``: Algorithm 2's uncertified rule.

    ``epsilon``, ``delta`` are the certificate the rule *claims* (what the
    budget was derived from). Currency ``"certified_removal_paper"``.
    """
    base = certified_removal(
        lam=lam, sigma=sigma, epsilon=epsilon, delta=delta, num_shadows=0, **config_kwargs
    )

    def unlearn(key, state, request, data):
        new, charge, info = base.unlearn(key, state, request, data)
        over = new.model.grad_residual_bound > budget
        fresh, fresh_charge = base.train(key, data, new.mask)
        pick = lambda a, b: jnp.where(over, a, b)
        out = jax.tree.map(pick, fresh, new)
        out_charge = jax.tree.map(pick, fresh_charge._replace(num_removed=charge.num_removed), charge)
        return out, out_charge, info

    return base._replace(name="certified_removal_paper_rule", unlearn=unlearn)
