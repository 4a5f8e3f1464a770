"""Figures of a sweep: the stability atlas, drift over time, phase portraits (matplotlib)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ._classify import STATUS_NAMES

STATUS_MARK = {
    "conserved": ("o", "#1b9e77"),
    "drifting": ("~", "#7570b3"),
    "diverged": ("X", "#d62728"),
    "escaped": ("E", "#e6ab02"),
    "collapsed": ("•", "#444444"),
    "cycle": ("C", "#66a61e"),
}
_SPARE_COLOURS = ("#a6761d", "#e7298a", "#1f78b4", "#b2df8a", "#fb9a99")


def _status_colour(status: str) -> str:
    """The colour of a status (a status without an entry gets a spare one, by position)."""
    if status in STATUS_MARK:
        return STATUS_MARK[status][1]
    extra = [s for s in STATUS_NAMES if s not in STATUS_MARK]
    i = extra.index(status) if status in extra else 0
    return _SPARE_COLOURS[i % len(_SPARE_COLOURS)]


def _row_axes(table: pd.DataFrame, y: str) -> list[str]:
    """The columns of an atlas row: (dim, `y`), then gamma and bias where they vary."""
    extra = [c for c in ("gamma", "bias")
             if c != y and c in table.columns and table[c].nunique() > 1]
    return ["dim", y, *extra]


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _null_locator():
    from matplotlib.ticker import NullLocator

    return NullLocator()


def _group_mode(frame: pd.DataFrame, keys: list[str], value: str = "status") -> pd.Series:
    """The most common `value` (a status) of each group of `keys`, ties to the status named
    first in `STATUS_NAMES`; a Series indexed by the groups. Counted in one pass (a
    per-group `value_counts` cost about half of each atlas figure)."""
    names = list(STATUS_NAMES)
    extra = [v for v in pd.unique(frame[value]) if v not in names]
    names += sorted(extra)
    codes = pd.Categorical(frame[value], categories=names).codes
    groups = frame.groupby(keys, sort=False)
    gid = groups.ngroup().to_numpy()
    counts = np.zeros((groups.ngroups, len(names)), np.int64)
    np.add.at(counts, (gid, codes), 1)
    return pd.Series(np.asarray(names, object)[counts.argmax(axis=1)],
                     index=groups.size().index)


def _group_median_abs(frame: pd.DataFrame, keys: list[str], value: str) -> pd.Series:
    """The median of |`value`| of each group of `keys`, NaN where a member is NaN."""
    v = np.abs(frame[value].to_numpy(np.float64))
    key_cols = [frame[k] for k in keys]
    med = pd.Series(v, index=frame.index).groupby(key_cols, sort=False).median()
    nan = pd.Series(np.isnan(v), index=frame.index).groupby(key_cols, sort=False).any()
    return med.mask(nan.reindex(med.index).to_numpy())


def _row_keys(sub: pd.DataFrame, cols: list[str]) -> list[tuple]:
    return sorted({(int(r[0]), *map(float, r[1:])) for r in zip(*(sub[c] for c in cols))})


def _cells(sub: pd.DataFrame, y: str, value: str, agg):
    """Per (form, activation): a (rows, len(dts)) array of `agg(frame, keys, value)` of
    `value` over seeds (`_group_mode`, `_group_median_abs`), rows = (dim, `y`, and gamma /
    bias where they vary; `_row_axes`)."""
    cols = _row_axes(sub, y)
    dts = np.sort(sub["dt"].unique())
    ys = _row_keys(sub, cols)
    index = {k: i for i, k in enumerate(ys)}
    g = agg(sub, ["form", "activation", *cols, "dt"], value)
    out = {}
    for key, v in g.items():
        form, act, row, dt = key[0], key[1], key[2:-1], key[-1]
        Z = out.setdefault((form, act), np.full((len(ys), len(dts)), np.nan, object))
        Z[index[(int(row[0]), *map(float, row[1:]))], int(np.searchsorted(dts, dt))] = v
    return out, dts, ys


def _dt_edges(dts):
    """Cell edges on a log dt axis around the sorted step sizes `dts`."""
    if len(dts) > 1:
        return np.concatenate([[dts[0] / 1.15], np.sqrt(dts[1:] * dts[:-1]), [dts[-1] * 1.15]])
    return np.array([dts[0] / 1.5, dts[0] * 1.5])


def _atlas_axes(sub, y, title, draw, limit, spectral_radius, path, colorbar=None,
                legend=None):
    """The atlas layout: rows = forms, columns = activations; x = dt (log), y = (dim, `y`);
    `draw(ax, form, act, edges_x, edges_y)` fills one cell."""
    plt = _plt()
    forms = list(dict.fromkeys(sub["form"]))
    acts = list(dict.fromkeys(sub["activation"]))
    dts = np.sort(sub["dt"].unique())
    cols = _row_axes(sub, y)
    ys = _row_keys(sub, cols)
    height = 0.28 * len(ys) * len(forms) + 1.6 * len(forms)
    ticks = [", ".join([str(k[0]), *(f"{v:g}" for v in k[1:])]) for k in ys]
    # room for the row labels (6 pt tick labels, ~0.05 in a character) and the axis label
    left_in = 0.05 * max(len(t) for t in ticks) + 0.45
    width = 2.3 * len(acts) + 0.75 + left_in
    # not shared axes: every panel has the same cells (so the same limits), and only the
    # outer ones get ticks (matplotlib's tick objects were over half of a figure's time)
    fig, axes = plt.subplots(len(forms), len(acts), figsize=(width, height), squeeze=False)
    # fixed margins: a tight bounding box would draw the figure twice
    fig.subplots_adjust(left=left_in / width, right=0.9 if colorbar else 0.98,
                        top=1 - 0.9 / height, bottom=0.9 / height, wspace=0.12, hspace=0.25)
    edges_x = _dt_edges(dts)
    names = {"dim": "n", "gamma": "γ", "bias": "|b|"}
    mesh = None
    for i, form in enumerate(forms):
        for j, act in enumerate(acts):
            ax = axes[i][j]
            mesh = draw(ax, form, act, edges_x, np.arange(len(ys) + 1)) or mesh
            if 0 < limit < np.inf:
                ax.axvline(limit / spectral_radius, color="#1f77b4", lw=1.2, ls="--")
            ax.set_xscale("log")
            # no minor ticks: on 14 log panels they cost more to lay out than the cells
            ax.xaxis.set_minor_locator(_null_locator())
            if i < len(forms) - 1:
                ax.xaxis.set_major_locator(_null_locator())
            if j > 0:
                ax.yaxis.set_major_locator(_null_locator())
            if i == 0:
                ax.set_title(act, fontsize=9)
            if j == 0:
                ax.set_ylabel(f"{form}\n({', '.join(names.get(c, c) for c in cols)})",
                              fontsize=8)
                ax.set_yticks(np.arange(len(ys)) + 0.5)
                ax.set_yticklabels(ticks, fontsize=6)
            if i == len(forms) - 1:
                ax.set_xlabel("dt", fontsize=8)
            ax.tick_params(labelsize=6)
    note = {0.0: "linear theory: unstable for every dt",
            np.inf: "linear theory: stable for every dt"}.get(
        limit, f"dashed: linear-theory boundary |h ω| = {limit:.3g} (ω = {spectral_radius:g})")
    # one line where it fits (about 0.075 in a character at 9 pt), else two
    sep = "   " if 0.075 * (len(title) + len(note) + 5) < width else "\n"
    fig.suptitle(f"{title}{sep}({note})", fontsize=9)
    if colorbar is not None and mesh is not None:
        cb = fig.colorbar(mesh, cax=fig.add_axes([0.915, 0.15, 0.012, 0.7]))
        cb.set_label(colorbar, fontsize=8)
    if legend is not None:
        fig.legend(handles=legend, loc="lower center", ncol=len(legend), fontsize=7,
                   frameon=False)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _status_cmap():
    """The categorical colour map of the statuses: (cmap, norm, {status: code})."""
    from matplotlib.colors import BoundaryNorm, ListedColormap

    cmap = ListedColormap([_status_colour(s) for s in STATUS_NAMES])
    norm = BoundaryNorm(np.arange(len(STATUS_NAMES) + 1) - 0.5, cmap.N)
    return cmap, norm, {s: i for i, s in enumerate(STATUS_NAMES)}


def atlas_figure(table: pd.DataFrame, solver: str, spectral_radius: float, path: Path,
                 y: str = "amplitude"):
    """One solver's status map: rows = forms, columns = activations; x = dt (log),
    y = (dim, `y`); colour = the most common status over seeds (legend below). The
    linear-theory stability boundary $|h\\omega| = $ limit is dashed where the solver has
    one. Rows also split by gamma and bias where the table has several of them."""
    from matplotlib.patches import Patch

    from ._theory import stability_limit

    sub = table[table["solver"] == solver]
    cells, _, _ = _cells(sub, y, "status", _group_mode)
    cmap, norm, code = _status_cmap()

    def draw(ax, form, act, ex, ey):
        S = cells.get((form, act))
        if S is None:
            return None
        Z = np.vectorize(lambda v: code.get(v, np.nan), otypes=[float])(S)
        return ax.pcolormesh(ex, ey, np.ma.masked_invalid(Z), cmap=cmap, norm=norm,
                             shading="flat")

    legend = [Patch(color=_status_colour(s), label=s) for s in STATUS_NAMES]
    return _atlas_axes(sub, y, f"Stability atlas — {solver}: status (most common over seeds)",
                       draw, stability_limit(solver), spectral_radius, path, legend=legend)


def growth_figure(table: pd.DataFrame, solver: str, spectral_radius: float, path: Path,
                  y: str = "amplitude"):
    """One solver's growth map (layout of `atlas_figure`): colour = median |late growth rate|
    of the log invariant per unit time, log scale."""
    from matplotlib.colors import LogNorm

    from ._theory import stability_limit

    sub = table[table["solver"] == solver]
    cells, _, _ = _cells(sub, y, "growth_rate", _group_median_abs)
    norm = LogNorm(vmin=1e-6, vmax=10.0)

    def draw(ax, form, act, ex, ey):
        Z = cells.get((form, act))
        if Z is None:
            return None
        Z = Z.astype(float)
        Z = np.where(np.isfinite(Z), np.clip(Z, 1e-6, 10.0), 10.0)
        return ax.pcolormesh(ex, ey, Z, norm=norm, cmap="magma_r", shading="flat")

    return _atlas_axes(sub, y, f"Growth — {solver}", draw, stability_limit(solver),
                       spectral_radius, path,
                       colorbar="|growth rate of log invariant| per unit time")


def _gamma_scale(gammas: np.ndarray):
    """(scale name, kwargs, forward, inverse) for a gamma axis: log (symlog when 0 is one
    of the values) when the positive values span more than a decade and a half, else
    linear. `forward` maps gamma to the axis' own (uniform) coordinate."""
    pos = gammas[gammas > 0]
    if pos.size >= 2 and pos.max() / pos.min() > 30:
        if pos.size == gammas.size:
            return "log", {}, np.log10, lambda t: 10.0 ** t
        lt = float(pos.min())  # [0, lt] takes half a decade (linscale 0.45 / (1 - 1/10))
        fwd = lambda g: np.where(g > lt, np.log10(np.maximum(g, lt) / lt) + 0.5, 0.5 * g / lt)
        inv = lambda t: np.where(t > 0.5, lt * 10.0 ** (t - 0.5), 2.0 * t * lt)
        return "symlog", {"linthresh": lt, "linscale": 0.45}, fwd, inv
    ident = lambda g: np.asarray(g, np.float64)
    return "linear", {}, ident, ident


def _edges(values: np.ndarray, forward, inverse) -> np.ndarray:
    """Cell edges around sorted `values`: midpoints in the axis' own coordinate, the outer
    edges half a neighbour's gap out."""
    t = forward(np.asarray(values, np.float64))
    if len(t) == 1:
        tt = np.array([t[0] - 0.5, t[0] + 0.5])
    else:
        mid = 0.5 * (t[1:] + t[:-1])
        tt = np.concatenate([[t[0] - (mid[0] - t[0])], mid, [t[-1] + (t[-1] - mid[-1])]])
    return inverse(tt)


def gamma_figure(table: pd.DataFrame, solver: str, spectral_radius: float, path: Path):
    """One solver's status over (dt, gamma), with the linear theory's boundary drawn over it.

    Rows: (form, and dim / amplitude / bias where the table has several); columns:
    activations; x = dt (log), y = the diffusion gamma; colour = the most common status over
    seeds (legend below). Solid line: $\\gamma^*(h, \\omega)$, the smallest gamma at which
    the solver stops amplifying the linear pair $-\\gamma \\pm i\\omega$ ($\\omega$ = the
    spectral radius; `ox.gamma_star`); dotted: the band's upper edge (`ox.gamma_band`).
    The line stops where no gamma makes the solver stable."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from ._theory import gamma_band

    plt = _plt()
    sub = table[table["solver"] == solver]
    acts = list(dict.fromkeys(sub["activation"]))
    split = [c for c in ("dim", "amplitude", "bias") if c in sub and sub[c].nunique() > 1]
    rows = sorted({(f, *k) for f, *k in zip(sub["form"], *(sub[c] for c in split))},
                  key=lambda r: (r[0] != "pre", *r[1:]))
    dts = np.sort(sub["dt"].unique())
    gammas = np.sort(sub["gamma"].unique())
    scale, scale_kw, forward, inverse = _gamma_scale(gammas)
    ex, ey = _dt_edges(dts), _edges(gammas, forward, inverse)
    cmap, norm, code = _status_cmap()
    w, hgt = 2.5, 2.1
    fig, axes = plt.subplots(len(rows), len(acts), squeeze=False, sharex=True, sharey=True,
                             figsize=(w * len(acts) + 1.0, hgt * len(rows) + 1.5))
    H = hgt * len(rows) + 1.5
    fig.subplots_adjust(left=0.8 / (w * len(acts) + 1.0) + 0.04, right=0.98,
                        top=1 - 0.6 / H, bottom=1.05 / H, wspace=0.1, hspace=0.3)
    hh = np.geomspace(ex[0], ex[-1], 400)
    names = {"dim": "n", "amplitude": "|x0|", "bias": "|b|"}
    for i, row in enumerate(rows):
        form, key = row[0], dict(zip(split, row[1:]))
        in_row = sub["form"] == form
        for c, v in key.items():
            in_row &= sub[c] == v
        dims = sub.loc[in_row, "dim"]
        omega = spectral_radius if (dims > 1).all() else 0.0
        lo, hi = gamma_band(hh, omega, solver)
        for j, act in enumerate(acts):
            ax = axes[i][j]
            cell = sub[in_row & (sub["activation"] == act)]
            Z = np.full((len(gammas), len(dts)), np.nan)
            for (g, dt), st in _group_mode(cell, ["gamma", "dt"]).items():
                Z[int(np.searchsorted(gammas, g)), int(np.searchsorted(dts, dt))] = code.get(
                    st, np.nan)
            ax.pcolormesh(ex, ey, np.ma.masked_invalid(Z), cmap=cmap, norm=norm,
                          shading="flat")
            ax.plot(hh, lo, color="white", lw=3.2)
            ax.plot(hh, lo, color="black", lw=1.6)
            ax.plot(hh, hi, color="black", lw=1.2, ls=":")
            ax.set_xscale("log")
            ax.set_yscale(scale, **scale_kw)
            ax.set_xlim(ex[0], ex[-1])
            ax.set_ylim(ey[0], ey[-1])
            ax.tick_params(labelsize=7)
            if i == 0:
                ax.set_title(act, fontsize=9)
            if j == 0:
                label = ", ".join([form, *(f"{names[c]} = {v:g}" for c, v in key.items())])
                ax.set_ylabel(f"{label}\nγ", fontsize=8)
            if i == len(rows) - 1:
                ax.set_xlabel("dt", fontsize=8)
    present = [st for st in STATUS_NAMES if st in set(sub["status"])]
    legend = [Patch(color=_status_colour(st), label=st) for st in present] + [
        Line2D([], [], color="black", lw=1.6, label="γ*(h, ω): linear theory's boundary"),
        Line2D([], [], color="black", lw=1.2, ls=":", label="upper edge of the stable band")]
    fig.legend(handles=legend, loc="lower center", ncol=min(len(legend), 4), fontsize=7,
               frameon=False)
    fig.suptitle(f"Diffusion — {solver}: status over (dt, γ), most common over seeds "
                 f"(ω = {spectral_radius:g})", fontsize=9)
    fig.savefig(path, dpi=130)
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
        ax.bar(x, frac[s].to_numpy(), bottom=bottom, color=_status_colour(s), label=s,
               width=0.85)
        bottom += frac[s].to_numpy()
    ax.set_xticks(x)
    ax.set_xticklabels([f"{s} {f} {a}" for s, f, a in frac.index], rotation=75, fontsize=6,
                       ha="right")
    ax.set_ylabel("fraction of trajectories")
    ax.legend(fontsize=7, ncol=5, loc="upper center", bbox_to_anchor=(0.5, 1.15))
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return path


def drift_figure(paths: dict, path: Path, *, dt: float, solver: str, form: str):
    """Relative invariant drift over time, 2D, x0 = (1, 0), for each activation.

    `paths`: `{"ts": (T,), "invariant": {activation: (T,)}}` (`_sweep._examples`)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    ts = np.asarray(paths["ts"])
    for act, inv in paths["invariant"].items():
        inv = np.asarray(inv, np.float64)
        d = np.abs(inv - inv[0]) / max(abs(inv[0]), 1e-30)
        ax.plot(ts[1:], np.maximum(d[1:], 1e-12), label=act, lw=1.2)
    ax.set_yscale("log")
    ax.set_xlabel("t")
    ax.set_ylabel("|I(t) − I(0)| / |I(0)|")
    ax.set_title(f"Invariant drift, {solver}, dt = {dt:g}, {form} form, n = 2", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return path


def phase_portraits(paths: dict, path: Path, *, dt: float, t1: float, form: str,
                    levels: dict | None = None):
    """2D phase portraits over the level sets of the invariant.

    `paths`: `{solver: {"xs": {activation: (T, 2)}}}`, one colour per solver; `levels`:
    `portrait_levels(activations, form)` (computed here when None)."""
    plt = _plt()
    activations = list(next(iter(paths.values()))["xs"])
    if levels is None or any(a not in levels["V"] for a in activations):
        levels = portrait_levels(activations, form)
    cols = len(activations)
    fig, axes = plt.subplots(1, cols, figsize=(2.4 * cols, 2.6), squeeze=False)
    lim = PORTRAIT_LIMIT
    XX, YY = np.meshgrid(levels["grid"], levels["grid"])
    colours = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd")
    for ax, act in zip(axes[0], activations):
        ax.contour(XX, YY, levels["V"][act], levels=12, colors="#bbbbbb", linewidths=0.6)
        for (solver, p), colour in zip(paths.items(), colours):
            xs = np.asarray(p["xs"][act])
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


TABLE_FIGURES = {
    "atlas": lambda table, solver, radius, path: atlas_figure(table, solver, radius, path),
    "growth": lambda table, solver, radius, path: growth_figure(table, solver, radius, path),
    "gamma": lambda table, solver, radius, path: gamma_figure(table, solver, radius, path),
    "summary": lambda table, solver, radius, path: summary_figure(table, path),
}
"""The figures drawn from a result table alone: kind -> draw(table, solver, spectral
radius, path) (`table_figure_jobs`; a separate process can draw them from the parquet)."""
_COST = {"atlas": 1.0, "growth": 1.4, "gamma": 1.0, "summary": 1.0}


def table_figure_jobs(table: pd.DataFrame, outdir: Path) -> list[tuple[str, str | None, Path]]:
    """The table figures of a run, in order: `(kind, solver or None, path)`; one atlas and
    growth map per solver (and, with several gammas, a status map over (dt, gamma) with
    gamma* drawn over it), then the status summary."""
    outdir = Path(outdir)
    several_gammas = "gamma" in table.columns and table["gamma"].nunique() > 1
    jobs = []
    for solver in dict.fromkeys(table["solver"]):
        jobs.append(("atlas", solver, outdir / f"atlas_{solver}.png"))
        jobs.append(("growth", solver, outdir / f"growth_{solver}.png"))
        if several_gammas:
            jobs.append(("gamma", solver, outdir / f"gamma_{solver}.png"))
    jobs.append(("summary", None, outdir / "status_summary.png"))
    return jobs


def draw_table_figure(table: pd.DataFrame, job, spectral_radius: float) -> Path:
    kind, solver, path = job
    return TABLE_FIGURES[kind](table, solver, spectral_radius, Path(path))


def split_jobs(jobs: list, others: float = 1.2) -> tuple[list, list]:
    """Share `jobs` between this process (which also draws the example-path figures,
    about `others` atlas figures' worth) and a helper process: longest first, each to the
    less loaded. Returns `(here, there)`, each in the jobs' order."""
    load = [others, 0.0]
    side = {}
    for i in sorted(range(len(jobs)), key=lambda i: -_COST[jobs[i][0]]):
        k = int(load[1] < load[0])
        side[i] = k
        load[k] += _COST[jobs[i][0]]
    return ([j for i, j in enumerate(jobs) if side[i] == 0],
            [j for i, j in enumerate(jobs) if side[i] == 1])


def atlas_figures(table: pd.DataFrame, spec, outdir: Path, drift: dict,
                  portraits: dict, levels: dict | None = None, helper=None) -> list[Path]:
    """All figures of a run: the table figures (`table_figure_jobs`) and the example
    paths it is given (`drift`: euler, dt 0.05; `portraits`: per solver, dt 0.1, over the
    invariant's level sets `levels`; see `_sweep._examples.run_figures`).

    `helper`: a started figure process (`_sweep._figure_worker.FigureWorker`) that draws
    part of the table figures meanwhile; whatever it fails to draw is drawn here."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    jobs = table_figure_jobs(table, outdir)
    here, there = split_jobs(jobs) if helper is not None else (jobs, [])
    if there and not helper.submit(there, spec.spectral_radius):
        here, there = jobs, []
    for job in here:
        draw_table_figure(table, job, spec.spectral_radius)
    drift_path = drift_figure(drift, outdir / "drift_over_time.png", dt=0.05, solver="euler",
                              form="post")
    portraits_path = phase_portraits(portraits, outdir / "phase_portraits.png", dt=0.1,
                                     t1=60.0, form="post", levels=levels)
    if there:
        drawn = helper.wait()
        for job in there:
            if Path(job[2]) not in drawn:  # the helper failed: nothing is lost
                draw_table_figure(table, job, spec.spectral_radius)
    return [Path(j[2]) for j in jobs] + [drift_path, portraits_path]


PORTRAIT_LIMIT = 4.0
"""Half-width of the phase portraits' square."""


def portrait_levels(activations, form: str) -> dict:
    """The invariant of the 2-D, ω = 1 field on the portraits' grid, per activation:
    `{"grid": (201,), "V": {activation: (201, 201)}}` (`phase_portraits`)."""
    import jax.numpy as jnp

    from ._field import FORMS
    from ._skew import skew_from_frequencies

    A = skew_from_frequencies([1.0])
    g = np.linspace(-PORTRAIT_LIMIT, PORTRAIT_LIMIT, 201)
    XX, YY = np.meshgrid(g, g)
    pts = jnp.stack([XX, YY], -1).astype(A.dtype)
    return {"grid": g, "V": {a: np.asarray(FORMS[form](A, a).invariant(pts))
                             for a in activations}}


def simulation_phase_figure(xs, path: Path, *, invariant=None, title: str = ""):
    """Phase portrait of one simulated path in its first two coordinates.

    **Arguments:** `xs` `(T, n)` saved states (n >= 2); `invariant`: for n = 2, a function
    of states `(..., 2)` whose level sets are drawn underneath (None: no level sets; for
    n > 2 the path is a projection and no level sets are drawn).
    """
    plt = _plt()
    xs = np.asarray(xs, np.float64)
    ok = np.all(np.isfinite(xs), axis=1)
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    good = xs[ok]
    lim = 1.15 * float(np.max(np.abs(good[:, :2]))) if len(good) else 1.0
    lim = lim if np.isfinite(lim) and lim > 0 else 1.0
    if invariant is not None and xs.shape[1] == 2:
        g = np.linspace(-lim, lim, 201)
        XX, YY = np.meshgrid(g, g)
        V = np.asarray(invariant(np.stack([XX, YY], -1)), np.float64)
        if np.all(np.isfinite(V)):
            ax.contour(XX, YY, V, levels=14, colors="#bbbbbb", linewidths=0.6)
            if len(good):
                v0 = float(np.asarray(invariant(good[:1]))[0])
                ax.contour(XX, YY, V, levels=[v0], colors="#1b9e77", linewidths=1.0,
                           linestyles="--")
    ax.plot(good[:, 0], good[:, 1], color="#d62728", lw=0.8, label="path")
    if len(good):
        ax.plot(good[0, 0], good[0, 1], "o", color="k", ms=4, label="x(0)")
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xlabel("x[0]")
    ax.set_ylabel("x[1]")
    if xs.shape[1] == 2 and invariant is not None:
        note = "grey: level sets of the invariant; dashed: the level of x(0)"
    else:
        note = f"projection of n = {xs.shape[1]} onto (x[0], x[1])"
    ax.set_title(f"{title}\n{note}" if title else note, fontsize=8)
    ax.legend(fontsize=7, loc="lower left")
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return path


def simulation_drift_figure(ts, drift, path: Path, *, theory=None, title: str = "",
                            label: str = "simulated"):
    """Relative invariant drift $|I(t) - I(0)| / |I(0)|$ of one path over time (log scale),
    with an optional theory curve `theory` `(T,)` at the same times."""
    plt = _plt()
    ts = np.asarray(ts, np.float64)
    drift = np.asarray(drift, np.float64)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    floor = 1e-16
    ax.plot(ts[1:], np.clip(drift[1:], floor, None), lw=1.2, label=label, color="#d62728")
    if theory is not None:
        ax.plot(ts[1:], np.clip(np.asarray(theory, np.float64)[1:], floor, None), lw=1.0,
                ls="--", color="#1f77b4", label="linear theory")
    ax.set_yscale("log")
    ax.set_xlabel("t")
    ax.set_ylabel("|I(t) − I(0)| / |I(0)|")
    ax.set_title(title or "invariant drift (the exact flow keeps it at 0)", fontsize=9)
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return path
