"""`oscillax simulate`: integrate one network and write its path, figures and summary."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated

import typer

from ._errors import fail
from ._options import ActivationName, Form, Overwrite, example, prepare_out

EPILOG = example("oscillax simulate --form post --activation tanh --frequencies 1,2.5 "
                 "--solver euler --dt 0.05 --t1 100 --out sim")

PATH_FILE = "path.parquet"
SUMMARY_FILE = "summary.json"
PHASE_FILE = "phase_portrait.png"
DRIFT_FILE = "invariant_drift.png"
OUTPUTS = (PATH_FILE, SUMMARY_FILE, PHASE_FILE, DRIFT_FILE)

DEFAULT_N = 2
DEFAULT_T1 = 50.0
DEFAULT_AMPLITUDE = 1.0
MAX_ROWS = 10_000  # saved states when --save-every is not given
MAX_SAVED = 20_000_000  # saved numbers above which --save-every must be raised

# The library's messages name its arguments; the command's name its flags.
_FLAGS = {"dt": "--dt", "t1": "--t1", "steps": "--steps", "x0": "--x0", "gamma": "--gamma",
          "save_every": "--save-every", "solver": "--solver", "activation": "--activation",
          "omegas": "--frequencies", "n": "--n"}


def simulate(
    form: Form = "post",
    activation: ActivationName = "tanh",
    n: Annotated[int | None, typer.Option(
        "--n", show_default=False,
        help=f"State size: A is a random skew matrix of spectral radius 1 drawn with --seed "
        f"(default {DEFAULT_N}, or the length of --x0).")] = None,
    frequencies: Annotated[str | None, typer.Option(
        "--frequencies", show_default=False,
        help="Comma-separated angular frequencies ω_k > 0: A = ox.skew_from_frequencies "
        "(n = 2 per frequency), instead of --n.")] = None,
    solver: Annotated[str, typer.Option(
        "--solver", help="euler, heun, midpoint, rk4, implicit_midpoint, or adaptive tsit5, "
        "dopri5, dopri8.")] = "rk4",
    dt: Annotated[float, typer.Option(
        "--dt", help="Step size (first step for adaptive solvers).")] = 0.01,
    t1: Annotated[float | None, typer.Option(
        "--t1", show_default=False,
        help=f"End time (default {DEFAULT_T1:g}); or give --steps.")] = None,
    steps: Annotated[int | None, typer.Option(
        "--steps", show_default=False, help="Number of steps, instead of --t1.")] = None,
    amplitude: Annotated[float | None, typer.Option(
        "--amplitude", show_default=False,
        help=f"‖x(0)‖, in a random direction drawn with --seed (default "
        f"{DEFAULT_AMPLITUDE:g}); or give --x0.")] = None,
    x0: Annotated[str | None, typer.Option(
        "--x0", show_default=False,
        help="Comma-separated initial state, e.g. 1,0 (instead of --amplitude).")] = None,
    gamma: Annotated[float, typer.Option(
        "--gamma", help="Damping γ >= 0 of the pre form (γ > 0: no invariant is kept).")] = 0.0,
    seed: Annotated[int, typer.Option(
        "--seed", help="Seed of the random A (--n) and of the direction of x(0).")] = 0,
    save_every: Annotated[int | None, typer.Option(
        "--save-every", show_default=False,
        help=f"Save every k-th step (default: at most {MAX_ROWS:,} saved states).")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", show_default=False,
        help="Output directory (default: runs/simulate-DATE-TIME).")] = None,
    overwrite: Overwrite = False,
    no_figures: Annotated[bool, typer.Option(
        "--no-figures", help="Skip drawing the figures.")] = False,
) -> None:
    """Simulate one network: its path, phase portrait, invariant drift and a summary.

    Writes path.parquet (columns t, x0 ... x{n-1}, invariant), phase_portrait.png (the
    first two coordinates over the invariant's level sets), invariant_drift.png and
    summary.json into --out, and prints status, drift, period and max norm."""
    import time

    import oscillax as ox

    form, activation, solver = form.strip(), activation.strip(), solver.strip()
    if form not in ("pre", "post"):
        fail(f"--form must be 'post' (dx/dt = A σ(x)) or 'pre' (dx/dt = σ(A x) − γ x); got "
             f"{form!r}.")
    if activation not in ox.ACTIVATIONS:
        fail(f"--activation must be one of {', '.join(ox.ACTIVATIONS)}; got {activation!r}.")
    if solver not in ox.SOLVERS:
        fail(f"--solver must be one of {', '.join(ox.SOLVERS)}; got {solver!r}.")
    _positive("--dt", dt, "a positive finite step size, e.g. --dt 0.01")
    if t1 is not None and steps is not None:
        fail(f"pass one of --t1 (end time) or --steps (step count), not both; got --t1 {t1:g} "
             f"and --steps {steps}.")
    if steps is not None and steps < 1:
        fail(f"--steps must be an integer >= 1; got {steps}.")
    if steps is None:
        t1 = DEFAULT_T1 if t1 is None else t1
        _positive("--t1", t1, "a positive finite end time")
    n_steps = steps if steps is not None else max(1, math.ceil(t1 / dt - 1e-9))
    omegas = None if frequencies is None else _floats("--frequencies", frequencies, "1,2.5")
    if omegas is not None and not all(w > 0 for w in omegas):
        fail(f"--frequencies must be positive angular frequencies, e.g. 1,2.5; got "
             f"{frequencies!r}.")
    if n is not None and n < 1:
        fail(f"--n must be an integer >= 1; got {n}.")
    if n is not None and omegas is not None and n != 2 * len(omegas):
        fail(f"--n {n} does not match --frequencies ({len(omegas)} frequencies make n = "
             f"{2 * len(omegas)}); pass one of them.")
    x0_vals = None if x0 is None else _floats("--x0", x0, "1,0")
    if x0_vals is not None and amplitude is not None:
        fail("pass one of --amplitude (a random direction) or --x0 (the state), not both.")
    dim = 2 * len(omegas) if omegas is not None else (n if n is not None else (
        len(x0_vals) if x0_vals is not None else DEFAULT_N))
    if x0_vals is not None and len(x0_vals) != dim:
        fail(f"--x0 must have n = {dim} entries to match A; got {len(x0_vals)} ({x0!r}).")
    if x0_vals is None:
        amplitude = DEFAULT_AMPLITUDE if amplitude is None else amplitude
        _positive("--amplitude", amplitude, "a positive finite norm of x(0)")
    if not (math.isfinite(gamma) and gamma >= 0):
        fail(f"--gamma must be a finite number >= 0 (the damping); got {gamma}.")
    if gamma > 0 and form != "pre":
        fail(f"--gamma applies to --form pre only (dx/dt = σ(A x) − γ x); got --gamma "
             f"{gamma:g} with --form {form}.")
    if not 0 <= seed < 2**32:
        fail(f"--seed must be an integer from 0 to 2**32 - 1; got {seed}.")
    if save_every is not None and save_every < 1:
        fail(f"--save-every must be an integer >= 1 (save every k-th step); got {save_every}.")
    if save_every is None:
        save_every = max(1, math.ceil(n_steps / MAX_ROWS))
    if (n_steps // save_every + 2) * (dim + 2) > MAX_SAVED:
        fail(f"--save-every {save_every} keeps {n_steps // save_every + 2:,} states of "
             f"{dim} numbers for {n_steps:,} steps; raise --save-every.")
    run = out if out is not None else Path("runs") / time.strftime("simulate-%Y%m%d-%H%M%S")
    prepare_out(run, overwrite, OUTPUTS)

    t_start = time.perf_counter()
    try:
        case = _build(ox, form, activation, dim, omegas, x0_vals, amplitude, gamma, seed)
        from rich.console import Console

        with Console(stderr=True).status(f"simulating {n_steps:,} steps", spinner="dots"):
            traj = ox.simulate(case["field"], case["x0"], dt=dt, t1=None if steps else t1,
                               steps=steps, solver=solver, save_every=save_every)
            import jax

            traj = jax.block_until_ready(traj)
    except ValueError as e:
        fail(_flagged(str(e)))
    wall = time.perf_counter() - t_start
    result = _measure(ox, case, traj, solver=solver, dt=dt, activation=activation,
                      gamma=gamma)
    params = dict(form=form, activation=activation, n=dim, solver=solver, dt=dt,
                  t1=None if steps else t1, steps=int(traj.steps), save_every=save_every,
                  gamma=gamma, seed=seed, A=case["A_from"], x0=case["x0_list"])
    files = _write(run, case, traj, result, params, wall, figures=not no_figures)
    _print_summary(run, params, result, files, wall)


def _positive(flag: str, value: float, what: str) -> None:
    if not (math.isfinite(value) and value > 0):
        fail(f"{flag} must be {what}; got {value:g}.")


def _floats(flag: str, text: str, eg: str) -> list[float]:
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError:
        vals = []
    if not vals or not all(math.isfinite(v) for v in vals):
        fail(f"{flag} must be a comma-separated list of finite numbers, e.g. {flag} {eg}; got "
             f"{text!r}.")
    return vals


def _flagged(message: str) -> str:
    """A library message with its argument names (`dt`) replaced by the flags (--dt)."""
    return re.sub(r"`(\w+)`", lambda m: _FLAGS.get(m.group(1), m.group(0)), message)


def _build(ox, form, activation, dim, omegas, x0_vals, amplitude, gamma, seed) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    key_a, key_x = jax.random.split(jax.random.PRNGKey(seed))
    if omegas is not None:
        A = ox.skew_from_frequencies(jnp.asarray(omegas, jnp.float32))
        A_from = {"frequencies": omegas}
    else:
        A = ox.random_skew(key_a, dim, spectral_radius=1.0, dtype=jnp.float32)
        A_from = {"random_skew": {"n": dim, "spectral_radius": 1.0, "seed": seed}}
    if x0_vals is not None:
        x0 = jnp.asarray(x0_vals, A.dtype)
    else:
        d = jax.random.normal(key_x, (dim,), A.dtype)
        x0 = amplitude * d / jnp.linalg.norm(d)
    if form == "pre":
        field = ox.PreActivation(A, activation, gamma=gamma)
        undamped = ox.PreActivation(A, activation) if gamma > 0 else field
    else:
        field = undamped = ox.PostActivation(A, activation)
    return dict(A=A, x0=x0, field=field, undamped=undamped, A_from=A_from,
                x0_list=[float(v) for v in np.asarray(x0)])


def _measure(ox, case, traj, *, solver, dt, activation, gamma) -> dict:
    """Status, invariant drift, period (upward zero crossings of x[0]) and max norm."""
    import numpy as np

    ts = np.asarray(traj.ts, np.float64)
    xs = np.asarray(traj.xs, np.float64)
    # with damping the field keeps no invariant: follow the undamped field's, which decays
    inv = np.asarray(case["undamped"].invariant(traj.xs), np.float64)
    drift = np.abs(inv - inv[0]) / max(abs(inv[0]), 1e-30)
    finite = np.all(np.isfinite(xs), axis=1)
    upto = int(np.argmin(finite)) if not finite.all() else len(ts)
    x = xs[:upto, 0]
    t = ts[:upto]
    i = np.nonzero((x[:-1] < 0) & (x[1:] >= 0))[0]
    crossings = t[i] - x[i] * (t[i + 1] - t[i]) / (x[i + 1] - x[i])
    period = float(np.mean(np.diff(crossings))) if len(crossings) >= 2 else None
    lam = np.linalg.eigvalsh(1j * np.asarray(case["A"], np.float64))
    w = np.unique(np.round(np.abs(lam[np.abs(lam) > 1e-9]), 9))
    norms = np.linalg.norm(xs[:upto], axis=1)
    theory = None
    if activation == "identity" and gamma == 0 and solver in ox.FIXED_SOLVERS:
        theory = _linear_theory(ox, case, solver, dt, ts)
    # a diverged member keeps its last state before the step of divergence: compare there
    at = int(traj.diverged_at)
    last = min(int(np.searchsorted(ts, (at - 1) * dt - 1e-12)), len(ts) - 1) if at > 0 else -1
    return dict(
        status=ox.Status(int(traj.status)).name.lower(),
        diverged_at=int(traj.diverged_at),
        t=ts, xs=xs, invariant=inv, drift=drift, theory=theory,
        final_drift=float(drift[last]) if np.isfinite(drift[last]) else None,
        theory_final=None if theory is None else float(theory[last]),
        max_drift=float(np.nanmax(drift)) if np.isfinite(drift).any() else None,
        period=period, crossings=int(len(crossings)),
        linear_periods=[float(2 * np.pi / v) for v in w[::-1]],
        max_norm=float(norms.max()) if len(norms) else None,
        conserved=case["undamped"] is case["field"],
    )


def _linear_theory(ox, case, solver, dt, ts):
    """Relative invariant drift of the solver on the linear system: on each invariant
    subspace of A (eigenvalues ±iω) the quadratic invariant scales by |R(ihω)|^(2k)."""
    import numpy as np

    A = np.asarray(case["A"], np.float64)
    x0 = np.asarray(case["x0"], np.float64)
    lam, V = np.linalg.eigh(1j * A)
    w = np.abs(lam)
    inv = lambda x: float(np.asarray(case["field"].invariant(np.asarray(x, np.float32))))
    i0 = inv(x0)
    total = np.zeros_like(ts)
    for g in np.unique(np.round(w, 9)):
        sel = np.abs(w - g) <= 1e-8 * max(1.0, g)
        xg = (V[:, sel] @ (V[:, sel].conj().T @ x0)).real
        r = float(np.asarray(ox.amplification(solver, dt, g)))
        total += inv(xg) * np.exp(2 * (ts / dt) * np.log(r))
    return np.abs(total - i0) / max(abs(i0), 1e-30)


def _write(run, case, traj, r, params, wall, *, figures: bool) -> list[str]:
    import json

    import numpy as np
    import pandas as pd

    cols = {"t": r["t"]}
    for k in range(r["xs"].shape[1]):
        cols[f"x{k}"] = r["xs"][:, k]
    cols["invariant"] = r["invariant"]
    pd.DataFrame(cols).to_parquet(run / PATH_FILE, index=False)
    files = [PATH_FILE]
    if figures:
        from .._plot import simulation_drift_figure, simulation_phase_figure

        title = (f"{params['form']} form, {params['activation']}, {params['solver']}, "
                 f"dt = {params['dt']:g}")
        if r["xs"].shape[1] >= 2:
            inv = lambda X: np.asarray(case["undamped"].invariant(
                np.asarray(X, np.float32)))
            simulation_phase_figure(r["xs"], run / PHASE_FILE, invariant=inv, title=title)
            files.append(PHASE_FILE)
        label = "simulated" if r["conserved"] else "simulated (invariant of the γ = 0 field)"
        simulation_drift_figure(r["t"], r["drift"], run / DRIFT_FILE, theory=r["theory"],
                                title=f"invariant drift: {title}", label=label)
        files.append(DRIFT_FILE)
    keep = ("status", "diverged_at", "final_drift", "max_drift", "theory_final", "period",
            "crossings", "linear_periods", "max_norm")
    summary = {"parameters": params, **{k: r[k] for k in keep},
               "saved_states": int(len(r["t"])), "wall_time_s": round(wall, 3),
               "files": [*files, SUMMARY_FILE]}
    (run / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
    return [*files, SUMMARY_FILE]


def _print_summary(run, params, r, files, wall) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    g = lambda v, f=".4g": "n/a" if v is None else format(v, f)
    horizon = (f"t1 = {params['t1']:g}" if params["t1"] is not None
               else f"{params['steps']:,} steps")
    status = r["status"]
    if r["diverged_at"] >= 0:
        status += f" at step {r['diverged_at']:,} (t ≈ {r['diverged_at'] * params['dt']:.4g})"
    final = "before divergence" if r["diverged_at"] > 0 else "final"
    drift = f"{final} {g(r['final_drift'], '.3g')}, max {g(r['max_drift'], '.3g')}"
    if r["theory_final"] is not None:
        drift += f"; linear theory {g(r['theory_final'], '.3g')}"
    if not r["conserved"]:
        drift += " (γ > 0: the γ = 0 invariant decays)"
    lin = ", ".join(f"{p:.4g}" for p in r["linear_periods"]) or "none (A = 0)"
    rows = [
        ("status", status),
        ("invariant drift", drift),
        ("period", f"{g(r['period'])} from {r['crossings']} upward zero crossings of x[0]; "
                   f"linear 2π/ω: {lin}"),
        ("max norm", g(r["max_norm"])),
    ]
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    for k, v in rows:
        grid.add_row(k, escape(v))
    c = Console()
    c.print(f"[bold]oscillax simulate[/bold]  {params['form']} form, "
            f"{escape(params['activation'])}, n = {params['n']}, {escape(params['solver'])}, "
            f"dt = {params['dt']:g}, {horizon}"
            + (f", γ = {params['gamma']:g}" if params["gamma"] else ""), highlight=False)
    c.print(grid, highlight=False)
    c.print(f"wrote {escape(str(run))}/: {', '.join(files)} ({len(r['t']):,} saved states) "
            f"in {wall:.1f} s", highlight=False)
