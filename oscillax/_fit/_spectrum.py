"""`spectral_peaks`: the angular frequencies of a (possibly irregularly sampled) signal."""

from __future__ import annotations

import numpy as np

from ._checks import _check_series


def _blackman(ts, t0, span):
    x = (ts - t0) / span
    return 0.42 - 0.5 * np.cos(2 * np.pi * x) + 0.08 * np.cos(4 * np.pi * x)


def _trapezoid_weights(ts):
    w = np.zeros_like(ts)
    d = np.diff(ts)
    w[:-1] += 0.5 * d
    w[1:] += 0.5 * d
    return w


def _dtft_power(ts, weighted, omegas):
    """$\\sum_c |\\sum_k w_k y_{kc} e^{-i\\omega t_k}|^2$ at each omega."""
    E = np.exp(-1j * np.outer(omegas, ts - ts[0]))
    F = E @ weighted
    return np.sum(np.abs(F) ** 2, axis=-1)


def spectral_peaks(ts, ys, *, max_peaks: int | None = None, rel_power: float = 1e-4):
    """Angular frequencies of the peaks of a (possibly irregularly sampled) signal.

    A Blackman-windowed, 8x zero-padded FFT on a uniform resampling finds the peaks; each
    is then refined on the original samples by maximising the windowed discrete-time
    Fourier transform (trapezoid quadrature), so its error is far below the FFT bin
    $2\\pi / T$. Channels are pooled (their powers are summed). Peaks below one period
    over the record, or with power under `rel_power` times the strongest, are dropped.

    **Arguments:**
    - `ts`: `(T,)` strictly increasing times (numbers, or dates: decimal years, so the
      frequencies are per year; `oscillax._fit._dates`).
    - `ys`: `(T,)` or `(T, channels)` values.
    - `max_peaks`: keep at most this many (the strongest).
    - `rel_power`: power threshold relative to the strongest peak (Blackman sidelobes are
      below 1e-5, so 1e-4 keeps only real peaks of a clean signal).

    **Returns:** `(omegas, powers)`, numpy arrays sorted by decreasing power.
    """
    t, y, _ = _check_series(ts, ys, min_samples=4)
    y = y - y.mean(axis=0, keepdims=True)
    span = t[-1] - t[0]
    T = t.shape[0]
    grid = np.linspace(t[0], t[-1], T)
    if np.allclose(t, grid, rtol=0, atol=1e-9 * span):
        yg = y
    else:
        yg = np.stack([np.interp(grid, t, y[:, c]) for c in range(y.shape[1])], axis=1)
    h = grid[1] - grid[0]
    nfft = 8 * (1 << max(T - 1, 1).bit_length())
    win = _blackman(grid, grid[0], span)
    P = np.sum(np.abs(np.fft.rfft(yg * win[:, None], n=nfft, axis=0)) ** 2, axis=-1)
    om = 2 * np.pi * np.fft.rfftfreq(nfft, h)
    bin_w = om[1]
    i = np.arange(1, P.shape[0] - 1)
    is_max = (P[i] >= P[i - 1]) & (P[i] > P[i + 1]) & (om[i] >= 2 * np.pi / span)
    cand = i[is_max]
    if cand.size == 0 or P[cand].max() <= 0:
        return np.zeros(0), np.zeros(0)
    cand = cand[P[cand] >= rel_power * P[cand].max()]
    cand = cand[np.argsort(-P[cand])][: 4 * (max_peaks or 16)]
    weighted = y * (_blackman(t, t[0], span) * _trapezoid_weights(t))[:, None]
    peaks, powers = [], []
    for c in cand:
        w0, half = om[c], bin_w
        for _ in range(4):
            ws = np.linspace(w0 - half, w0 + half, 21)
            pw = _dtft_power(t, weighted, ws)
            w0 = ws[int(np.argmax(pw))]
            half = half / 10 * 2
        pw = _dtft_power(t, weighted, np.array([w0]))[0]
        # Two local maxima of the padded FFT can belong to one lobe; keep the stronger.
        if any(abs(w0 - p) < 2 * np.pi / span for p in peaks):
            continue
        peaks.append(w0)
        powers.append(pw)
    peaks, powers = np.asarray(peaks), np.asarray(powers)
    order = np.argsort(-powers)
    peaks, powers = peaks[order], powers[order]
    if max_peaks is not None:
        peaks, powers = peaks[:max_peaks], powers[:max_peaks]
    return peaks, powers
