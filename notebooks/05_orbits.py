# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Periodic orbits: period against amplitude, Floquet multipliers, Poincaré sections
#
# A conservative skew network ($b = 0$, $\gamma = 0$) keeps a motion invariant $V$, so its
# orbits lie on level sets $V(x) = V_0$. `ox.periodic_orbit` finds a closed orbit by
# shooting (Newton on the point and the period, with a phase and a level condition) and
# returns its period and Floquet multipliers from the monodromy matrix.
#
# This notebook measures:
# 1. the period $T(V_0)$ of the post-tanh network in 2-D ($\omega = 1$) and with 8 units:
#    $T \to 2\pi/\omega$ as the amplitude shrinks (the linearisation), and grows as tanh
#    saturates;
# 2. the multipliers: on the unit circle (neutral families, reciprocal pairs);
# 3. a Poincaré section of the 8-unit network through one orbit's phase hyperplane;
# 4. the cycle forward Euler creates with diffusion (pre tanh, $h = 0.1$, $\gamma = 0.015$):
#    an orbit of the method's map with a multiplier inside the unit circle (attracting).

# %%
# %matplotlib inline
import time

_t_start = time.perf_counter()

import jax

jax.config.update("jax_enable_x64", True)  # float64: the orbit tolerances need it
import io

import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import PIL.Image
from IPython.display import Image, Markdown, display

import oscillax as ox

plt.rcParams.update({"figure.dpi": 80, "savefig.dpi": 80, "font.size": 9})


def show(fig, colors=128):
    # Display a figure as a palette PNG (a few tens of KB) and close it.
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    img = PIL.Image.open(buf).convert("RGB").quantize(colors)
    out = io.BytesIO()
    img.save(out, format="png", optimize=True)
    display(Image(out.getvalue()))


def report(bullets):
    # measured conclusions as a Markdown list, one string per bullet
    display(Markdown("\n".join("- " + " ".join(b.split()) for b in bullets)))


print("oscillax", ox.__version__, "| jax", jax.__version__, "|", jax.default_backend())

# %% [markdown]
# ## 1. Period against invariant level
#
# Starting guesses as in `oscillax orbits`: a point at each amplitude along the fastest
# eigen-mode of $A$, and a period from the upward zero crossings of that mode's coordinate
# along a short RK4 simulation. All amplitudes of one network are one batched call.

# %%
amps = np.array([0.01, 0.1, 0.3, 0.6, 1.0, 1.5, 2.0, 3.0])


def guesses(field, A, amps, dt=0.02):
    w, V = np.linalg.eig(np.asarray(A))
    k = int(np.argmax(w.imag))
    a = V[:, k].real / np.linalg.norm(V[:, k].real)
    X0 = amps[:, None] * a[None, :]
    traj = ox.simulate(field, jnp.asarray(X0), dt=dt, t1=3 * 2 * np.pi / w[k].imag * amps.max(),
                       solver="rk4")
    xs, ts = np.asarray(traj.xs), np.asarray(traj.ts)
    T0 = []
    for b in range(len(amps)):
        c = xs[b] @ X0[b]
        i = np.nonzero((c[:-1] <= 0) & (c[1:] > 0))[0]
        T0.append(np.mean(np.diff(ts[i] - c[i] * dt / (c[i + 1] - c[i]))))
    return X0, np.array(T0), float(w[k].imag)


nets = {
    "2-D, ω = 1": ox.skew_from_frequencies([1.0]),
    "8 units, random": ox.random_skew(jax.random.key(1), 8, spectral_radius=1.0),
}
results = {}
for name, A in nets.items():
    field = ox.PostActivation(A, "tanh")
    X0, T0, omega = guesses(field, A, amps)
    orb = ox.periodic_orbit(field, jnp.asarray(X0), jnp.asarray(T0))
    results[name] = dict(field=field, X0=X0, orb=orb, omega=omega,
                         V0=np.asarray(field.invariant(orb.x0)))
    print(f"{name}: converged {int(orb.converged.sum())}/{len(amps)}, "
          f"max residual {float(orb.residual.max()):.1e}")

fig, ax = plt.subplots(figsize=(6, 3.6))
for name, r in results.items():
    line, = ax.plot(r["V0"], r["orb"].period, "o-", label=name)
    ax.axhline(2 * np.pi / r["omega"], ls="--", lw=1, color=line.get_color())
ax.set(xscale="log", xlabel="invariant level $V_0$", ylabel="period $T$",
       title="post tanh: period of the orbit on each level set (dashed: $2\\pi/\\omega$)")
ax.legend()
fig.tight_layout()
show(fig)

r2 = results["2-D, ω = 1"]
through_10 = ox.periodic_orbit(r2["field"], jnp.array([1.0, 0.0]), 7.0)
report([
    f"""2-D: at amplitude {amps[0]:g} the period is {float(r2["orb"].period[0]):.6f},
    $2\\pi$ = {2 * np.pi:.6f}; at amplitude {amps[-1]:g} it is
    {float(r2["orb"].period[-1]):.3f}.""",
    f"""The orbit through (1, 0) has $T$ = {float(through_10.period):.12f}
    (THEORY.md: 7.714210439814), the same as the amplitude-1 start
    ({float(r2["orb"].period[4]):.12f}): the fastest mode's unit vector lies on that
    level set."""
])

# %% [markdown]
# ## 2. Floquet multipliers
#
# Every multiplier of a conservative post-form orbit lies on the unit circle here: the
# trivial one (along the flow), its partner across level sets (the neutral family), and
# for 8 units three reciprocal pairs $\mu, 1/\mu = \bar\mu$ that rotate with the amplitude.

# %%
r8 = results["8 units, random"]
fig, ax = plt.subplots(figsize=(4.2, 4.2))
th = np.linspace(0, 2 * np.pi, 400)
ax.plot(np.cos(th), np.sin(th), color="0.6", lw=1)
mu = np.asarray(r8["orb"].multipliers)
sc = ax.scatter(mu.real.ravel(), mu.imag.ravel(), c=np.repeat(amps, mu.shape[1]), s=16,
                cmap="viridis", norm=plt.matplotlib.colors.LogNorm())
fig.colorbar(sc, ax=ax, label="starting amplitude")
ax.set(aspect="equal", xlabel="Re μ", ylabel="Im μ", title="8 units: Floquet multipliers")
fig.tight_layout()
show(fig)
report([
    f"""8 units: max $||\\mu| - 1|$ over all {mu.size} multipliers =
    {np.max(np.abs(np.abs(mu) - 1)):.1e}; max trivial error
    {float(r8["orb"].trivial_error.max()):.1e}; max Liouville error
    {float(r8["orb"].liouville_error.max()):.1e}."""
])

# %% [markdown]
# ## 3. A Poincaré section
#
# The hyperplane through the amplitude-2 orbit point $x^*$, normal to the flow there. The
# periodic orbit returns to $x^*$ itself; the guess it started from lies on another
# trajectory of the same level set, which returns scattered around $x^*$ (a torus, for an
# 8-unit network). Points shown in two orthonormal coordinates of the section.

# %%
b = int(np.argmin(np.abs(amps - 2.0)))
xs_ = np.asarray(r8["orb"].x0[b])
f = np.asarray(r8["field"](0.0, jnp.asarray(xs_), None))
normal = f / np.linalg.norm(f)
kw = dict(normal=jnp.asarray(normal), offset=float(normal @ xs_), returns=200, t_max=5000.0)
sec_orbit = ox.poincare_map(r8["field"], jnp.asarray(xs_), **{**kw, "returns": 3})
sec = ox.poincare_map(r8["field"], jnp.asarray(r8["X0"][b]), **kw)
U = np.linalg.svd(np.eye(8) - np.outer(normal, normal))[0][:, :2]  # section coordinates
P = (np.asarray(sec.points)[: int(sec.found)] - xs_) @ U
fig, ax = plt.subplots(figsize=(4.2, 4.2))
ax.scatter(P[:, 0], P[:, 1], s=6, label=f"{int(sec.found)} returns of the guess")
ax.scatter([0], [0], marker="x", color="r", s=60, label="orbit point $x^*$")
ax.set(xlabel="$u_1 \\cdot (x - x^*)$", ylabel="$u_2 \\cdot (x - x^*)$",
       title="8 units: Poincaré section at amplitude 2")
ax.legend(fontsize=7)
fig.tight_layout()
show(fig)
report([
    f"""The periodic orbit's own returns: times {np.round(np.diff(np.r_[0, sec_orbit.times]), 9)}
    (period {float(r8["orb"].period[b]):.9f}), distance from $x^*$
    {np.max(np.linalg.norm(np.asarray(sec_orbit.points) - xs_, axis=1)):.1e}.""",
    f"""The guess's returns stay within {np.max(np.linalg.norm(P, axis=1)):.3f} of $x^*$
    (status {ox.SectionStatus(int(sec.status)).name})."""
])

# %% [markdown]
# ## 4. Forward Euler's cycle with diffusion
#
# Pre tanh with $A$ a rotation at $\omega = 0.5$ and diffusion $\gamma = 0.015$: the flow
# spirals into the origin, but forward Euler at $h = 0.1$ pumps energy in and the two
# balance on a closed curve. `solver="euler", dt=0.1` solves the fixed point of the
# method's return map; its non-trivial multiplier is inside the unit circle.

# %%
h, gamma = 0.1, 0.015
euler_field = ox.PreActivation(ox.skew(jnp.array([[0.0, -0.5], [0.5, 0.0]])), "tanh",
                               gamma=gamma)
traj = ox.simulate(euler_field, jnp.array([1.0, 0.0]), dt=h, steps=100_000, solver="euler",
                   save_every=10)
esec = ox.poincare_map(euler_field, traj.xs[-1], normal=jnp.array([0.0, 1.0]), returns=3,
                       solver="euler", dt=h)
T_guess = float(esec.times[2] - esec.times[1])
eorb = ox.periodic_orbit(euler_field, esec.points[2], T_guess, solver="euler", dt=h)
emu = complex(eorb.nontrivial[0])
cyc = ox.simulate(euler_field, eorb.x0, dt=h, t1=float(eorb.period), solver="euler")

xs_e = np.asarray(traj.xs)
fig, ax = plt.subplots(figsize=(4.2, 4.2))
ax.plot(xs_e[:, 0], xs_e[:, 1], lw=0.4, color="0.6", label="Euler path from (1, 0)")
ax.plot(np.asarray(cyc.xs)[:, 0], np.asarray(cyc.xs)[:, 1], color="C3", label="cycle")
ax.scatter(*np.asarray(eorb.x0), color="C3", zorder=3)
ax.set(aspect="equal", xlabel="x0", ylabel="x1", title="pre tanh, Euler h = 0.1, γ = 0.015")
ax.legend(fontsize=7)
fig.tight_layout()
show(fig)
report([
    f"""Status {ox.OrbitStatus(int(eorb.status)).name}, residual
    {float(eorb.residual):.1e}; period {float(eorb.period):.4f} (guess {T_guess:.4f},
    $2\\pi/0.5$ = {4 * np.pi:.4f}); cycle radius at the section
    {float(jnp.linalg.norm(eorb.x0)):.4f}.""",
    f"""Non-trivial multiplier $|\\mu|$ = {abs(emu):.4f} < 1: the cycle attracts, by a
    factor {abs(emu):.4f} per turn."""
])

# %%
print(f"notebook run time: {time.perf_counter() - _t_start:.1f} s wall, "
      f"{time.process_time():.1f} s CPU (kernel process)")
