"""`oscillax lyapunov`: the Lyapunov spectrum of a network's flow, or of a fixed-step
solver's own map, for a batch of random networks (or the user's matrices and states)."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated

import typer

from ._errors import fail, print_warning
from ._options import ActivationName, Form, Overwrite, example, prepare_out
from ._simulate import _floats

EPILOG = example("oscillax lyapunov --solver euler --dt 0.1 --steps 10000",
                 "oscillax lyapunov --matrix A.npy --solver dopri5 --dt 0.5 --out lyap")

JSON_FILE = "lyapunov.json"
EXPONENTS_FILE = "exponents.npy"
CHECKPOINTS_FILE = "checkpoints.npy"
FIGURE_FILE = "convergence.png"
OUTPUTS = (JSON_FILE, EXPONENTS_FILE, CHECKPOINTS_FILE, FIGURE_FILE)

DEFAULT_DIM = 8
DEFAULT_NETWORKS = 16
MAX_ROWS = 16  # members listed in the table (all of them are in lyapunov.json)
MAX_COLUMNS = 8  # exponents shown as columns; more are elided in the middle
CHUNK_MIN = 64  # members per call when a large batch is split to show progress
CHUNKS = 8  # ... into at most this many calls

# The library's messages name its arguments; the command's name its flags.
_FLAGS = {"dt": "--dt", "steps": "--steps", "k": "--k", "renorm_every": "--renorm-every",
          "transient": "--transient", "x0": "--x0", "solver": "--solver", "A": "--matrix",
          "gamma": "--gamma", "n": "--dim", "spectral_radius": "--spectral-radius",
          "activation": "--activation"}


def lyapunov(
    form: Form = "post",
    activation: ActivationName = "tanh",
    dim: Annotated[int | None, typer.Option(
        "--dim", show_default=False,
        help=f"State size n of the random networks (default {DEFAULT_DIM}, or --matrix's)."
    )] = None,
    networks: Annotated[int | None, typer.Option(
        "--networks", show_default=False,
        help=f"Number of random networks A = ox.random_skew(...) measured together "
        f"(default {DEFAULT_NETWORKS}; not with --matrix).")] = None,
    spectral_radius: Annotated[float | None, typer.Option(
        "--spectral-radius", show_default=False,
        help="Largest frequency |ω| of each random A (default 1).")] = None,
    matrix: Annotated[Path | None, typer.Option(
        "--matrix", show_default=False,
        help="A .npy file with your own skew A: (n, n), or a batch (B, n, n); instead of "
        "random networks.")] = None,
    x0: Annotated[str | None, typer.Option(
        "--x0", show_default=False,
        help="Initial state(s): comma-separated (one state for every network), or a .npy "
        "file (n,) or (B, n). Default: random directions of norm --amplitude.")] = None,
    amplitude: Annotated[float | None, typer.Option(
        "--amplitude", show_default=False,
        help="‖x(0)‖ of the random initial states (default 1).")] = None,
    gamma: Annotated[float, typer.Option(
        "--gamma", help="Diffusion γ >= 0 of the pre form.")] = 0.0,
    solver: Annotated[str, typer.Option(
        "--solver", help="A fixed-step map (euler, heun, midpoint, rk4, implicit_midpoint), "
        "or an adaptive solver (tsit5, dopri5, dopri8) for the exact flow.")] = "rk4",
    dt: Annotated[float, typer.Option(
        "--dt", help="Step of the map; for an adaptive solver, the interval between "
        "renormalisations of the flow.")] = 0.1,
    steps: Annotated[int, typer.Option(
        "--steps", help="Measured steps (t = steps × dt), after the transient.")] = 10_000,
    transient: Annotated[int, typer.Option(
        "--transient", help="Steps run first and discarded.")] = 0,
    k: Annotated[int | None, typer.Option(
        "--k", show_default=False,
        help="Number of exponents, largest first (1 to n; default n).")] = None,
    renorm_every: Annotated[int, typer.Option(
        "--renorm-every", help="Steps between renormalisations of the tangents.")] = 1,
    seed: Annotated[int, typer.Option(
        "--seed", help="Seed of the random networks and initial states.")] = 0,
    x64: Annotated[bool, typer.Option(
        "--x64/--no-x64", help="Compute in float64 (default) or float32.")] = True,
    out: Annotated[Path | None, typer.Option(
        "--out", show_default=False,
        help=f"Directory to write {', '.join(OUTPUTS)} into (default: none).")] = None,
    overwrite: Overwrite = False,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print the results as JSON (the content of lyapunov.json) instead "
        "of tables.")] = False,
) -> None:
    """Lyapunov spectrum of a network's flow, or of a fixed-step solver's map.

    A fixed-step --solver measures the numerical method itself, the map x -> Ψ_dt(x): forward
    Euler on the linear skew network has λ = ln(1 + dt²ω²)/(2 dt) > 0, where the flow has 0.
    An adaptive --solver measures the exact flow. All networks (or states) run as one batch
    (Benettin's QR method, ox.lyapunov_spectrum). Prints the exponents of each network, largest
    first, with their sum, the closed form where it applies (identity σ: exactly; odd σ: the
    small-amplitude limit) and the running estimates at log-spaced checkpoints; --out writes
    lyapunov.json, exponents.npy (B, k), checkpoints.npy (B, m, k) and convergence.png."""
    import time

    import oscillax as ox

    form, activation, solver = form.strip(), activation.strip(), solver.strip().lower()
    if form not in ("pre", "post"):
        fail(f"--form must be 'post' (dx/dt = A σ(x)) or 'pre' (dx/dt = σ(A x) − γ x); got "
             f"{form!r}.")
    if activation not in ox.ACTIVATIONS:
        fail(f"--activation must be one of {', '.join(ox.ACTIVATIONS)}; got {activation!r}.")
    if solver not in ox.SOLVERS:
        fail(f"--solver must be one of {', '.join(ox.SOLVERS)} (fixed-step maps: "
             f"{', '.join(ox.FIXED_SOLVERS)}; the flow: {', '.join(ox.ADAPTIVE_SOLVERS)}); "
             f"got {solver!r}.")
    _positive("--dt", dt, "a positive finite step, e.g. --dt 0.1")
    if steps < 1:
        fail(f"--steps must be an integer >= 1 (measured steps); got {steps}.")
    if transient < 0:
        fail(f"--transient must be an integer >= 0 (steps discarded first); got {transient}.")
    if renorm_every < 1:
        fail(f"--renorm-every must be an integer >= 1; got {renorm_every}.")
    if not (math.isfinite(gamma) and gamma >= 0):
        fail(f"--gamma must be a finite number >= 0 (the diffusion); got {gamma:g}.")
    if gamma > 0 and form != "pre":
        fail(f"--gamma applies to --form pre only (dx/dt = σ(A x) − γ x); got --gamma "
             f"{gamma:g} with --form {form}.")
    if not 0 <= seed < 2**32:
        fail(f"--seed must be an integer from 0 to 2**32 - 1; got {seed}.")
    if dim is not None and dim < 1:
        fail(f"--dim must be an integer >= 1; got {dim}.")
    if networks is not None and networks < 1:
        fail(f"--networks must be an integer >= 1; got {networks}.")
    if matrix is not None and networks is not None:
        fail("--networks counts random networks; with --matrix the batch is the file's "
             "(B, n, n) (or the rows of an --x0 file). Drop --networks.")
    if matrix is not None and spectral_radius is not None:
        fail("--spectral-radius scales the random networks; with --matrix A is used as "
             "given. Drop --spectral-radius (or rescale A).")
    if x0 is not None and amplitude is not None:
        fail("pass one of --amplitude (random initial states of that norm) or --x0 (the "
             "states), not both.")
    spectral_radius = 1.0 if spectral_radius is None else spectral_radius
    amplitude = 1.0 if amplitude is None else amplitude
    _positive("--spectral-radius", spectral_radius, "a positive finite frequency, e.g. 1")
    _positive("--amplitude", amplitude, "a positive finite norm of x(0)")

    import numpy as np

    As = _load_matrix(matrix) if matrix is not None else None  # (B or 1, n, n) float64
    if As is not None and dim is not None and dim != As.shape[-1]:
        fail(f"--dim {dim} does not match --matrix {str(matrix)!r}, whose A is "
             f"{As.shape[-1]} x {As.shape[-1]}; drop --dim.")
    n = As.shape[-1] if As is not None else (dim if dim is not None else DEFAULT_DIM)
    X0 = _parse_x0(x0, n) if x0 is not None else None  # (B or 1, n) float64
    batch = _batch_size(As, X0, networks, matrix)
    if k is not None and not 1 <= k <= n:
        fail(f"--k must be an integer from 1 to the dimension n = {n}; got {k}.")
    kk = n if k is None else k
    if steps + transient >= 2**31:
        fail(f"--steps + --transient must be below 2**31; got {steps + transient}.")

    if out is not None:
        prepare_out(out, overwrite, OUTPUTS)

    import jax

    if x64:
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    dtype = jnp.float64 if x64 else jnp.float32
    A_from, As, X0 = _draw(ox, As, X0, matrix, batch, n, spectral_radius, amplitude, seed)
    params = dict(form=form, activation=activation, n=n, networks=batch, solver=solver,
                  map="flow" if solver in ox.ADAPTIVE_SOLVERS else f"{solver} map", dt=dt,
                  steps=steps, transient=transient, k=kk, renorm_every=renorm_every,
                  gamma=gamma, seed=seed, dtype="float64" if x64 else "float32", A=A_from,
                  x0=(x0 if x0 is not None and x0.strip().lower().endswith(".npy") else
                      "random" if x0 is None else [float(v) for v in X0[0]]),
                  amplitude=amplitude if x0 is None else None)

    t_start = time.perf_counter()
    try:
        res = _measure(ox, jax, jnp, As, X0, batch, form=form, activation=activation,
                       gamma=gamma, solver=solver, dt=dt, steps=steps, transient=transient,
                       k=kk, renorm_every=renorm_every, dtype=dtype, quiet=as_json)
    except ValueError as e:
        fail(_flagged(str(e)))
    except Exception as e:  # a runtime error of the solve (diffrax, XLA): one line, no trace
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        fail(f"the measurement failed ({type(e).__name__}): {first}")
    wall = time.perf_counter() - t_start

    theory = _theory(ox, np, As, batch, activation=activation, form=form, gamma=gamma,
                     solver=solver, dt=dt, k=kk)
    report = _report(np, res, theory, params, n=n, form=form, gamma=gamma, solver=solver,
                     wall=wall)
    files = []
    if out is not None:
        files = _write(np, out, res, report, params)
        report["files"] = files
    bad = report["nonfinite_members"]
    if bad:
        print_warning(f"{len(bad)} of {batch} members have non-finite exponents (their "
                      f"state overflowed; e.g. member {bad[0]}): shorten --steps or --dt, or "
                      "check the network.")
    over = report["overflowed_states"]
    if over:
        print_warning(f"{len(over)} of {batch} members' states overflowed (e.g. member "
                      f"{over[0]}): their exponents hold for a linear map, whose tangents do "
                      "not depend on the state; for a nonlinear one, shorten --steps.")
    if as_json:
        import json

        typer.echo(json.dumps(report, indent=2))
        return
    _print(np, res, report, params, out, files)


# --------------------------------------------------------------------------- inputs


def _positive(flag: str, value: float, what: str) -> None:
    if not (math.isfinite(value) and value > 0):
        fail(f"{flag} must be {what}; got {value:g}.")


def _flagged(message: str) -> str:
    """A library message with its argument names (`dt`) replaced by the flags (--dt)."""
    return re.sub(r"`(\w+)`", lambda m: _FLAGS.get(m.group(1), m.group(0)), message)


def _load_npy(flag: str, path: Path, what: str):
    import numpy as np

    if not path.is_file():
        fail(f"{flag} {str(path)!r} is not a file; pass a .npy file with {what} "
             "(np.save('A.npy', A)).")
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        fail(f"{flag} {str(path)!r} is not a readable .npy file ({e}); save it with "
             "np.save.")
    if not isinstance(arr, np.ndarray):  # an .npz archive
        fail(f"{flag} {str(path)!r} is an .npz archive; pass one array saved with np.save.")
    if arr.dtype.kind not in "biuf":
        fail(f"{flag} {str(path)!r} must hold real numbers; got dtype {arr.dtype}.")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        fail(f"{flag} {str(path)!r} contains NaN or inf ({int(np.sum(~np.isfinite(arr)))} "
             "entries); pass finite values.")
    return arr


def _load_matrix(path: Path):
    import numpy as np

    from .._field import SKEW_TOL
    from .._skew import skew_asymmetry

    A = _load_npy("--matrix", path, "a skew matrix A (n, n) or a batch (B, n, n)")
    if A.ndim not in (2, 3) or A.shape[-1] != A.shape[-2] or A.shape[-1] == 0 or (
            A.ndim == 3 and A.shape[0] == 0):
        fail(f"--matrix {str(path)!r} must hold a square matrix (n, n) or a batch (B, n, n); "
             f"got shape {A.shape}.")
    As = A[None] if A.ndim == 2 else A
    asym = max(skew_asymmetry(a) for a in As)
    if asym > SKEW_TOL:
        fail(f"--matrix {str(path)!r} must be skew-symmetric (A.T == -A); measured "
             f"max|A + A.T| / max(max|A|, 1) = {asym:.3g} > {SKEW_TOL:g}. Save A = W - W.T "
             "(ox.skew(W)).")
    return np.ascontiguousarray(As)


def _parse_x0(text: str, n: int):
    import numpy as np

    t = text.strip()
    if t.lower().endswith(".npy"):
        X = _load_npy("--x0", Path(t), "a state (n,) or states (B, n)")
        if X.ndim not in (1, 2) or X.shape[-1] != n or (X.ndim == 2 and X.shape[0] == 0):
            fail(f"--x0 {t!r} must hold a state ({n},) or states (B, {n}) to match n = {n}; "
                 f"got shape {X.shape}.")
        return X[None] if X.ndim == 1 else X
    vals = _floats("--x0", t, ",".join(["1"] + ["0"] * (n - 1)))
    if len(vals) != n:
        fail(f"--x0 must have n = {n} entries to match A; got {len(vals)} ({text!r}).")
    return np.asarray(vals, np.float64)[None]


def _batch_size(As, X0, networks, matrix) -> int:
    if As is None:
        B = networks if networks is not None else DEFAULT_NETWORKS
        if X0 is not None and len(X0) not in (1, B):
            fail(f"--x0 holds {len(X0)} states but --networks is {B}; pass one state, or "
                 f"--networks {len(X0)}.")
        return B
    if X0 is not None and len(As) > 1 and len(X0) not in (1, len(As)):
        fail(f"--x0 holds {len(X0)} states but --matrix {str(matrix)!r} holds {len(As)} "
             "networks; pass one state, or one per network.")
    return max(len(As), 1 if X0 is None else len(X0))


def _draw(ox, As, X0, matrix, batch, n, rho, amplitude, seed):
    """The matrices `(B, n, n)` (or `(1, n, n)`, shared) and states `(B, n)` in float64.
    Network b and its start come from `fold_in(key, b)`, so they do not depend on the
    batch size; they are drawn in float32 and rescaled in float64, so --x64 and --no-x64
    measure the same networks (to float32 rounding)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    key_a, key_x = jax.random.split(jax.random.PRNGKey(seed))
    if As is None:
        As = np.stack([np.asarray(ox.random_skew(jax.random.fold_in(key_a, b), n, rho,
                                                 dtype=jnp.float32), np.float64)
                       for b in range(batch)])
        if n > 1:  # exactly the spectral radius asked for, in float64
            As *= rho / np.linalg.norm(As, ord=2, axis=(1, 2))[:, None, None]
        A_from = {"random_skew": {"n": n, "spectral_radius": rho, "seed": seed,
                                  "networks": batch}}
    else:
        A_from = {"matrix": str(matrix), "networks": len(As)}
    if X0 is None:
        d = np.asarray(jax.vmap(lambda b: jax.random.normal(
            jax.random.fold_in(key_x, b), (n,), jnp.float32))(jnp.arange(batch)), np.float64)
        X0 = amplitude * d / np.linalg.norm(d, axis=1, keepdims=True)
    X0 = np.broadcast_to(X0, (batch, n)).copy()
    return A_from, As, X0


# --------------------------------------------------------------------------- the run


def _chunks(batch: int) -> list[tuple[int, int]]:
    """Member ranges of the calls: one call, or (for a large batch) up to CHUNKS equal ones
    of at least CHUNK_MIN members, so that the progress bar moves; equal sizes (the last
    padded) keep to one compilation."""
    size = max(CHUNK_MIN, math.ceil(batch / CHUNKS))
    return [(s, min(s + size, batch)) for s in range(0, batch, size)]


def _measure(ox, jax, jnp, As, X0, batch, *, form, activation, gamma, solver, dt, steps,
             transient, k, renorm_every, dtype, quiet) -> dict:
    import numpy as np
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    shared = len(As) == 1
    # A x as one matrix product (`dense`) for per-network A and for the implicit solver:
    # the unrolled multiply-adds make its differentiated Newton iterations a program that
    # compiles ~3x and runs ~20x slower (n = 8, 16 networks, measured); explicit solvers on
    # a shared A keep the unrolled form, which fuses best there
    dense = not shared or getattr(ox.FIXED_SOLVERS.get(solver), "implicit", False)

    def field(A):
        if form == "pre":
            return ox.PreActivation(A, activation, gamma=gamma, dense=dense)
        return ox.PostActivation(A, activation, dense=dense)

    def one(A, x):
        return ox.lyapunov_spectrum(field(A), x, dt=dt, steps=steps, solver=solver, k=k,
                                    renorm_every=renorm_every, transient=transient)

    ranges = _chunks(batch)
    size = ranges[0][1] - ranges[0][0]
    what = ("flow" if solver in ox.ADAPTIVE_SOLVERS else f"{solver} map")
    label = f"{what}: {batch} {'states' if shared else 'networks'} × {steps:,} steps"
    console = Console(stderr=True)
    progress = Progress(SpinnerColumn(), TextColumn(label), BarColumn(),
                        MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                        transient=True, disable=quiet or not console.is_terminal)
    parts = []
    with progress:
        task = progress.add_task("lyapunov", total=batch)
        A_shared = jnp.asarray(As[0], dtype)
        for s, e in ranges:
            idx = np.minimum(np.arange(s, s + size), batch - 1)  # pad with the last member
            X = jnp.asarray(X0[idx], dtype)
            if shared:
                r = one(A_shared, X)
            else:
                r = jax.vmap(one)(jnp.asarray(As[idx], dtype), X)
            r = jax.block_until_ready(r)
            parts.append(jax.tree.map(lambda a, m=e - s: np.asarray(a)[:m], (
                r.exponents, r.checkpoints, r.state)))
            times = np.asarray(r.times, np.float64)
            progress.update(task, completed=e)
    exps, chk, state = (np.concatenate(p, axis=0) for p in zip(*parts))
    return dict(exponents=exps.astype(np.float64), checkpoints=chk.astype(np.float64),
                state=state.astype(np.float64), times=times.reshape(-1, times.shape[-1])[0])


# --------------------------------------------------------------------------- theory


def _theory(ox, np, As, batch, *, activation, form, gamma, solver, dt, k):
    """The spectrum of the network linearised at x = 0, per member `(B, k)`: for identity σ
    the exact answer (the map of a linear system is R(dt J), a normal matrix, so its
    exponents are ln|R(dt λ)|/dt over the eigenvalues λ = s (±iω) − γ of J = s A − γ I; the
    flow's are Re λ = −γ); for another odd σ, the small-amplitude limit (s = σ'(0))."""
    import jax.numpy as jnp

    act = ox.get_activation(activation)
    if not act.odd:  # 0 is then not a fixed point (sigmoid) or σ'(0) is a kink (relu)
        return None
    s = float(act.derivative(jnp.zeros((), jnp.float32)))
    w = np.linalg.eigvalsh(1j * As)  # (B or 1, n): ±ω_k, 0 for odd n
    omegas = np.sort(np.abs(w), axis=-1)[:, ::-1][:, ::2]  # one per ± pair, largest first
    shift = gamma if form == "pre" else 0.0

    def rate(om):
        lam = s * 1j * om - shift
        if solver in ox.ADAPTIVE_SOLVERS:
            return np.broadcast_to(lam.real, lam.shape).copy()
        R = np.asarray(ox.FIXED_SOLVERS[solver].stability_function(dt * lam), np.complex128)
        with np.errstate(divide="ignore"):
            return np.log(np.abs(R)) / dt

    rates = rate(w)
    if solver in ox.ADAPTIVE_SOLVERS:
        formula = "Re λ = −γ (the flow)" if gamma else "Re λ = 0 (the flow)"
    else:
        formula = {
            "euler": "ln((1 − dtγ)² + dt²ω²)/(2 dt)" if gamma else "ln(1 + dt²ω²)/(2 dt)",
            "heun": "ln|R(dt(−γ ± iω))|/dt" if gamma else "ln(1 + (dt ω)⁴/4)/(2 dt)",
            "midpoint": "ln|R(dt(−γ ± iω))|/dt" if gamma else "ln(1 + (dt ω)⁴/4)/(2 dt)",
        }.get(solver, "ln|R(dt(−γ ± iω))|/dt" if gamma else "ln|R(i dt ω)|/dt")
        if solver == "implicit_midpoint" and not gamma:
            formula = "0 (the Cayley map is orthogonal)"
    per_omega = rate(omegas)
    rates = -np.sort(-rates, axis=-1)[:, :k]
    rates = np.broadcast_to(rates, (batch, k)).copy()
    return dict(exact=act.is_linear, slope=s, formula=formula, exponents=rates,
                omegas=np.broadcast_to(omegas, (batch, omegas.shape[1])),
                per_omega=np.broadcast_to(per_omega, (batch, omegas.shape[1])))


def _report(np, res, theory, params, *, n, form, gamma, solver, wall) -> dict:
    """Everything printed and written: JSON-ready."""
    import oscillax as ox

    E, C, times = res["exponents"], res["checkpoints"], res["times"]
    B, k = E.shape
    finite = np.all(np.isfinite(E), axis=1)
    # change of each exponent between the last two checkpoints (log-spaced: the last one
    # measures over ~ the whole run, the one before over a fraction of it)
    change = (np.max(np.abs(C[:, -1] - C[:, -2]), axis=1) if C.shape[1] >= 2
              else np.full(B, np.nan))
    flt = lambda a: [None if not np.isfinite(v) else float(v) for v in np.ravel(a)]
    rows = lambda a: [flt(r) for r in a]
    out = dict(
        command="lyapunov",
        parameters=params,
        per="time",
        time=float(times[-1]),
        exponents=rows(E),
        sum=flt(E.sum(axis=1)),
        largest=flt(E[:, 0]),
        checkpoint_times=flt(times),
        checkpoints=[rows(c) for c in C],
        convergence=dict(
            last_change=flt(change),
            max_last_change=float(np.nanmax(change)) if np.isfinite(change).any() else None,
            between=flt(times[-2:]) if len(times) >= 2 else flt(times),
        ),
        nonfinite_members=[int(b) for b in np.nonzero(~finite)[0]],
        overflowed_states=[int(b) for b in np.nonzero(
            finite & ~np.all(np.isfinite(res["state"]), axis=1))[0]],
        theory=None,
        sum_rule=None,
        wall_time_s=round(wall, 3),
    )
    if theory is not None:
        err = np.abs(E - theory["exponents"])
        out["theory"] = dict(
            exact=bool(theory["exact"]),
            slope=theory["slope"],
            kind=("exact (linear network)" if theory["exact"] else
                  f"linearised at x = 0 (small amplitude; σ'(0) = {theory['slope']:.6g})"),
            formula=theory["formula"],
            omegas=rows(theory["omegas"]),
            exponent_per_omega=rows(theory["per_omega"]),
            exponents=rows(theory["exponents"]),
            max_abs_error=(float(np.nanmax(err)) if theory["exact"] and np.isfinite(err).any()
                           else None),
        )
    if solver in ox.ADAPTIVE_SOLVERS and k == n:
        expected = -n * gamma if form == "pre" else 0.0
        dev = np.abs(E.sum(axis=1) - expected)
        out["sum_rule"] = dict(
            expected=expected,
            why=("tr J = −nγ (pre form)" if form == "pre" else
                 "tr J = 0 (post form: the flow preserves volume)"),
            max_abs_error=float(np.nanmax(dev)) if np.isfinite(dev).any() else None,
        )
    return out


# --------------------------------------------------------------------------- output


def _atomic(path: Path, write) -> None:
    """`write(file object)` into a temporary file beside `path`, then rename it onto
    `path`: the file is complete or absent."""
    import os

    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write(np, run: Path, res, report, params) -> list[str]:
    import json

    _atomic(run / EXPONENTS_FILE, lambda f: np.save(f, res["exponents"]))
    _atomic(run / CHECKPOINTS_FILE, lambda f: np.save(f, res["checkpoints"]))
    fig = _figure(np, res, report, params)
    _atomic(run / FIGURE_FILE, lambda f: fig.savefig(f, format="png", dpi=100))
    from .._plot import _plt

    _plt().close(fig)
    files = [JSON_FILE, EXPONENTS_FILE, CHECKPOINTS_FILE, FIGURE_FILE]
    text = json.dumps({**report, "files": files}, indent=2)
    _atomic(run / JSON_FILE, lambda f: f.write(text.encode()))
    return files


def _figure(np, res, report, params):
    """Running estimates against time: every exponent of member 0 (with the closed form),
    and the largest exponent of every member."""
    from .._plot import _plt

    plt = _plt()
    C, times = res["checkpoints"], res["times"]
    B, m, k = C.shape
    panels = 2 if B > 1 else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 3.8), squeeze=False)
    ax = axes[0, 0]
    th = report["theory"]
    for i in range(k):
        ax.plot(times, C[0, :, i], "o-", ms=3, lw=1, color=f"C{i % 10}")
        if th is not None:
            ax.axhline(th["exponents"][0][i], color=f"C{i % 10}", ls="--", lw=0.8)
    ax.set(xscale="log", xlabel="t (measured)", ylabel="running estimate",
           title=f"member 0: all {k} exponents" + (
               " (dashed: closed form)" if th is not None and th["exact"] else
               " (dashed: linearised at 0)" if th is not None else ""))
    ax.axhline(0, color="k", lw=0.5)
    if panels == 2:
        ax = axes[0, 1]
        for b in range(B):
            ax.plot(times, C[b, :, 0], "-", lw=0.8, alpha=0.7)
        ax.set(xscale="log", xlabel="t (measured)", ylabel="running estimate of λ1",
               title=f"largest exponent, {B} members")
        ax.axhline(0, color="k", lw=0.5)
    fig.suptitle(f"{params['form']} form, {params['activation']}, n = {params['n']}, "
                 f"{params['map']}, dt = {params['dt']:g}", fontsize=9)
    fig.tight_layout()
    return fig


def _fmt(v, spec: str = ".4g") -> str:
    return "nan" if v is None or not math.isfinite(v) else format(v, spec)


def _print(np, res, report, params, out, files) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    E = res["exponents"]
    B, k = E.shape
    c = Console()
    # as many exponent columns as fit (a value takes at most 10 characters, plus padding)
    fit = max(3, (c.width - 6 - 11 * 3) // 11)
    cols = min(MAX_COLUMNS, fit)
    shown = list(range(k)) if k <= cols else [*range(cols - 2), None, k - 1]
    th = report["theory"]
    table = Table(box=None, padding=(0, 1), collapse_padding=True)
    table.add_column("#", justify="right")
    for i in shown:
        table.add_column("…" if i is None else f"λ{i + 1}", justify="right")
    table.add_column("sum", justify="right")
    table.add_column("Δ last", justify="right")
    if th is not None:
        table.add_column("closed λ1" if th["exact"] else "lin. λ1", justify="right")
    conv = report["convergence"]["last_change"]
    lines = list(range(min(B, MAX_ROWS)))
    for b in lines:
        row = [str(b)] + ["…" if i is None else _fmt(E[b, i]) for i in shown]
        row += [_fmt(report["sum"][b]), _fmt(conv[b])]
        if th is not None:
            row.append(_fmt(th["exponents"][b][0]))
        table.add_row(*row)
    if B > 1:
        mean = np.mean(E, axis=0)
        row = ["mean"] + ["…" if i is None else _fmt(mean[i]) for i in shown]
        row += [_fmt(float(np.mean(E.sum(axis=1)))), _fmt(report["convergence"][
            "max_last_change"]) ]
        if th is not None:
            row.append(_fmt(float(np.mean([r[0] for r in th["exponents"]]))))
        table.add_row(*row, style="bold")
    p = params
    plural = lambda m, w: f"{m} {w}" + ("" if m == 1 else "s")
    if "random_skew" in p["A"]:
        src = plural(B, "random network")
    else:
        nets = p["A"]["networks"]
        src = plural(nets, "network") + f" from {p['A']['matrix']}" + (
            f", {plural(B, 'state')}" if nets == 1 and B > 1 else "")
    c.print(f"[bold]oscillax lyapunov[/bold]  {p['form']} form, {escape(p['activation'])}, "
            f"n = {p['n']}, {escape(src)}; {escape(p['map'])}, dt = {p['dt']:g}, "
            f"{p['steps']:,} steps (t = {report['time']:.6g})"
            + (f" after {p['transient']:,}" if p["transient"] else "")
            + (f", γ = {p['gamma']:g}" if p["gamma"] else "") + f", {p['dtype']}",
            highlight=False)
    c.print(table, highlight=False)
    if B > len(lines):
        c.print(f"… {B - len(lines)} more members" + (f" in {escape(str(out))}/{JSON_FILE}"
                                                       if out is not None else
                                                       " (pass --out or --json for all)"),
                highlight=False)
    if th is not None:
        if th["exact"]:
            c.print(escape(f"closed form (linear network): λ = {th['formula']} for each "
                           f"eigenvalue ±iω of A; max |measured − closed form| = "
                           f"{_fmt(th['max_abs_error'], '.3g')}"), highlight=False)
        else:
            c.print(escape(f"small-amplitude limit (the network linearised at x = 0, σ'(0) "
                           f"= {th['slope']:.4g}): λ = {th['formula']}"), highlight=False)
        w, lam = th["omegas"][0], th["exponent_per_omega"][0]
        c.print("  member 0, per frequency: " + "; ".join(
            f"ω = {a:.5g}: λ = {_fmt(b)}" for a, b in zip(w[:4], lam[:4]))
            + (" …" if len(w) > 4 else ""), highlight=False)
    sr = report["sum_rule"]
    if sr is not None:
        c.print(escape(f"sum rule: Σλ = {sr['expected']:g} ({sr['why']}); max |Σλ − "
                       f"{sr['expected']:g}| = {_fmt(sr['max_abs_error'])}"), highlight=False)
    times = report["checkpoint_times"]
    mean1 = np.nanmean(res["checkpoints"][:, :, 0], axis=0)
    c.print("convergence: running λ1" + (" (mean over members)" if B > 1 else "") + " at t = "
            + ", ".join(f"{t:.4g}" for t in times) + ": "
            + ", ".join(_fmt(v) for v in mean1), highlight=False)
    c.print("Δ last = largest change of an exponent between the last two checkpoints "
            f"(t = {', '.join(f'{t:.4g}' for t in times[-2:])}); it shrinks like 1/t.",
            highlight=False)
    change = report["convergence"]["max_last_change"]
    scale = float(np.nanmax(np.abs(E))) if np.isfinite(E).any() else 0.0
    if change is not None and change > 0.1 * scale + 1e-12:
        c.print(f"[yellow]not converged[/yellow]: the estimates still move by up to "
                f"{change:.3g} (the largest |λ| is {scale:.3g}); their error decays like 1/t, "
                "so raise --steps (or --transient) for a tighter answer.", highlight=False)
    tail = f"in {report['wall_time_s']:.1f} s"
    if files:
        c.print(f"wrote {escape(str(out))}/: {', '.join(files)} {tail}", highlight=False)
    else:
        c.print(f"measured {tail}", highlight=False)
