# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Limit cycles in 2D: invariants, oddness and boundedness
#
# A skew-symmetric network $\dot x = \sigma(Ax)$ (pre-activation) or
# $\dot x = A\sigma(x)$ (post-activation), with $A^\top = -A$, conserves an exact motion
# invariant built from the antiderivative $\Phi$ of $\sigma$ ($\Phi(0) = 0$):
#
# | form | equation | invariant |
# |---|---|---|
# | pre  | $\dot x = \sigma(Ax)$  | $I(x) = \sum_i \Phi((Ax)_i)$ |
# | post | $\dot x = A\sigma(x)$  | $V(x) = \sum_i \Phi(x_i)$ |
#
# so every orbit stays on one level set of the invariant. This notebook draws, for
# **every built-in activation in both forms**, the orbits of a 2D network
# ($A$ = rotation generator at $\omega = 1$) on top of the level sets of
# `field.invariant`, and measures what each orbit does: closes into a cycle, escapes,
# or stops on a fixed point.
#
# The expectation (see `THEORY.md`): an **odd** $\sigma$ makes $\Phi$ even, the level
# sets are closed curves around the origin, and every orbit is a closed cycle. A
# **non-odd** $\sigma$ (relu, leaky relu, sigmoid, rectified tanh) still conserves the
# invariant, but its level sets open up, so conservation no longer confines the
# orbit: it escapes to infinity or runs into a fixed point.

# %%
# %matplotlib inline
import time

_t_start = time.perf_counter()

import jax

jax.config.update("jax_enable_x64", True)  # float64: drifts are measured down to ~1e-12
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import io

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
# The activations and their structural flags, as the library reports them:

# %%
props = pd.DataFrame(
    [
        dict(activation=a.name, odd=a.odd, bounded=a.bounded, continuous=a.continuous)
        for a in map(ox.get_activation, ox.ACTIVATIONS)
    ]
).set_index("activation")
props

# %% [markdown]
# ## Simulate every (form, activation) pair
#
# Eight initial states: five on a ray at 45° (radii 0.5 ... 2.5) and three at radius
# 1.5 in the other quadrants. RK4 with $h = 0.02$ up to $t = 40$ (a few periods): its
# invariant error is far below anything visible here, so what we see is the dynamics,
# not the solver.

# %%
A = ox.skew_from_frequencies([1.0])  # [[0, -1], [1, 0]]: rotation at omega = 1
radii = np.array([0.5, 1.0, 1.5, 2.0, 2.5, 1.5, 1.5, 1.5])
angles = np.array([0.25, 0.25, 0.25, 0.25, 0.25, 0.75, 1.25, 1.75]) * np.pi
x0 = np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
T, dt = 40.0, 0.02
FORMS = {"pre": ox.PreActivation, "post": ox.PostActivation}

runs = {}
for form, Field in FORMS.items():
    for name in ox.ACTIVATIONS:
        field = Field(A, name)
        runs[form, name] = field, ox.simulate(field, x0, dt=dt, t1=T, solver="rk4")
print(len(runs), "fields x", len(x0), "initial states simulated")


# %% [markdown]
# ## What each orbit does
#
# Measured per orbit, from the saved path:
# - **closed**: after moving away it passes through its start again (closest approach,
#   interpolated between samples, within $10^{-3}|x_0|$); the return time is its period;
# - **escaped**: $|x(T)| > 3|x_0|$;
# - **stopped**: its final speed $|\dot x(T)|$ is below $10^{-9}$ (a fixed point);
# - the relative drift of the invariant, $\max_t |I(t) - I(0)| / |I(0)|$.

# %%
def orbit_fate(field, traj, i):
    xs = np.asarray(traj.xs[i])
    ts = np.asarray(traj.ts)
    r0 = np.linalg.norm(xs[0])
    dist = np.linalg.norm(xs - xs[0], axis=1) / r0
    speed = float(np.linalg.norm(np.asarray(field(0.0, xs[-1]))))
    period = np.nan
    left = np.flatnonzero(dist > 0.2)  # it has moved away ...
    if left.size:
        d2 = dist**2
        for k in range(left[0] + 1, len(d2) - 1):  # ... first close approach after
            if d2[k] < 0.05**2 and d2[k] <= d2[k - 1] and d2[k] <= d2[k + 1]:
                d0, d1, d2_ = d2[k - 1], d2[k], d2[k + 1]
                c = d0 - 2 * d1 + d2_  # parabola through the 3 samples
                t_min = ts[k] + 0.5 * (ts[1] - ts[0]) * (d0 - d2_) / c
                if d1 - (d0 - d2_) ** 2 / (8 * c) < 1e-3**2:  # passes through x0
                    period = t_min
                break
    if np.isfinite(period):
        fate = "closed"
    elif np.linalg.norm(xs[-1]) > 3 * r0:
        fate = "escaped"
    elif speed < 1e-9:
        fate = "stopped"
    else:
        fate = "other"
    drift = float(np.max(np.asarray(traj.invariant_drift()[i])))
    return dict(fate=fate, period=period, final_norm=np.linalg.norm(xs[-1]),
                final_speed=speed, invariant_drift=drift)

rows = []
for (form, name), (field, traj) in runs.items():
    for i in range(len(x0)):
        rows.append(dict(form=form, activation=name, odd=props.loc[name, "odd"],
                         radius=radii[i], angle_deg=round(np.degrees(angles[i])),
                         **orbit_fate(field, traj, i)))
orbits = pd.DataFrame(rows)
fates = (orbits.groupby(["form", "activation", "fate"]).size()
         .unstack(fill_value=0).reindex(index=pd.MultiIndex.from_product(
             [list(FORMS), list(ox.ACTIVATIONS)]), fill_value=0))
fates["max invariant drift"] = orbits.groupby(["form", "activation"])[
    "invariant_drift"].max().reindex(fates.index)
fates

# %% [markdown]
# ## Phase portraits over the level sets of the invariant
#
# Background: filled contours of `field.invariant` on a grid (darker = larger).
# Dashed: the level sets through the initial states (dots). Coloured: the orbits. An
# orbit of a conserving solver must run along its dashed level set.

# %%
g = np.linspace(-3.5, 3.5, 101)
GX, GY = np.meshgrid(g, g)
grid_pts = np.stack([GX, GY], axis=-1)  # (101, 101, 2): invariant() is batched
colors = plt.cm.viridis(np.linspace(0, 0.9, len(x0)))


def portrait(form):
    fig, axes = plt.subplots(2, 5, figsize=(11, 4.9), sharex=True, sharey=True,
                             layout="constrained")
    for ax, name in zip(axes.ravel(), ox.ACTIVATIONS):
        field, traj = runs[form, name]
        V = np.asarray(field.invariant(grid_pts))
        ax.contourf(GX, GY, np.log1p(V - V.min()), levels=10, cmap="Greys", alpha=0.5)
        lv = np.unique(np.round(np.asarray(field.invariant(x0)), 10))
        lv = lv[lv > V.min() + 1e-9]
        if lv.size:
            ax.contour(GX, GY, V, levels=lv, colors="k", linewidths=0.6,
                       linestyles="--")
        xs = np.asarray(traj.xs)
        for i in range(len(x0)):
            ax.plot(xs[i, :, 0], xs[i, :, 1], color=colors[i], lw=1.2)
            ax.plot(*xs[i, 0], "o", color=colors[i], ms=3)
        a = ox.get_activation(name)
        flags = ("odd" if a.odd else "NOT odd") + (", bounded" if a.bounded else "")
        ax.set_title(f"{name}\n({flags})", fontsize=9,
                     color="k" if a.odd else "firebrick")
        ax.set_xlim(-3.5, 3.5)
        ax.set_ylim(-3.5, 3.5)
        ax.set_aspect("equal")
    eq = r"$\dot x = \sigma(Ax)$" if form == "pre" else r"$\dot x = A\sigma(x)$"
    fig.suptitle(f"{form}-activation form {eq}, A = rotation at omega = 1")
    return fig


show(portrait("pre"))

# %%
show(portrait("post"))

# %% [markdown]
# ## Period against amplitude (odd activations)
#
# A linear network rotates at $\omega = 1$ whatever the amplitude (period $2\pi$).
# A saturating $\sigma$ has $\sigma(x)/x < 1$ away from 0, so the same network turns
# more slowly on larger level sets: the period grows with amplitude. Periods measured
# by first return, for the five orbits on the 45° ray:

# %%
ray = orbits[(orbits.angle_deg == 45) & orbits.odd]
periods = ray.pivot_table(index=["form", "activation"], columns="radius",
                          values="period")
periods.columns = [f"r={r:g}" for r in periods.columns]
periods.round(3)

# %% [markdown]
# ## A non-odd exception: leaky relu
#
# Leaky relu's orbits left $3|x_0|$ above, but its $\Phi$ ($x^2/2$ for $x \ge 0$,
# $0.005\,x^2$ for $x < 0$) is still positive and grows in every direction, so its
# level sets (the dashed curves) are *closed*, only stretched by $1/\sqrt{0.01} = 10$
# on the negative side, where the flow is 100 times slower. What confines an orbit is
# a closed level set, which oddness guarantees but is not needed for. A long run
# settles it:

# %%
T_long = 1500.0
leaky_rows = []
for form, Field in FORMS.items():
    field = Field(A, "leaky_relu")
    traj = ox.simulate(field, x0[[0, 5]], dt=dt, t1=T_long, solver="rk4")
    for i, start in enumerate(["45 deg, r=1.5", "135 deg, r=1.5"]):
        leaky_rows.append(dict(form=form, start=start, **orbit_fate(field, traj, i)))
leaky_df = pd.DataFrame(leaky_rows)
leaky_df[["form", "start", "fate", "period", "invariant_drift"]]

# %% [markdown]
# ## Conclusions (measured above)

# %%
odd_names = [a for a in ox.ACTIVATIONS if props.loc[a, "odd"]]
open_names = [a for a in ox.ACTIVATIONS if not props.loc[a, "odd"] and a != "leaky_relu"]
o_odd = orbits[orbits.activation.isin(odd_names)]
o_open = orbits[orbits.activation.isin(open_names)]
# What the notebook claims, checked:
assert (o_odd.fate == "closed").all()
assert not (o_open.fate == "closed").any()
assert (leaky_df.fate == "closed").all()
lin = periods.xs("identity", level="activation")
assert np.allclose(lin.to_numpy(), 2 * np.pi, atol=1e-3)
tanh_p = periods.xs("tanh", level="activation")
assert (np.diff(tanh_p.to_numpy(), axis=1) > 0).all()

counts = o_open.fate.value_counts()
per_act = (o_open.groupby(["form", "activation"]).fate
           .agg(lambda s: ", ".join(f"{k} {v}" for k, v in s.value_counts().items())))
drift = orbits.groupby("activation").invariant_drift.max().sort_values()
lk = orbits[orbits.activation == "leaky_relu"]
leaky_stretch = (lk.final_norm / lk.radius).max()
report([
    f"""**Odd activations** ({", ".join(odd_names)}): all {len(o_odd)} orbits
    ({len(odd_names)} activations x 2 forms x {len(x0)} starts) are **closed
    cycles**: each passes through its start again, running along the level set it
    started on.""",
    f"""**{", ".join(open_names)}** (not odd; $\Phi$ flat or linear in some
    direction): none of the {len(o_open)} orbits closes. {counts.get("escaped", 0)}
    escape ($|x(T)| > 3|x_0|$ at $t = {T:g}$), {counts.get("stopped", 0)} stop on a
    fixed point, {counts.get("other", 0)} do neither. Per form and activation:
    {"; ".join(f"{f}/{a}: {s}" for (f, a), s in per_act.items())}. relu's
    $\Phi = \max(x, 0)^2/2$ is 0 on a whole quadrant (a quadrant of fixed points,
    where orbits stop) and its level sets are open (orbits leave along straight
    lines).""",
    f"""**leaky relu** is not odd either, yet its orbits are closed: within
    $t = {T_long:g}$ each of the {len(leaky_df)} tested returns to its start, with
    period {leaky_df.period.mean():.2f} (spread {np.ptp(leaky_df.period):.0e}; the
    field is positively homogeneous, so the period does not depend on amplitude)
    against $2\pi$ for the linear network. At $t = {T:g}$ they were out at up to
    {leaky_stretch:.1f}x their starting radius, which is what "escaped" measured.""",
    f"""The invariant is conserved in **every** run, escaping ones included: the
    largest relative drift over all {len(orbits)} orbits is
    {orbits.invariant_drift.max():.1e} (RK4, h = {dt}). It is largest where
    $\sigma$ has a kink and RK4 loses its order
    ({", ".join(f"{a} {v:.0e}" for a, v in drift.tail(4).items())}) and at most
    {drift.head(4).max():.0e} for {", ".join(drift.head(4).index)}. Non-odd
    activations do not break conservation; they break the closedness of the level
    sets.""",
    f"""Boundedness changes the *speed*: the linear network turns with period
    {lin.to_numpy().mean():.4f} ($2\pi$ = {2 * np.pi:.4f}) at every amplitude,
    while tanh's period grows from {tanh_p.iloc[0, 0]:.2f} (r = 0.5) to
    {tanh_p.iloc[0, -1]:.2f} (r = 2.5): a saturating $\sigma$ bounds the speed
    $|\dot x|$ however large the state. hardtanh is linear, with period $2\pi$,
    while every $|x_i| \le 1$ (r = 0.5 and 1 on the 45° ray).""",
])

# %%
print(f"notebook run time: {time.perf_counter() - _t_start:.1f} s wall, "
      f"{time.process_time():.1f} s CPU (kernel process)")
