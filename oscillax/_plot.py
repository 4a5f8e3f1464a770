"""Figures of a sweep: the stability atlas, drift over time, phase portraits (matplotlib)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ._monitor import STATUS_NAMES

STATUS_MARK = {
    "conserved": ("o", "#1b9e77"),
    "drifting": ("~", "#7570b3"),
    "diverged": ("X", "#d62728"),
    "escaped": ("E", "#e6ab02"),
    "collapsed": ("•", "#444444"),
}


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _mode(s: pd.Series) -> str:
    return s.value_counts().idxmax()


def atlas_figure(table: pd.DataFrame, solver: str, spectral_radius: float, path: Path,
                 y: str = "amplitude"):
    """One solver: rows = forms, columns = activations; x = dt (log), y = (dim, `y`).

    Colour: median late growth rate of log(invariant) per unit time (log scale, |rate|);
    letter: the most common status over seeds. The linear-theory stability boundary
    $|h\\omega| = $ limit is drawn where the solver has one.
    """
    from matplotlib.colors import LogNorm

    from ._theory import stability_limit

    plt = _plt()
    sub = table[table["solver"] == solver]
    forms = list(dict.fromkeys(sub["form"]))
    acts = list(dict.fromkeys(sub["activation"]))
    dts = np.sort(sub["dt"].unique())
    ys = sorted({(int(d), float(a)) for d, a in zip(sub["dim"], sub[y])})
    fig, axes = plt.subplots(len(forms), len(acts), figsize=(2.3 * len(acts) + 1.2,
                             0.28 * len(ys) * len(forms) + 1.6 * len(forms)),
                             squeeze=False, sharex=True, sharey=True)
    norm = LogNorm(vmin=1e-6, vmax=10.0)
    mesh = None
    limit = stability_limit(solver)
    for i, form in enumerate(forms):
        for j, act in enumerate(acts):
            ax = axes[i][j]
            cell = sub[(sub["form"] == form) & (sub["activation"] == act)]
            g = cell.groupby(["dim", y, "dt"])
            rate = g["growth_rate"].median().abs()
            status = g["status"].agg(_mode)
            Z = np.full((len(ys), len(dts)), np.nan)
            S = np.full((len(ys), len(dts)), "", object)
            for (d, a, dt), v in rate.items():
                r, c = ys.index((int(d), float(a))), int(np.searchsorted(dts, dt))
                Z[r, c] = np.clip(v, 1e-6, 10.0) if np.isfinite(v) else 10.0
                S[r, c] = status[(d, a, dt)]
            edges_x = np.concatenate([[dts[0] / 1.15], np.sqrt(dts[1:] * dts[:-1]),
                                      [dts[-1] * 1.15]]) if len(dts) > 1 else np.array(
                                      [dts[0] / 1.5, dts[0] * 1.5])
            mesh = ax.pcolormesh(edges_x, np.arange(len(ys) + 1), Z, norm=norm, cmap="magma_r",
                                 shading="flat")
            for r in range(len(ys)):
                for c in range(len(dts)):
                    if S[r, c]:
                        mk, col = STATUS_MARK[S[r, c]]
                        ax.text(dts[c], r + 0.5, mk, ha="center", va="center", fontsize=6,
                                color=col, fontweight="bold")
            if 0 < limit < np.inf:
                ax.axvline(limit / spectral_radius, color="#1f77b4", lw=1.2, ls="--")
            ax.set_xscale("log")
            if i == 0:
                ax.set_title(act, fontsize=9)
            if j == 0:
                ax.set_ylabel(f"{form}\n(n, {y})", fontsize=8)
                ax.set_yticks(np.arange(len(ys)) + 0.5)
                ax.set_yticklabels([f"{d}, {a:g}" for d, a in ys], fontsize=6)
            if i == len(forms) - 1:
                ax.set_xlabel("dt", fontsize=8)
            ax.tick_params(labelsize=6)
    note = {0.0: "linear theory: unstable for every dt",
            np.inf: "linear theory: stable for every dt"}.get(
        limit, f"dashed: linear-theory boundary |h ω| = {limit:.3g} (ω = {spectral_radius:g})")
    legend = "   ".join(f"{m} {s}" for s, (m, _) in STATUS_MARK.items())
    fig.suptitle(f"Stability atlas — {solver}   ({note})\n{legend}", fontsize=9)
    if mesh is not None:
        cb = fig.colorbar(mesh, ax=axes, shrink=0.8, pad=0.01)
        cb.set_label("|growth rate of log invariant| per unit time", fontsize=8)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return path


def summary_figure(table: pd.DataFrame, path: Path):
    """Stacked status fractions per (solver, form, activation): the atlas in one picture."""
    plt = _plt()
    g = table.groupby(["solver", "form", "activation"])["status"].value_counts(normalize=True)
    frac = g.unstack(fill_value=0.0).reindex(columns=list(STATUS_NAMES), fill_value=0.0)
    fig, ax = plt.subplots(figsize=(max(6, 0.32 * len(frac)), 3.6))
    bottom = np.zeros(len(frac))
    x = np.arange(len(frac))
    for s in STATUS_NAMES:
        ax.bar(x, frac[s].to_numpy(), bottom=bottom, color=STATUS_MARK[s][1], label=s, width=0.85)
        bottom += frac[s].to_numpy()
    ax.set_xticks(x)
    ax.set_xticklabels([f"{s} {f} {a}" for s, f, a in frac.index], rotation=75, fontsize=6,
                       ha="right")
    ax.set_ylabel("fraction of trajectories")
    ax.legend(fontsize=7, ncol=5, loc="upper center", bbox_to_anchor=(0.5, 1.15))
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return path


def drift_figure(activations, path: Path, *, dt: float = 0.05, t1: float = 100.0,
                 solver: str = "euler", form: str = "post"):
    """Relative invariant drift over time, 2D, x0 = (1, 0), for each activation."""
    import jax.numpy as jnp

    from ._field import PostActivation, PreActivation
    from ._skew import skew_from_frequencies
    from ._solve import simulate

    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    A = skew_from_frequencies([1.0])
    cls = PostActivation if form == "post" else PreActivation
    for act in activations:
        tr = simulate(cls(A, act), jnp.array([1.0, 0.0]), dt=dt, t1=t1, solver=solver,
                      save_every=max(1, int(0.5 / dt)))
        d = np.asarray(tr.invariant_drift())
        ax.plot(np.asarray(tr.ts)[1:], np.maximum(d[1:], 1e-12), label=act, lw=1.2)
    ax.set_yscale("log")
    ax.set_xlabel("t")
    ax.set_ylabel("|I(t) − I(0)| / |I(0)|")
    ax.set_title(f"Invariant drift, {solver}, dt = {dt:g}, {form} form, n = 2", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return path


def phase_portraits(activations, path: Path, *, dt: float = 0.1, t1: float = 60.0,
                    form: str = "post"):
    """2D phase portraits (euler and rk4) over the level sets of the invariant."""
    import jax.numpy as jnp

    from ._field import PostActivation, PreActivation
    from ._skew import skew_from_frequencies
    from ._solve import simulate

    plt = _plt()
    A = skew_from_frequencies([1.0])
    cls = PostActivation if form == "post" else PreActivation
    cols = len(activations)
    fig, axes = plt.subplots(1, cols, figsize=(2.4 * cols, 2.6), squeeze=False)
    lim = 4.0
    g = np.linspace(-lim, lim, 201)
    XX, YY = np.meshgrid(g, g)
    for ax, act in zip(axes[0], activations):
        field = cls(A, act)
        V = np.asarray(field.invariant(jnp.stack([XX, YY], -1).astype(A.dtype)))
        ax.contour(XX, YY, V, levels=12, colors="#bbbbbb", linewidths=0.6)
        for solver, colour in (("euler", "#d62728"), ("rk4", "#1f77b4")):
            tr = simulate(field, jnp.array([1.0, 0.0]), dt=dt, t1=t1, solver=solver)
            xs = np.asarray(tr.xs)
            ax.plot(xs[:, 0], xs[:, 1], color=colour, lw=0.8, label=solver)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_title(act, fontsize=8)
        ax.tick_params(labelsize=6)
    axes[0][0].legend(fontsize=6, loc="lower left")
    fig.suptitle(f"{form} form, dt = {dt:g}, t ≤ {t1:g}: trajectories over invariant level sets",
                 fontsize=9)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return path


def atlas_figures(table: pd.DataFrame, spec, outdir: Path) -> list[Path]:
    """All figures of a run: one atlas per solver, the status summary, drift, portraits."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths = []
    for solver in dict.fromkeys(table["solver"]):
        paths.append(atlas_figure(table, solver, spec.spectral_radius,
                                  outdir / f"atlas_{solver}.png"))
    paths.append(summary_figure(table, outdir / "status_summary.png"))
    acts = list(dict.fromkeys(table["activation"]))
    paths.append(drift_figure(acts, outdir / "drift_over_time.png"))
    paths.append(phase_portraits(acts, outdir / "phase_portraits.png"))
    return paths
