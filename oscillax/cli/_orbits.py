"""`oscillax orbits`: the periodic orbits of one network at several amplitudes, with their
periods, Floquet multipliers and a Poincaré section."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from ._errors import fail
from ._options import ActivationName, Overwrite, example, prepare_out
from ._simulate import _flagged, _floats

EPILOG = example("oscillax orbits --form post --activation tanh --frequencies 1 "
                 "--amplitudes 0.2,0.5,1,2 --out orbits")

ORBITS_FILE = "orbits.parquet"
PERIOD_FILE = "period_amplitude.png"
MULTIPLIERS_FILE = "multipliers.png"
POINCARE_FILE = "poincare.png"
OUTPUTS = (ORBITS_FILE, PERIOD_FILE, MULTIPLIERS_FILE, POINCARE_FILE)

DEFAULT_N = 2
DEFAULT_AMPLITUDES = "0.2,0.5,1,2"
GUESS_DT = 0.02  # RK4 step of the short simulation that gives the period guesses


def orbits(
    form: Annotated[str, typer.Option(
        "--form", help="post: dx/dt = A σ(x); pre: dx/dt = σ(A x).")] = "post",
    activation: ActivationName = "tanh",
    n: Annotated[int | None, typer.Option(
        "--n", show_default=False,
        help=f"State size (>= 2): A is a random skew matrix of spectral radius 1 drawn with "
        f"--seed (default {DEFAULT_N}).")] = None,
    frequencies: Annotated[str | None, typer.Option(
        "--frequencies", show_default=False,
        help="Comma-separated angular frequencies ω_k > 0: A = ox.skew_from_frequencies "
        "(n = 2 per frequency), instead of --n.")] = None,
    seed: Annotated[int, typer.Option(
        "--seed", help="Seed of the random A (--n).")] = 0,
    amplitudes: Annotated[str, typer.Option(
        "--amplitudes", help="Comma-separated starting amplitudes > 0 along the fastest "
        "mode of A: one orbit each.")] = DEFAULT_AMPLITUDES,
    returns: Annotated[int, typer.Option(
        "--returns", help="Poincaré-section returns drawn for the largest orbit.")] = 32,
    out: Annotated[Path | None, typer.Option(
        "--out", show_default=False,
        help="Output directory (default: runs/orbits-DATE-TIME).")] = None,
    overwrite: Overwrite = False,
) -> None:
    """Periodic orbits of one network: period against invariant level, multipliers, section.

    Starts at each amplitude along A's fastest mode, takes a period guess from a short
    simulation, and solves all orbits in one batched `ox.periodic_orbit` call (dopri8,
    float64). Writes orbits.parquet (amplitude, V0, period, max |nontrivial multiplier|,
    residual, status), period_amplitude.png, multipliers.png and poincare.png into --out,
    and prints a summary table."""
    import jax

    jax.config.update("jax_enable_x64", True)  # the orbit tolerances need float64
    import time

    import oscillax as ox

    form, activation = form.strip(), activation.strip()
    if form not in ("pre", "post"):
        fail(f"--form must be 'post' (dx/dt = A σ(x)) or 'pre' (dx/dt = σ(A x)); got "
             f"{form!r}.")
    if activation not in ox.ACTIVATIONS:
        fail(f"--activation must be one of {', '.join(ox.ACTIVATIONS)}; got {activation!r}.")
    omegas = None if frequencies is None else _floats("--frequencies", frequencies, "1,2.5")
    if omegas is not None and not all(w > 0 for w in omegas):
        fail(f"--frequencies must be positive angular frequencies, e.g. 1,2.5; got "
             f"{frequencies!r}.")
    if n is not None and n < 2:
        fail(f"--n must be an integer >= 2 (an oscillating mode needs two units); got {n}.")
    if n is not None and omegas is not None and n != 2 * len(omegas):
        fail(f"--n {n} does not match --frequencies ({len(omegas)} frequencies make n = "
             f"{2 * len(omegas)}); pass one of them.")
    if not 0 <= seed < 2**32:
        fail(f"--seed must be an integer from 0 to 2**32 - 1; got {seed}.")
    amps = _floats("--amplitudes", amplitudes, DEFAULT_AMPLITUDES)
    if not all(a > 0 for a in amps):
        fail(f"--amplitudes must be positive numbers, e.g. --amplitudes {DEFAULT_AMPLITUDES}; "
             f"got {amplitudes!r}.")
    if returns < 1:
        fail(f"--returns must be an integer >= 1; got {returns}.")
    dim = 2 * len(omegas) if omegas is not None else (n if n is not None else DEFAULT_N)
    run = out if out is not None else Path("runs") / time.strftime("orbits-%Y%m%d-%H%M%S")
    prepare_out(run, overwrite, OUTPUTS)

    t_start = time.perf_counter()
    try:
        field, A, A_from = _build(ox, form, activation, dim, omegas, seed)
        if not field.has_invariant():
            fail(f"--activation {activation} with --form {form} keeps no motion invariant; "
                 "choose another activation.")
        from rich.console import Console

        with Console(stderr=True).status(f"solving {len(amps)} orbits", spinner="dots"):
            r = _solve(ox, field, A, amps, returns)
    except ValueError as e:
        fail(_flagged(str(e)))
    wall = time.perf_counter() - t_start
    params = dict(form=form, activation=activation, n=dim, A=A_from)
    _write(run, r, params)
    _print_summary(run, params, r, wall)


def _build(ox, form, activation, dim, omegas, seed):
    import jax
    import jax.numpy as jnp

    if omegas is not None:
        A = ox.skew_from_frequencies(jnp.asarray(omegas, jnp.float64))
        A_from = {"frequencies": omegas}
    else:
        A = ox.random_skew(jax.random.PRNGKey(seed), dim, spectral_radius=1.0,
                           dtype=jnp.float64)
        A_from = {"random_skew": {"n": dim, "spectral_radius": 1.0, "seed": seed}}
    field = ox.PreActivation(A, activation) if form == "pre" else ox.PostActivation(
        A, activation)
    return field, A, A_from


def _guesses(ox, field, A, amps):
    """Points along the fastest mode of A and period guesses from the upward crossings of
    that mode's coordinate along a short RK4 simulation (the linear period if too few)."""
    import jax.numpy as jnp
    import numpy as np

    w, V = np.linalg.eig(np.asarray(A, np.float64))
    k = int(np.argmax(w.imag))
    omega = float(w[k].imag)
    if not omega > 1e-9:
        fail("A has no oscillating mode (all its eigenvalues are 0); change --n, --seed or "
             "--frequencies.")
    a = V[:, k].real
    a = a / np.linalg.norm(a)
    X0 = np.asarray(amps)[:, None] * a[None, :]
    T_lin = 2 * math.pi / omega
    t1 = 3 * T_lin * max(1.0, max(amps))
    traj = ox.simulate(field, jnp.asarray(X0), dt=GUESS_DT, t1=t1, solver="rk4")
    xs = np.asarray(traj.xs, np.float64)  # (B, steps, n)
    ts = np.asarray(traj.ts, np.float64)
    periods = []
    for b in range(len(amps)):
        c = xs[b] @ X0[b]
        i = np.nonzero((c[:-1] <= 0) & (c[1:] > 0))[0]
        tc = ts[i] - c[i] * (ts[i + 1] - ts[i]) / (c[i + 1] - c[i])
        periods.append(float(np.mean(np.diff(tc))) if len(tc) >= 2 else T_lin)
    return X0, np.asarray(periods), omega


def _solve(ox, field, A, amps, returns) -> dict:
    import jax.numpy as jnp
    import numpy as np

    X0, T0, omega = _guesses(ox, field, A, amps)
    orb = ox.periodic_orbit(field, jnp.asarray(X0), jnp.asarray(T0))
    conv = np.asarray(orb.converged)
    x_star = np.asarray(orb.x0, np.float64)
    V0 = np.asarray(field.invariant(orb.x0), np.float64)
    mults = np.asarray(orb.multipliers)
    nontriv = np.abs(mults[:, 1:])
    mu_max = nontriv.max(axis=1) if nontriv.shape[1] else np.ones(len(amps))
    status = [ox.OrbitStatus(int(s)).name.lower() for s in np.asarray(orb.status)]
    section = None
    if conv.any():  # the largest converged orbit, through its own phase hyperplane
        b = int(np.nonzero(conv)[0][np.argmax(np.asarray(amps)[conv])])
        f = np.asarray(field(0.0, jnp.asarray(x_star[b]), None), np.float64)
        normal = f / np.linalg.norm(f)
        # start at the guess, which lies on an orbit of its own (off the periodic one
        # for n > 2), and keep the orbit point to mark it
        sec = ox.poincare_map(field, jnp.asarray(X0[b]), normal=jnp.asarray(normal),
                              offset=float(normal @ x_star[b]), returns=returns,
                              t_max=max(1000.0, 2.0 * returns * float(orb.period[b])))
        found = int(sec.found)
        section = dict(member=b, points=np.asarray(sec.points, np.float64)[:found],
                       x_star=x_star[b], guess=X0[b], found=found,
                       status=ox.SectionStatus(int(sec.status)).name.lower())
    return dict(amplitude=np.asarray(amps, np.float64), V0=V0,
                period=np.asarray(orb.period, np.float64), guess=T0, mu_max=mu_max,
                residual=np.asarray(orb.residual, np.float64), status=status, converged=conv,
                multipliers=mults, omega=omega, section=section,
                iterations=np.asarray(orb.iterations))


def _write(run: Path, r: dict, params: dict) -> None:
    import numpy as np
    import pandas as pd

    from .._plot import _plt

    pd.DataFrame({"amplitude": r["amplitude"], "V0": r["V0"], "period": r["period"],
                  "max_abs_multiplier": r["mu_max"], "residual": r["residual"],
                  "status": r["status"]}).to_parquet(run / ORBITS_FILE, index=False)
    plt = _plt()
    title = f"{params['form']} form, {params['activation']}, n = {params['n']}"
    conv = r["converged"]
    T_lin = 2 * math.pi / r["omega"]

    fig, ax = plt.subplots(figsize=(5, 3.6))
    order = np.argsort(r["V0"])
    ax.plot(r["V0"][order][conv[order]], r["period"][order][conv[order]], "o-",
            label="periodic orbit")
    ax.axhline(T_lin, ls="--", color="k", lw=1, label=f"2π/ω = {T_lin:.4g}")
    ax.set(xlabel="invariant level V0", ylabel="period T", title=title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(run / PERIOD_FILE, dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    th = np.linspace(0, 2 * math.pi, 400)
    ax.plot(np.cos(th), np.sin(th), color="0.6", lw=1, label="unit circle")
    for b in np.nonzero(conv)[0]:
        m = r["multipliers"][b]
        ax.scatter(m.real, m.imag, s=18, label=f"amplitude {r['amplitude'][b]:g}")
    ax.set(xlabel="Re μ", ylabel="Im μ", aspect="equal")
    ax.set_title(f"Floquet multipliers: {title}", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(run / MULTIPLIERS_FILE, dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    s = r["section"]
    if s is not None:
        if len(s["points"]):
            ax.scatter(s["points"][:, 0], s["points"][:, 1], s=10,
                       label=f"{s['found']} returns from the guess")
        ax.scatter([s["x_star"][0]], [s["x_star"][1]], marker="x", color="r", s=60,
                   label="orbit point x*")
        ax.legend(fontsize=7)
        amp = r["amplitude"][s["member"]]
        ax.set_title(f"Poincaré section, amplitude {amp:g}: {title}", fontsize=8)
    else:
        ax.set_title("no converged orbit: no section")
    ax.set(xlabel="x0", ylabel="x1")
    fig.tight_layout()
    fig.savefig(run / POINCARE_FILE, dpi=100)
    plt.close(fig)


def _print_summary(run, params, r, wall) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=None, box=None, padding=(0, 1))
    for col in ("amplitude", "V0", "period", "T guess", "max |μ|", "residual", "status"):
        table.add_column(col, justify="left" if col == "status" else "right")
    for b in range(len(r["amplitude"])):
        table.add_row(f"{r['amplitude'][b]:g}", f"{r['V0'][b]:.6g}", f"{r['period'][b]:.10g}",
                      f"{r['guess'][b]:.4g}", f"{r['mu_max'][b]:.6g}",
                      f"{r['residual'][b]:.2e}", r["status"][b])
    c = Console()
    c.print(f"[bold]oscillax orbits[/bold]  {params['form']} form, "
            f"{escape(params['activation'])}, n = {params['n']}; linear period 2π/ω = "
            f"{2 * math.pi / r['omega']:.6g}", highlight=False)
    c.print(table, highlight=False)
    s = r["section"]
    if s is not None:
        c.print(f"Poincaré section of amplitude {r['amplitude'][s['member']]:g}: "
                f"{s['found']} returns ({s['status']})", highlight=False)
    c.print(f"wrote {escape(str(run))}/: {', '.join(OUTPUTS)} in {wall:.1f} s",
            highlight=False)
