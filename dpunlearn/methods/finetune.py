"""Certified unlearning for neural networks (Koloskova et al., ICML 2025) as a method.

**Learning** is ordinary, non-private training of any
:class:`~dpunlearn.models.Model` (an nnx or linen MLP, a linear model …):
``train_steps`` steps of an optax optimiser (default Adam) on the mean loss
of the rows the mask keeps, full batch or on mini-batches drawn from the key
(deterministic given the key). The trained model carries no certificate.

**Unlearning** a request removes its rows and runs, on the rows that remain:

1. **model clipping** ``θ₀ = θ·min(1, C₀/‖θ‖)`` (global ℓ2 norm of the
   parameter pytree);
2. ``T`` **noisy steps** (``lax.scan``), in one of the paper's two variants:

   * ``"gradient_clip"`` (default; privacy amplification by iteration):
     ``θ ← θ − η(clip_{C₁}(∇L(θ)) + λθ) + N(0, σ²I)``, the clip applied to
     the (mini-)batch mean gradient as a whole;
   * ``"model_clip"`` (contraction coefficients):
     ``θ ← Π_C(θ − η(∇L(θ) + λθ)) + N(0, σ²I)``, noise after the projection
     onto the ball of radius ``C``;

3. optionally ``post_steps`` **noiseless** steps of ``post_optimizer`` on the
   remaining rows, to recover accuracy. They read only the remaining rows,
   which the comparator shares, so they are post-processing and leave the
   certificate unchanged.

σ is per coordinate, constant over the ``T`` steps, and calibrated on the host
when the factory is built (:func:`certified_finetune_plan`) by the accountant
of :mod:`dpunlearn.accounting.currencies.finetune`: for ``"gradient_clip"``
the Rényi bound ``D_α <= α·R``, ``R = S²/(2σ²W)``, at every order, converted
to (ε, δ) without dropping α; for ``"model_clip"`` the hockey-stick
recursion ``δ_{t+1} = δ_t·θ_{ε̃_t}(2C/σ)``. The calibration never overshoots,
and σ is then rounded UP to the nearest float32 (the value the device uses and
the ledger records), which still certifies the target. Derivations, and how
they differ from the authors' code (a factor 2 in σ for λ = 0 and a dropped
order α in the conversion): ``docs/finetune.md`` and the currency module.

**Certificate and comparator.** The released model is (ε, δ)-indistinguishable,
in both directions, from **retraining on the remaining rows and then running
the same procedure** (clip, the same ``T`` noisy steps, the same post steps;
:attr:`CertifiedFinetunePlan.procedure` is that procedure). No assumption on
the loss: no convexity, no smoothness, no bounded gradients (the clips bound
everything the proof needs), so nnx and linen MLPs are certified as they are.
The bound does not depend on how many rows a request removes, nor on the
model the request starts from (step 1 puts any model in the ``C₀`` ball):
every request is certified at the same (ε, δ), requests never accumulate, and
no retrain is ever required. As for every certified-unlearning guarantee,
adaptively chosen requests are a question for the (D) ledger
(:mod:`dpunlearn.accounting.ledger`).

**Numerics.** The clips and the projection are applied at ``(1 − 1e-5)`` of
``C₀``, ``C₁`` and ``C`` so that float32 rounding of the norms never lets a
clipped quantity exceed the constant the accountant uses. JAX's threefry
Gaussian noise is not cryptographic (README, security note).

**Bad input.** Structural errors raise ``ValueError``; value errors (a row
already removed, out of range or repeated, NaN/inf data or parameters)
raise eagerly and, under ``jit``, poison the charge (``epsilon = inf``,
``certified = valid = False``) and leave the model unchanged.

References:
  Koloskova, Allouah, Jha, Guerraoui, Koyejo. Certified Unlearning for Neural
  Networks. ICML 2025. https://arxiv.org/abs/2506.06985
  Feldman, Mironov, Talwar, Thakurta. Privacy Amplification by Iteration.
  FOCS 2018. https://arxiv.org/abs/1808.06651
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dpunlearn import _sharding, _validate, transforms
from dpunlearn.accounting import currencies as cur
from dpunlearn.methods import _noisy
from dpunlearn.methods.base import (
    Data,
    Method,
    check_data,
    check_mask,
    check_request,
    request_valid,
)
from dpunlearn.models import Model
from dpunlearn.types import Array, PRNGKey, PyTree

__all__ = [
    "CertifiedFinetuneCharge",
    "CertifiedFinetuneInfo",
    "CertifiedFinetunePlan",
    "CertifiedFinetuneState",
    "certified_finetune",
    "certified_finetune_plan",
    "clip_model",
]

# Relative margin of every on-device clip (see the module doc, "Numerics").
CLIP_MARGIN = 1e-5


class CertifiedFinetuneState(NamedTuple):
    """A model of the certified fine-tuning method (a pytree; never holds the data).

    Attributes:
      params: The released parameters.
      mask: ``bool[n]``: rows still in the training set.
      num_requests: Requests served since the last (re)training (int32).
    """

    params: PyTree
    mask: Array
    num_requests: Array


class CertifiedFinetuneCharge(NamedTuple):
    """What one (re)training or request costs, in the ``"finetune"`` currency.

    Attributes:
      num_removed: Rows removed by this call (0 for training).
      steps: Noisy steps run (``T``; ``train_steps`` for training).
      sigma: Per-coordinate noise std of the noisy steps (0 for training).
      epsilon: ε certified at ``delta`` against retraining-then-the-same-
        procedure (0 after training); ``inf`` when poisoned.
      delta: The δ of ``epsilon``.
      certified: ``valid`` and the target (ε, δ) is certified.
      valid: The call was valid (else the model is unchanged).
    """

    num_removed: Array
    steps: Array
    sigma: Array
    epsilon: Array
    delta: Array
    certified: Array
    valid: Array


class CertifiedFinetuneInfo(NamedTuple):
    """Diagnostics of one unlearning call.

    Attributes:
      valid: The request was valid (else nothing changed).
      num_newly_removed: Rows removed (0 when invalid).
      steps: Noisy steps run.
      init_norm: ``‖θ‖`` before the model clip (above ``C₀``: the clip was active).
      max_grad_norm: Largest (mini-)batch gradient norm over the noisy steps,
        before any clip (above ``C₁``: the gradient clip was active).
    """

    valid: Array
    num_newly_removed: Array
    steps: Array
    init_norm: Array
    max_grad_norm: Array


class CertifiedFinetunePlan(NamedTuple):
    """What :func:`certified_finetune` resolves on the host before building its functions.

    Attributes:
      config: The accountant's :class:`~dpunlearn.accounting.currencies.FinetuneConfig`;
        :attr:`ledger_params` is the ledger's ``params`` for the ``"finetune"`` currency.
      steps: ``T``, noisy steps per request.
      sigma: σ used (float32-representable, ``>=`` the calibrated value).
      calibrated_sigma: The never-overshooting float64 σ of the accountant
        (``None`` when ``sigma`` was given).
      epsilon: ε certified at ``delta`` with ``sigma`` (float64).
      delta, target_epsilon: The target.
      certified: ``sigma`` certifies ``(target_epsilon, delta)``.
      rdp_coefficient: ``R`` with ``D_α <= α·R`` (``"gradient_clip"``; else None).
      procedure: ``(key, params, mask, data) -> (params, (init_norm,
        max_grad_norm))``: clip, ``T`` noisy steps, post steps on the rows
        ``mask`` keeps (jittable). Retraining and then this is the comparator.
    """

    config: cur.FinetuneConfig
    steps: int
    sigma: float
    calibrated_sigma: float | None
    epsilon: float
    delta: float
    target_epsilon: float
    certified: bool
    rdp_coefficient: float | None
    procedure: Callable

    @property
    def ledger_params(self) -> dict:
        """The ledger ``params`` of this deployment (``"finetune"`` currency)."""
        return {
            k: v for k, v in dataclasses.asdict(self.config).items() if v is not None
        }


def clip_model(params: PyTree, radius) -> PyTree:
    """``θ·min(1, radius/‖θ‖)``, the global ℓ2 norm over the pytree (step 1)."""
    return optax.projections.projection_l2_ball(params, radius)


def _float32_up(x: float) -> float:
    """The smallest float32 value ``>= x`` (as a Python float)."""
    f = np.float32(x)
    if float(f) < x:
        f = np.nextafter(f, np.float32(np.inf))
    return float(f)


def _count(name: str, value, minimum: int) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or value < minimum
    ):
        raise ValueError(
            f"Expected {name} to be an integer >= {minimum}, got {value!r}."
        )
    return int(value)


def _weights_and_rows(key, data: Data, mask: Array, batch_size: int | None):
    """``(x, y, w)``: the rows a step sees and their weights (sum 1).

    Full batch: every row, weight ``mask/Σmask``. Mini-batch: ``batch_size``
    distinct kept rows drawn uniformly without replacement (Gumbel top-k;
    when fewer rows are kept, the extra draws get weight 0).
    """
    keep = mask.astype(jnp.float32)
    if batch_size is None:
        return data.x, data.y, keep / jnp.maximum(jnp.sum(keep), 1.0)
    scores = jnp.where(mask, jax.random.gumbel(key, mask.shape), -jnp.inf)
    _, idx = jax.lax.top_k(scores, batch_size)
    w = _sharding.gather_rows(keep, idx)
    x = jax.tree.map(lambda a: _sharding.gather_rows(a, idx), data.x)
    return x, _sharding.gather_rows(data.y, idx), w / jnp.maximum(jnp.sum(w), 1.0)


def certified_finetune_plan(
    model: Model,
    *,
    num_rows: int,
    epsilon: float,
    delta: float,
    init_clip: float,
    learning_rate: float,
    variant: Literal["gradient_clip", "model_clip"] = "gradient_clip",
    grad_clip: float | None = None,
    model_clip: float | None = None,
    weight_decay: float = 0.0,
    steps: int | None = None,
    sigma: float | None = None,
    batch_size: int | None = None,
    post_steps: int = 0,
    post_optimizer: optax.GradientTransformation | None = None,
    conversion: cur.Conversion = "improved",
) -> CertifiedFinetunePlan:
    """Resolves the configuration of :func:`certified_finetune` (its unlearning
    arguments; see there) into a :class:`CertifiedFinetunePlan`.

    Example (the authors' MNIST configuration: C₀ = 0.01, C₁ = 10,
    η = 1e-4, λ = 750, T = 6):
      >>> from dpunlearn import models
      >>> plan = certified_finetune_plan(models.linear(4), num_rows=10, epsilon=7.0771966958,
      ...     delta=1e-5, init_clip=0.01, grad_clip=10.0, learning_rate=1e-4,
      ...     weight_decay=750.0, steps=6)
      >>> round(plan.calibrated_sigma, 6), round(plan.rdp_coefficient, 6)
      (0.007752, 1.0)
    """
    if not isinstance(model, Model):
        raise ValueError(
            f"Expected model to be a dpunlearn.models.Model, got {type(model).__name__}."
        )
    if variant not in cur.VARIANTS:
        raise ValueError(f"Expected variant in {cur.VARIANTS}, got {variant!r}.")
    n = _count("num_rows", num_rows, 2)
    _validate.positive(
        epsilon=epsilon, init_clip=init_clip, learning_rate=learning_rate
    )
    _validate.open_interval(0.0, 1.0, delta=delta)
    if variant == "gradient_clip":
        if grad_clip is None:
            raise ValueError("variant='gradient_clip' needs grad_clip (C₁).")
        if model_clip is not None:
            raise ValueError("variant='gradient_clip' does not use model_clip.")
        if steps is None:
            steps = cur.pabi_steps(
                init_clip=init_clip, grad_clip=grad_clip, step_size=learning_rate
            )
    else:
        if model_clip is None:
            raise ValueError("variant='model_clip' needs model_clip (C).")
        if grad_clip is not None:
            raise ValueError(
                "variant='model_clip' does not clip gradients (grad_clip must be None)."
            )
        if steps is None:
            raise ValueError("variant='model_clip' needs steps (T).")
    steps = _count("steps", steps, 1)
    post_steps = _count("post_steps", post_steps, 0)
    if batch_size is not None:
        batch_size = _count("batch_size", batch_size, 1)
        if batch_size > n:
            raise ValueError(f"Expected batch_size={batch_size} <= num_rows={n}.")
    config = cur.FinetuneConfig(
        variant=variant,
        init_clip=float(init_clip),
        step_size=float(learning_rate),
        weight_decay=float(weight_decay),
        grad_clip=None if grad_clip is None else float(grad_clip),
        model_clip=None if model_clip is None else float(model_clip),
        conversion=conversion,
    )
    if sigma is None:
        calibrated = cur.finetune_min_sigma(
            config, steps=steps, target_epsilon=float(epsilon), delta=float(delta)
        )
        used = _float32_up(calibrated)
    else:
        _validate.positive(sigma=sigma)
        calibrated, used = None, _float32_up(float(sigma))
    eps = config.epsilon(steps=steps, sigma=used, delta=float(delta))
    ok = config.certifies(
        steps=steps, sigma=used, epsilon=float(epsilon), delta=float(delta)
    )
    if calibrated is not None and not ok:  # pragma: no cover - monotone in σ
        raise AssertionError("The calibrated sigma does not certify its target.")
    rdp_coef = (
        config.rdp_coefficient(steps=steps, sigma=used)
        if variant == "gradient_clip"
        else None
    )
    procedure = _make_procedure(
        model,
        config=config,
        steps=steps,
        sigma=used,
        batch_size=batch_size,
        post_steps=post_steps,
        post_optimizer=post_optimizer or optax.sgd(float(learning_rate)),
    )
    return CertifiedFinetunePlan(
        config=config,
        steps=steps,
        sigma=used,
        calibrated_sigma=calibrated,
        epsilon=float(eps),
        delta=float(delta),
        target_epsilon=float(epsilon),
        certified=bool(ok),
        rdp_coefficient=rdp_coef,
        procedure=procedure,
    )


def _make_procedure(
    model: Model,
    *,
    config: cur.FinetuneConfig,
    steps: int,
    sigma: float,
    batch_size: int | None,
    post_steps: int,
    post_optimizer: optax.GradientTransformation,
):
    shrink = 1.0 - CLIP_MARGIN
    eta, lam = config.step_size, config.weight_decay
    decay = [optax.add_decayed_weights(lam)] if lam else []

    def noisy_tx(key):
        if config.variant == "gradient_clip":
            return optax.chain(
                optax.clip_by_global_norm(config.grad_clip * shrink),
                *decay,
                optax.scale(-eta),
                transforms.gaussian_noise(sigma, key=key),
            )
        return optax.chain(
            *decay,
            optax.scale(-eta),
            transforms.project_l2_ball(config.model_clip * shrink),
            transforms.gaussian_noise(sigma, key=key),
        )

    def grad_fn(params, key, data, mask):
        x, y, w = _weights_and_rows(key, data, mask, batch_size)

        def loss(p):
            per = jax.vmap(model.loss, in_axes=(None, 0, 0))(p, x, y)
            return jnp.sum(w.astype(per.dtype) * per)

        return jax.grad(loss)(params)

    def run(tx, params, keys, data, mask):
        def body(carry, k):
            p, s, gmax = carry
            g = grad_fn(p, k, data, mask)
            gmax = jnp.maximum(gmax, transforms.tree_norm(g).astype(jnp.float32))
            u, s = tx.update(g, s, p)
            return (optax.apply_updates(p, u), s, gmax), None

        init = (params, tx.init(params), jnp.zeros((), jnp.float32))
        (params, _, gmax), _ = _sharding.scan(body, init, keys)
        return params, gmax

    def procedure(key, params, mask, data):
        k_noise, k_batch, k_post = jax.random.split(key, 3)
        init_norm = transforms.tree_norm(params).astype(jnp.float32)
        params = clip_model(params, config.init_clip * shrink)
        params, gmax = run(
            noisy_tx(k_noise), params, jax.random.split(k_batch, steps), data, mask
        )
        if post_steps:
            params, _ = run(
                post_optimizer, params, jax.random.split(k_post, post_steps), data, mask
            )
        return params, (init_norm, gmax)

    return procedure


def certified_finetune(
    model: Model,
    *,
    num_rows: int,
    epsilon: float,
    delta: float,
    init_clip: float,
    learning_rate: float,
    variant: Literal["gradient_clip", "model_clip"] = "gradient_clip",
    grad_clip: float | None = None,
    model_clip: float | None = None,
    weight_decay: float = 0.0,
    steps: int | None = None,
    sigma: float | None = None,
    train_steps: int = 100,
    train_optimizer: optax.GradientTransformation | None = None,
    batch_size: int | None = None,
    post_steps: int = 0,
    post_optimizer: optax.GradientTransformation | None = None,
    conversion: cur.Conversion = "improved",
) -> Method:
    """Certified noisy fine-tuning: ordinary training, then clip + noisy clipped
    fine-tuning on the remaining rows per request (see the module doc).

    Args:
      model: Any :class:`~dpunlearn.models.Model`; no assumption on its loss.
      num_rows: ``n``, rows of the data the method is used with (checked).
      epsilon, delta: The (ε, δ) every request certifies.
      init_clip: ``C₀``, the model clip before the noisy steps.
      learning_rate: ``η`` of the noisy steps (and of the default post optimiser).
      variant: ``"gradient_clip"`` (PABI) or ``"model_clip"`` (contraction).
      grad_clip: ``C₁``, the clip of the batch gradient (``"gradient_clip"``).
      model_clip: ``C``, the projection radius of every step (``"model_clip"``).
      weight_decay: ``λ >= 0`` of the noisy steps (``ηλ < 1``); ρ = 1 − ηλ.
      steps: ``T``. Default for ``"gradient_clip"``: ``⌈C₀/(ηC₁)⌉`` (minimises
        the bound at fixed σ when λ = 0); required for ``"model_clip"``.
      sigma: Override the calibrated σ (experiments, tests): the charges then
        carry the ε it certifies, and ``certified`` says whether it meets the
        target.
      train_steps: Steps of ordinary training (``>= 0``).
      train_optimizer: Optax optimiser of training (default ``optax.adam(1e-2)``).
      batch_size: Mini-batch size of every phase (None: full batch); batches
        are drawn from the keys without replacement among the kept rows.
      post_steps: Noiseless post-unlearning steps (post-processing; 0: none).
      post_optimizer: Their optimiser (default ``optax.sgd(learning_rate)``).
      conversion: RDP → DP conversion of the PABI bound (``"improved"``,
        Canonne et al. 2020; or ``"classic"``, Bun & Steinke 2016).

    Returns:
      A :class:`~dpunlearn.methods.base.Method` named ``"certified_finetune"``
      with currency ``"finetune"``.

    Raises:
      ValueError: Bad arguments, or a target no σ reaches.
    """
    plan = certified_finetune_plan(
        model,
        num_rows=num_rows,
        epsilon=epsilon,
        delta=delta,
        init_clip=init_clip,
        learning_rate=learning_rate,
        variant=variant,
        grad_clip=grad_clip,
        model_clip=model_clip,
        weight_decay=weight_decay,
        steps=steps,
        sigma=sigma,
        batch_size=batch_size,
        post_steps=post_steps,
        post_optimizer=post_optimizer,
        conversion=conversion,
    )
    train_steps = _count("train_steps", train_steps, 0)
    n = int(num_rows)
    reference = model.params
    train_tx = train_optimizer or optax.adam(1e-2)
    procedure = plan.procedure

    @jax.jit
    def train_core(key, data, mask):
        ok = _noisy.data_ok(data, None)
        params = reference

        def body(carry, k):
            p, s = carry
            x, y, w = _weights_and_rows(k, data, mask, batch_size)

            def loss(p):
                per = jax.vmap(model.loss, in_axes=(None, 0, 0))(p, x, y)
                return jnp.sum(w.astype(per.dtype) * per)

            u, s = train_tx.update(jax.grad(loss)(p), s, p)
            return (optax.apply_updates(p, u), s), None

        (params, _), _ = _sharding.scan(
            body, (params, train_tx.init(params)), jax.random.split(key, train_steps)
        )
        ok &= _noisy.tree_finite(params)
        state = CertifiedFinetuneState(
            params=params, mask=mask, num_requests=jnp.zeros((), jnp.int32)
        )
        charge = CertifiedFinetuneCharge(
            num_removed=jnp.zeros((), jnp.int32),
            steps=jnp.asarray(train_steps, jnp.int32),
            sigma=jnp.zeros((), jnp.float32),
            epsilon=jnp.where(ok, 0.0, jnp.inf).astype(jnp.float32),
            delta=jnp.asarray(plan.delta, jnp.float32),
            certified=ok,
            valid=ok,
        )
        return state, charge

    def train(key: PRNGKey, data: Data, mask=None):
        """``train_steps`` steps of ``train_optimizer`` on the rows ``mask`` keeps."""
        _validate.prng_key("key", key)
        data = check_data(data, num_rows=n)
        mask = check_mask(mask, n, data=data)
        return train_core(key, data, mask)

    @jax.jit
    def unlearn_core(key, state, request, data):
        valid, safe = request_valid(request, state.mask)
        valid &= _noisy.data_ok(data, None) & _noisy.tree_finite(state.params)
        removed = _sharding.scatter(state.mask, safe, False)
        new_mask = jnp.where(valid, removed, state.mask)
        params, (init_norm, gmax) = procedure(key, state.params, new_mask, data)
        valid &= _noisy.tree_finite(params)
        size = jnp.asarray(request.shape[0], jnp.int32)
        new = CertifiedFinetuneState(
            params=_noisy.tree_select(valid, params, state.params),
            mask=jnp.where(valid, new_mask, state.mask),
            num_requests=state.num_requests + valid.astype(jnp.int32),
        )
        steps = jnp.where(valid, plan.steps, 0).astype(jnp.int32)
        charge = CertifiedFinetuneCharge(
            num_removed=jnp.where(valid, size, 0),
            steps=steps,
            sigma=jnp.asarray(plan.sigma, jnp.float32),
            epsilon=jnp.where(valid, _float32_up(plan.epsilon), jnp.inf).astype(
                jnp.float32
            ),
            delta=jnp.asarray(plan.delta, jnp.float32),
            certified=valid & plan.certified,
            valid=valid,
        )
        info = CertifiedFinetuneInfo(
            valid, jnp.where(valid, size, 0), steps, init_norm, gmax
        )
        return new, charge, info

    def unlearn(key: PRNGKey, state: CertifiedFinetuneState, request, data: Data):
        """Removes ``request``, then clip + ``T`` noisy steps (+ post steps) on
        the remaining rows."""
        _validate.prng_key("key", key)
        data = check_data(data, num_rows=n)
        if not isinstance(state, CertifiedFinetuneState):
            raise ValueError(
                f"Expected a CertifiedFinetuneState, got {type(state).__name__}."
            )
        _noisy.check_params_like("state.params", state.params, reference)
        if np.shape(state.mask)[-1:] != (n,):
            raise ValueError(
                f"Expected state.mask of shape ({n},), got {np.shape(state.mask)}."
            )
        request = check_request(request, state.mask)
        if not jnp.issubdtype(jnp.result_type(request), jnp.integer):
            raise ValueError(f"Expected request to hold integers, got {request.dtype}.")
        if request.shape[0] == 0:
            raise ValueError("Expected a non-empty request.")
        if _validate.is_concrete(state.params):
            for leaf in jax.tree.leaves(state.params):
                _validate.finite_array("state.params", leaf)
        return unlearn_core(key, state, jnp.asarray(request, jnp.int32), data)

    def predict(params, inputs):
        return jax.vmap(model.predict, in_axes=(None, 0))(params, inputs)

    return Method(
        name="certified_finetune",
        currency="finetune",
        train=train,
        unlearn=unlearn,
        predict=predict,
    )
