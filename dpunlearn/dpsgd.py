"""DP-SGD with Poisson sampling (Abadi et al., CCS 2016), as optax transforms, and its accounting.

One step ``t`` of :func:`train`:

1. **Poisson sampling.** Every row the mask keeps joins the batch
   independently with probability ``q`` (key ``fold_in(k_sample, t)``); the
   batch size is random (Binomial(n, q)) and is never truncated.
2. **Clipping.** Per-example gradients of the sampled rows, in chunks of
   ``chunk_size`` rows (a ``while_loop`` over ``ceil(|batch| / chunk_size)``
   chunks, so any batch size runs in fixed shapes), each clipped to ℓ2 norm
   ``C`` and summed (:func:`dpunlearn.transforms.clip_per_example` with
   ``reduce="sum"``, i.e. optax's ``per_example_global_norm_clip``).
3. **Noise.** The sum gets ``N(0, σ²C²)`` per coordinate
   (:func:`dpunlearn.transforms.gaussian_noise`), is divided by the
   *expected* batch size ``q·n`` (``optax.scale``; ``n``, the number of rows
   the mask keeps, is treated as public, as usual) and goes to the optimiser
   (default ``optax.adam``). Steps 3's transforms are one optax chain
   (:func:`privatizer`) in front of the optimiser.

Accounting: ``T`` steps are ``T`` Poisson-subsampled Gaussian mechanisms with
noise multiplier ``σ`` under add/remove-one adjacency (adding or removing a
row moves the clipped sum by at most ``C``). :meth:`DPSGDConfig.epsilon`
composes their RDP curves with :mod:`dpunlearn.accounting.rdp` (Mironov,
Talwar & Zhang 2019) and converts with the improved conversion, exactly as the
ledger's (D) does for :meth:`DPSGDConfig.release`; ``accountant="pld"`` asks
dp_accounting's PLD accountant. :func:`calibrate` finds the smallest ``σ``
for a target ``(ε, δ)`` (never over the target).

With ``noise_multiplier=0`` or ``clip_norm=None`` the same loop trains
without privacy (``ε = ∞``): the non-private baseline of the experiments.

References:
  Abadi, Chu, Goodfellow, McMahan, Mironov, Talwar, Zhang. Deep Learning with
  Differential Privacy. CCS 2016. https://arxiv.org/abs/1607.00133
  Mironov, Talwar, Zhang. Rényi Differential Privacy of the Sampled Gaussian
  Mechanism. 2019. https://arxiv.org/abs/1908.10530
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import optax

from dpunlearn import _sharding, _validate, transforms
from dpunlearn.accounting import calibration, rdp
from dpunlearn.accounting import events as ev
from dpunlearn.models import Model
from dpunlearn.types import Array, PRNGKey, PyTree

__all__ = [
    "DPSGDConfig",
    "StepGradient",
    "calibrate",
    "privatizer",
    "step_gradient",
    "train",
]


@dataclasses.dataclass(frozen=True, kw_only=True)
class DPSGDConfig:
    """The schedule of a DP-SGD run.

    Attributes:
      noise_multiplier: ``σ`` (noise std / ``C``); ``0`` trains without noise.
      clip_norm: ``C``; ``None`` trains without clipping (and without privacy).
      sampling_rate: Poisson sampling probability ``q`` in ``(0, 1]``.
      steps: ``T``, the number of noisy steps.
      learning_rate: Of the default optimiser (Adam).
      chunk_size: Rows per per-example-gradient chunk (memory, not privacy).
    """

    noise_multiplier: float
    clip_norm: float | None
    sampling_rate: float
    steps: int
    learning_rate: float = 1e-3
    chunk_size: int = 64

    def __post_init__(self):
        _validate.non_negative(noise_multiplier=self.noise_multiplier)
        if self.clip_norm is not None:
            _validate.positive(clip_norm=self.clip_norm)
        _validate.positive(sampling_rate=self.sampling_rate, learning_rate=self.learning_rate)
        if float(self.sampling_rate) > 1.0:
            raise ValueError(f"Expected sampling_rate={self.sampling_rate} in (0, 1].")
        _validate.positive_int(steps=self.steps, chunk_size=self.chunk_size)

    @property
    def private(self) -> bool:
        """Whether the run is DP (noise and clipping both on)."""
        return self.noise_multiplier > 0 and self.clip_norm is not None

    def event(self) -> ev.SubsampledGaussianEvent:
        """The run as an accounting event (``T`` Poisson-subsampled Gaussians)."""
        self._need_private()
        return ev.SubsampledGaussianEvent(
            q=float(self.sampling_rate), sigma=float(self.noise_multiplier), count=int(self.steps)
        )

    def release(self) -> dict:
        """The (D) mechanism a ledger entry declares for this run
        (:func:`dpunlearn.accounting.ledger.subsampled_gaussian_release`)."""
        from dpunlearn.accounting import ledger

        self._need_private()
        return ledger.subsampled_gaussian_release(
            float(self.sampling_rate), float(self.noise_multiplier), int(self.steps)
        )

    def epsilon(
        self, delta: float, *, accountant: Literal["rdp", "pld"] = "rdp"
    ) -> float:
        """``ε`` of the whole run at ``δ`` (``inf`` without privacy).

        ``"rdp"``: our RDP curve of the Poisson-subsampled Gaussian, composed
        ``T`` times, improved conversion (the ledger's (D) value for
        :meth:`release`). ``"pld"``: dp_accounting's PLD accountant
        (pessimistic, about 1e-4 in ε).
        """
        _validate.open_interval(0.0, 1.0, delta=delta)
        if not self.private:
            return math.inf
        if accountant == "rdp":
            curve = ev.rdp_curve([self.event()], rdp.DEFAULT_ORDERS)
            eps, _ = rdp.rdp_to_dp(rdp.DEFAULT_ORDERS, curve, float(delta), method="improved")
            return float(eps)
        if accountant == "pld":
            return ev.epsilon_pld([self.event()], float(delta))
        raise ValueError(f"Expected accountant in ('rdp', 'pld'), got {accountant!r}.")

    def _need_private(self) -> None:
        if not self.private:
            raise ValueError(
                "A run without noise (noise_multiplier=0) or without clipping "
                "(clip_norm=None) is not differentially private: it has no event."
            )


def calibrate(
    epsilon: float,
    delta: float,
    *,
    sampling_rate: float,
    steps: int,
    clip_norm: float,
    learning_rate: float = 1e-3,
    chunk_size: int = 64,
) -> DPSGDConfig:
    """The schedule with the smallest ``σ`` whose RDP ``ε`` at ``δ`` is ``<= epsilon``.

    Uses :func:`dpunlearn.accounting.calibration.calibrate_gaussian_sigma`
    (never over the target, as the RDP accountant computes it), so
    ``calibrate(...).epsilon(delta) <= epsilon``.
    """
    sigma = calibration.calibrate_gaussian_sigma(
        epsilon,
        delta,
        count=steps,
        accountant="rdp",
        sampling_probability=sampling_rate,
    )
    return DPSGDConfig(
        noise_multiplier=sigma,
        clip_norm=clip_norm,
        sampling_rate=sampling_rate,
        steps=steps,
        learning_rate=learning_rate,
        chunk_size=chunk_size,
    )


def privatizer(config: DPSGDConfig, *, key: PRNGKey, expected_batch) -> optax.GradientTransformation:
    """Noise ``N(0, σ²C²)`` on the clipped sum, then ``1/(q·n)``: an optax chain.

    Put it in front of any optimiser: ``optax.chain(privatizer(...), optax.adam(lr))``.
    Without privacy (``σ = 0`` or no clipping) only the scaling is applied.
    """
    scale = optax.scale(1.0 / jnp.maximum(jnp.asarray(expected_batch, jnp.float32), 1e-12))
    if not config.private:
        return scale
    std = float(config.noise_multiplier) * float(config.clip_norm)
    return optax.chain(transforms.gaussian_noise(std, key=key), scale)


def _clipped_sum(loss, params, x, y, mask, sampled_key, config: DPSGDConfig):
    """Sum of the clipped per-example gradients of one Poisson sample, and its size."""
    n = mask.shape[0]
    c = int(config.chunk_size)
    sel = jax.random.bernoulli(sampled_key, config.sampling_rate, (n,)) & mask
    count = jnp.sum(sel).astype(jnp.int32)
    sel = _sharding.replicated(sel)  # n booleans, not the rows
    idx = jnp.nonzero(sel, size=n, fill_value=-1)[0].astype(jnp.int32)
    idx = _sharding.concatenate([idx, jnp.full((c,), -1, jnp.int32)])
    grad_fn = jax.vmap(jax.grad(loss), in_axes=(None, 0, 0))
    clip = (
        transforms.clip_per_example(config.clip_norm, reduce="sum")
        if config.clip_norm is not None
        else None
    )
    zero = jax.tree.map(jnp.zeros_like, params)

    def body(carry):
        j, acc = carry
        rows = jax.lax.dynamic_slice_in_dim(idx, j * c, c)
        valid = rows >= 0
        safe = jnp.clip(rows, 0)
        xb = jax.tree.map(lambda a: _sharding.gather_rows(a, safe), x)
        yb = _sharding.gather_rows(y, safe)
        if clip is None:  # no clipping: the gradient of the sum, no per-example grads
            s = jax.grad(
                lambda p: jnp.sum(
                    valid * jax.vmap(loss, in_axes=(None, 0, 0))(p, xb, yb)
                )
            )(params)
        else:
            g = grad_fn(params, xb, yb)
            g = jax.tree.map(
                lambda a: a * valid.reshape((-1,) + (1,) * (a.ndim - 1)).astype(a.dtype), g
            )
            s, _ = clip.update(g, clip.init(params))
        return j + 1, jax.tree.map(jnp.add, acc, s)

    _, total = _sharding.while_loop(
        lambda cr: cr[0] * c < count, body, (jnp.int32(0), zero)
    )
    return total, count


class StepGradient(NamedTuple):
    """One DP-SGD gradient, for inspection (:func:`step_gradient`).

    Attributes:
      clipped_sum: Sum of the clipped per-example gradients of the sample.
      noisy_mean: ``(clipped_sum + N(0, σ²C²)) / (q·n)``: what the optimiser gets.
      batch_size: Size of the Poisson sample.
      expected_batch: ``q·n``.
    """

    clipped_sum: PyTree
    noisy_mean: PyTree
    batch_size: Array
    expected_batch: Array


def step_gradient(
    key: PRNGKey, loss, params: PyTree, x, y, mask, config: DPSGDConfig
) -> StepGradient:
    """The gradient of one DP-SGD step at ``params`` (the first step of
    :func:`train` with the same key): sample, clip, sum, noise, scale."""
    k_sample, k_noise = jax.random.split(key)
    mask = jnp.asarray(mask, bool)
    expected = config.sampling_rate * jnp.sum(mask).astype(jnp.float32)
    total, count = _clipped_sum(loss, params, x, y, mask, jax.random.fold_in(k_sample, 0), config)
    tx = privatizer(config, key=k_noise, expected_batch=expected)
    noisy, _ = tx.update(total, tx.init(params), params)
    return StepGradient(total, noisy, count, expected)


def train(
    key: PRNGKey,
    model: Model,
    x,
    y,
    mask,
    config: DPSGDConfig,
    *,
    optimizer: optax.GradientTransformation | None = None,
) -> tuple[PyTree, Array]:
    """Trains ``model`` by DP-SGD on the rows ``mask`` keeps.

    Args:
      key: Split into the sampling key (folded with the step) and the noise
        key (kept and split by :func:`~dpunlearn.transforms.gaussian_noise`).
      model: A :class:`~dpunlearn.models.Model` (per-example ``loss``).
      x, y: The data (``x`` may be a pytree of row-leading arrays).
      mask: ``bool[n]``: rows that may be sampled.
      config: The schedule.
      optimizer: Default ``optax.adam(config.learning_rate)``.

    Returns:
      ``(params, batch_sizes)``: the trained parameters and the size of every
      step's Poisson sample (``int32[T]``).
    """
    mask = jnp.asarray(mask, bool)
    x = jax.tree.map(jnp.asarray, x)  # NumPy rows cannot be indexed by the traced sample
    y = jnp.asarray(y)
    opt = optimizer if optimizer is not None else optax.adam(config.learning_rate)
    k_sample, k_noise = jax.random.split(key)
    expected = config.sampling_rate * jnp.sum(mask).astype(jnp.float32)
    tx = optax.chain(privatizer(config, key=k_noise, expected_batch=expected), opt)

    def step(t, carry):
        params, state, sizes = carry
        total, count = _clipped_sum(
            model.loss, params, x, y, mask, jax.random.fold_in(k_sample, t), config
        )
        updates, state = tx.update(total, state, params)
        return optax.apply_updates(params, updates), state, sizes.at[t].set(count)

    params = model.params
    sizes = jnp.zeros((int(config.steps),), jnp.int32)
    params, _, sizes = _sharding.fori_loop(
        0, int(config.steps), step, (params, tx.init(params), sizes)
    )
    return params, sizes
