"""The implementations compared: oscillax and its peers, each written the way a user would.

Every function takes a `Problem` and returns a `Prepared` (see `_harness`). Heavy imports
(jax, diffrax, torch, scipy) happen inside the functions, so a missing optional peer only
skips its own rows.

Vector fields (sigma = tanh, gamma = 0, b = 0):
- pre:  dx/dt = tanh(A x)
- post: dx/dt = A tanh(x)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ._harness import Prepared

PEER_THREADS: int | None = None  # set by `--peer-threads`; None: the libraries' defaults


def _torch_threads():
    import torch

    if PEER_THREADS is not None:
        torch.set_num_threads(PEER_THREADS)
    return torch.get_num_threads()


@dataclass
class Problem:
    """Inputs shared by every implementation of a workload (float32 numpy arrays).

    - `A`: skew `(n, n)`; `x0`: `(B, n)`; `dt`, `steps`: forward Euler.
    - `form`: `"pre"` or `"post"` (activation tanh).
    - `dts`, `steps_list`: atlas slice, one run per step size over the same horizon.
    - `W`, `target`, `save_every`: gradient workload, `A = W - W.T`, target `(B, T, n)`.
    - `small_batch`: trajectories for the scipy adaptive reference.
    """

    A: np.ndarray
    x0: np.ndarray
    dt: float
    steps: int
    form: str = "pre"
    dts: tuple = ()
    steps_list: tuple = ()
    W: np.ndarray | None = None
    target: np.ndarray | None = None
    save_every: int = 1
    small_batch: int = 8

    @property
    def n(self) -> int:
        return self.A.shape[0]

    @property
    def batch(self) -> int:
        return self.x0.shape[0]


# ------------------------------------------------------------------------------ oscillax


def _ox_field(A, form):
    import oscillax as ox

    cls = ox.PreActivation if form == "pre" else ox.PostActivation
    return cls(A, "tanh")


def oscillax_final(p: Problem) -> Prepared:
    """`ox.simulate(..., save_every=steps)`: only x0 and the final state are kept."""
    import jax.numpy as jnp

    import oscillax as ox

    field = _ox_field(jnp.asarray(p.A), p.form)
    x0 = jnp.asarray(p.x0)

    def run():
        return ox.simulate(field, x0, dt=p.dt, steps=p.steps, save_every=p.steps).final

    return Prepared(run)


def oscillax_atlas(p: Problem) -> Prepared:
    """One `simulate` per step size (each step count is a separate compilation)."""
    import jax.numpy as jnp

    import oscillax as ox

    field = _ox_field(jnp.asarray(p.A), p.form)
    x0 = jnp.asarray(p.x0)

    def run():
        return [
            ox.simulate(field, x0, dt=dt, steps=s, save_every=s).final
            for dt, s in zip(p.dts, p.steps_list)
        ]

    return Prepared(run, to_numpy=lambda out: np.stack([np.asarray(o) for o in out]))


def oscillax_grad(p: Problem) -> Prepared:
    """`jax.grad` of the trajectory MSE w.r.t. W, through `ox.simulate`, jitted."""
    import jax
    import jax.numpy as jnp

    import oscillax as ox

    W, x0, target = (jnp.asarray(a) for a in (p.W, p.x0, p.target))

    def loss(W):
        field = _ox_field(ox.skew(W), p.form)
        xs = ox.simulate(field, x0, dt=p.dt, steps=p.steps, save_every=p.save_every).xs
        return jnp.mean((xs - target) ** 2)

    grad = jax.jit(jax.grad(loss))
    return Prepared(lambda: grad(W))


def _sweep_setup(p: Problem):
    """Field, solver, `(n, B)` states and squared thresholds as `oscillax._sweep` builds them
    for `integrate_monitored` (here with one shared A, as the other implementations)."""
    import jax.numpy as jnp

    from oscillax._solver import FIXED_SOLVERS

    field = _ox_field(jnp.asarray(p.A), p.form)
    X0 = np.ascontiguousarray(p.x0.T)
    norm0 = np.linalg.norm(X0.astype(np.float64), axis=0)
    thr = 1e6 * np.maximum(norm0, 1.0)
    thr = np.minimum(thr, np.finfo(np.float32).max).astype(np.float32)
    return field, FIXED_SOLVERS["euler"], jnp.asarray(X0), jnp.asarray(thr)


def _monitored(B: int):
    """The sweep's engine call, as `ox.sweep` makes it: `integrate_monitored` on one device,
    or under `shard_map` over all local devices when there are several (and they divide B);
    the note says which."""
    import jax

    from oscillax import _distributed, _sweep

    place = _distributed.default_place()
    if place is None or B % place.device_count:
        return (lambda *a: _sweep.integrate(None, *a)), (lambda x, ax: x), "1 device"
    note = f"{place.device_count} {jax.default_backend()} devices"
    return (lambda *a: _sweep.integrate(place, *a)), place, note


def oscillax_sweep_final(p: Problem) -> Prepared:
    """The atlas engine `oscillax._monitor.integrate_monitored`: streaming monitors (max
    norm, invariant drift, crossings, growth-rate sums), no stored path; its defaults
    (divergence test every 32 steps, 64 invariant samples per trajectory)."""
    import jax.numpy as jnp

    field, solver, X0, thr = _sweep_setup(p)
    B = p.batch
    call, place, where = _monitored(B)
    X0, thr = place(X0, 1), place(thr, 0)
    h = place(jnp.full((B,), p.dt, jnp.float32), 0)
    steps = place(jnp.full((B,), p.steps, jnp.int32), 0)

    def run():
        return call(field, solver, X0, h, steps, thr).X

    return Prepared(run, to_numpy=lambda X: np.asarray(X).T, note=where)


def oscillax_sweep_atlas(p: Problem) -> Prepared:
    """`integrate_monitored` once per step size; step counts are traced, so one compile."""
    import jax.numpy as jnp

    field, solver, X0, thr = _sweep_setup(p)
    B = p.batch
    call, place, where = _monitored(B)
    X0, thr = place(X0, 1), place(thr, 0)
    args = [(place(jnp.full((B,), dt, jnp.float32), 0), place(jnp.full((B,), s, jnp.int32), 0))
            for dt, s in zip(p.dts, p.steps_list)]

    def run():
        return [call(field, solver, X0, h, steps, thr).X for h, steps in args]

    return Prepared(run, to_numpy=lambda out: np.stack([np.asarray(X).T for X in out]),
                    note=where)


# ------------------------------------------------------------------------------- diffrax


def _jax_vf(form):
    import jax.numpy as jnp

    if form == "pre":
        return lambda t, y, A: jnp.tanh(A @ y)
    return lambda t, y, A: A @ jnp.tanh(y)


def diffrax_final(p: Problem, compiler_options: dict | None = None) -> Prepared:
    """Hand-written `jax.jit(jax.vmap(diffeqsolve(..., Euler(), SaveAt(t1=True))))`;
    `compiler_options` go to that `jax.jit` (to compare under the engine's own options)."""
    import diffrax
    import jax
    import jax.numpy as jnp

    term = diffrax.ODETerm(_jax_vf(p.form))
    t1 = p.steps * p.dt

    @functools.partial(jax.jit, compiler_options=compiler_options)
    def solve(A, x0):
        def one(y0):
            sol = diffrax.diffeqsolve(
                term, diffrax.Euler(), t0=0.0, t1=t1, dt0=p.dt, y0=y0, args=A,
                saveat=diffrax.SaveAt(t1=True), max_steps=p.steps + 1,
            )
            return sol.ys[-1]

        return jax.vmap(one)(x0)

    A, x0 = jnp.asarray(p.A), jnp.asarray(p.x0)
    return Prepared(lambda: solve(A, x0))


def diffrax_final_engine_options(p: Problem) -> Prepared:
    """`diffrax_final` compiled with the options oscillax's engine is compiled with."""
    from oscillax._monitor import ENGINE_COMPILER_OPTIONS

    return diffrax_final(p, compiler_options=ENGINE_COMPILER_OPTIONS)


def diffrax_atlas(p: Problem) -> Prepared:
    """One jitted vmap with `dt` traced: a single compilation serves every step size."""
    import diffrax
    import jax
    import jax.numpy as jnp

    term = diffrax.ODETerm(_jax_vf(p.form))
    T = p.steps_list[0] * p.dts[0]

    @jax.jit
    def solve(A, x0, dt):
        def one(y0):
            sol = diffrax.diffeqsolve(
                term, diffrax.Euler(), t0=0.0, t1=T, dt0=dt, y0=y0, args=A,
                saveat=diffrax.SaveAt(t1=True), max_steps=max(p.steps_list) + 1,
            )
            return sol.ys[-1]

        return jax.vmap(one)(x0)

    A, x0 = jnp.asarray(p.A), jnp.asarray(p.x0)
    dts = [jnp.asarray(dt, jnp.float32) for dt in p.dts]

    def run():
        return [solve(A, x0, dt) for dt in dts]

    return Prepared(run, to_numpy=lambda out: np.stack([np.asarray(o) for o in out]))


def diffrax_grad(p: Problem) -> Prepared:
    """`jax.grad` through `vmap(diffeqsolve(..., SaveAt(ts=...)))` (checkpointed adjoint)."""
    import diffrax
    import jax
    import jax.numpy as jnp

    term = diffrax.ODETerm(_jax_vf(p.form))
    n_saved = p.target.shape[1]
    ts = jnp.arange(n_saved, dtype=jnp.float32) * (p.save_every * p.dt)
    W, x0, target = (jnp.asarray(a) for a in (p.W, p.x0, p.target))

    def loss(W):
        A = W - W.T

        def one(y0):
            sol = diffrax.diffeqsolve(
                term, diffrax.Euler(), t0=0.0, t1=ts[-1], dt0=p.dt, y0=y0, args=A,
                saveat=diffrax.SaveAt(ts=ts), max_steps=p.steps + 1,
            )
            return sol.ys

        xs = jax.vmap(one)(x0)
        return jnp.mean((xs - target) ** 2)

    grad = jax.jit(jax.grad(loss))
    return Prepared(lambda: grad(W))


# --------------------------------------------------------------------------------- numpy


def _numpy_loop(A, x0, dt, steps, form):
    AT = np.ascontiguousarray(A.T)
    dt = np.float32(dt)
    X = x0.copy()
    if form == "pre":
        for _ in range(steps):
            X = X + dt * np.tanh(X @ AT)
    else:
        for _ in range(steps):
            X = X + dt * (np.tanh(X) @ AT)
    return X


def numpy_final(p: Problem) -> Prepared:
    """A python loop over steps, each step vectorised over the batch `(B, n)`."""
    return Prepared(lambda: _numpy_loop(p.A, p.x0, p.dt, p.steps, p.form))


def numpy_atlas(p: Problem) -> Prepared:
    def run():
        return np.stack(
            [_numpy_loop(p.A, p.x0, dt, s, p.form) for dt, s in zip(p.dts, p.steps_list)]
        )

    return Prepared(run)


# --------------------------------------------------------------------------------- torch


def _torch_vf(AT, form):
    import torch

    if form == "pre":
        return lambda t, y: torch.tanh(y @ AT)
    return lambda t, y: torch.tanh(y) @ AT


def _torch_final(A, x0, dt, steps, form):
    import torch
    from torchdiffeq import odeint

    t = torch.tensor([0.0, steps * dt], dtype=torch.float32)
    with torch.no_grad():
        return odeint(_torch_vf(A.T, form), x0, t, method="euler",
                      options=dict(step_size=dt))[-1]


def torch_final(p: Problem) -> Prepared:
    """`torchdiffeq.odeint(method="euler")`, the whole batch as one `(B, n)` state."""
    import torch

    A, x0 = torch.from_numpy(p.A), torch.from_numpy(p.x0)
    return Prepared(
        lambda: _torch_final(A, x0, p.dt, p.steps, p.form),
        note=f"{_torch_threads()} threads",
        to_numpy=lambda out: out.numpy(),
    )


def torch_atlas(p: Problem) -> Prepared:
    import torch

    _torch_threads()
    A, x0 = torch.from_numpy(p.A), torch.from_numpy(p.x0)

    def run():
        return [_torch_final(A, x0, dt, s, p.form) for dt, s in zip(p.dts, p.steps_list)]

    return Prepared(run, to_numpy=lambda out: np.stack([o.numpy() for o in out]))


def torch_grad(p: Problem) -> Prepared:
    """Backpropagation through `torchdiffeq.odeint(method="euler")` (autograd, no adjoint)."""
    import torch
    from torchdiffeq import odeint

    _torch_threads()
    W = torch.tensor(p.W, requires_grad=True)
    x0, target = torch.from_numpy(p.x0), torch.from_numpy(p.target)
    n_saved = p.target.shape[1]
    ts = torch.arange(n_saved, dtype=torch.float32) * (p.save_every * p.dt)

    def run():
        A = W - W.T
        xs = odeint(_torch_vf(A.T, p.form), x0, ts, method="euler",
                    options=dict(step_size=p.dt))  # (T, B, n)
        loss = torch.mean((xs.transpose(0, 1) - target) ** 2)
        (g,) = torch.autograd.grad(loss, W)
        return g

    return Prepared(run, to_numpy=lambda g: g.numpy())


# --------------------------------------------------------------------------------- scipy


def scipy_final(p: Problem) -> Prepared:
    """Adaptive RK45 (`solve_ivp`, rtol 1e-6, atol 1e-9, float64), one trajectory at a time,
    on a small batch spread over the workload's initial states. Traj-steps are its
    accepted steps; it is a reference for accuracy and cost per step, not the same work."""
    from scipy.integrate import solve_ivp

    B = p.batch
    bs = min(p.small_batch, B)
    idx = np.arange(bs) * (B // bs)
    A = p.A.astype(np.float64)
    if p.form == "pre":
        f = lambda t, y: np.tanh(A @ y)
    else:
        f = lambda t, y: A @ np.tanh(y)
    T = p.steps * p.dt

    def run():
        finals, accepted = [], 0
        for i in idx:
            sol = solve_ivp(f, (0.0, T), p.x0[i].astype(np.float64), method="RK45",
                            rtol=1e-6, atol=1e-9)
            finals.append(sol.y[:, -1])
            accepted += len(sol.t) - 1
        return np.stack(finals), accepted

    return Prepared(
        run,
        note=f"adaptive RK45 on {bs} traj.",
        to_numpy=lambda out: out[0],
        traj_steps_from_result=lambda out: out[1],
        subset=idx,
    )
