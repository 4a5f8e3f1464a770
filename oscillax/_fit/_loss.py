"""What `fit` minimises: the horizon-weighted time-domain MSE of the standardised series,
plus a windowed spectral-magnitude mismatch, on data prepared once outside jit; and, from
the same forward pass, the MSE on the selection part (the end of the training part, which
is never fitted)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ._spectrum import _blackman, _trapezoid_weights
from ._stepping import _hermite_weights, _states


class _Data(eqx.Module):
    """The training target in internal time, with its interpolation weights and spectrum.

    `fitted` is 1 on the samples the network is fitted to and 0 on the selection part.
    """

    taus: Float[Array, " T"]
    idx: Array
    frac: Float[Array, " T"]
    y: Float[Array, "T p"]
    fitted: Float[Array, " T"]
    width: Float[Array, ""]
    spec_re: Float[Array, "F T"]
    spec_im: Float[Array, "F T"]
    spec_target: Float[Array, "F p"]


def _spectrum_mag(data: _Data, y):
    re = data.spec_re @ y
    im = data.spec_im @ y
    return jnp.sqrt(re * re + im * im + 1e-12)


def _loss_terms(model, data: _Data, horizon, step, n_steps, spectral_weight):
    """`(loss, (mse, select_mse, err))`: the training loss, its time-domain part, the MSE
    on the selection part (0 when there is none), which the loss does not see, and the
    squared error of every sample `(T,)` (mean over channels).

    Samples past `horizon` are faded out by a sigmoid of width `data.width`, so the window
    that is fitted can grow during training.
    """
    xs = _states(model, data.taus, data.idx, data.frac, step, n_steps)
    yh = model.readout(xs)
    err = jnp.mean((yh - data.y) ** 2, axis=-1)
    w = jax.nn.sigmoid((horizon - data.taus) / data.width) * data.fitted
    mse = jnp.sum(w * err) / jnp.sum(w)
    held = 1 - data.fitted
    select_mse = jnp.sum(held * err) / jnp.maximum(jnp.sum(held), 1)
    if spectral_weight > 0:
        mag = _spectrum_mag(data, yh)
        tgt = data.spec_target
        spec = jnp.mean((mag - tgt) ** 2) / jnp.mean(tgt * tgt)
        return mse + spectral_weight * spec, (mse, select_mse, err)
    return mse, (mse, select_mse, err)


def _make_data(taus, y, step, span_tau, omega_hi, dtype, n_fit=None):
    """The `_Data` for standardised targets `y` `(T, p)` at internal times `taus`, fitted
    on the first `n_fit` (default: all; `span_tau` is the last fitted time). The spectrum
    is that of the fitted samples alone."""
    n_fit = taus.shape[0] if n_fit is None else n_fit
    idx, frac = _hermite_weights(taus, step.dt)
    fitted = (np.arange(taus.shape[0]) < n_fit).astype(np.float64)
    quad = np.zeros(taus.shape[0])
    quad[:n_fit] = _trapezoid_weights(taus[:n_fit])
    win = _blackman(taus, 0.0, span_tau) * quad
    lo = 2 * np.pi / span_tau
    hi = max(min(np.pi / np.median(np.diff(taus)), 2.0 * omega_hi), 2 * lo)
    n_f = int(min(max((hi - lo) / (np.pi / (2 * span_tau)), 16), 1024))
    om = np.linspace(lo, hi, n_f)
    E = np.exp(-1j * np.outer(om, taus)) * win[None, :]
    # Normalise so that the spectral term is O(1) like the standardised MSE.
    E = E / np.sqrt(np.sum(win) ** 2 / max(n_f, 1))
    re, im = E.real, E.imag
    tgt = np.sqrt((re @ y) ** 2 + (im @ y) ** 2 + 1e-12)
    width = max(2 * step.dt, 0.02 * span_tau)
    return _Data(
        taus=jnp.asarray(taus, dtype),
        idx=jnp.asarray(idx),
        frac=jnp.asarray(frac, dtype),
        y=jnp.asarray(y, dtype),
        fitted=jnp.asarray(fitted, dtype),
        width=jnp.asarray(width, dtype),
        spec_re=jnp.asarray(re, dtype),
        spec_im=jnp.asarray(im, dtype),
        spec_target=jnp.asarray(tgt, dtype),
    )
