# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Forward Euler on skew networks: why bounded activations help
#
# Forward Euler, $x_{k+1} = x_k + h f(x_k)$, is what a discrete RNN cell does. On the
# linear skew system $\dot x = Ax$ it multiplies every eigen-pair $\pm i\omega$ by
# $|1 + ih\omega| = \sqrt{1 + h^2\omega^2} > 1$ **per step**, so it diverges
# exponentially for every $h > 0$, like $e^{t\,h\omega^2/2}$ for small $h$. With a
# saturating $\sigma$ the energy error per step, about
# $\tfrac{h^2}{2}\sum_i \sigma'(\cdot)\,(\ldots)^2$, vanishes wherever $\sigma$
# saturates, so the invariant drifts but only slowly.
#
# This notebook measures:
# 1. linear vs tanh-like vs non-odd activations under Euler: $|x(t)|$ and the drift
#    of the invariant over time;
# 2. the per-step growth of the linear system against $\sqrt{1 + h^2\omega^2}$ (and
#    the other fixed-step solvers against `ox.amplification`), asserted to agree;
# 3. a small stability atlas (`ox.sweep`) with the theory overlaid: Euler's
#    measured growth rate against `theory_rate`, and RK4's $|h\omega| = 2\sqrt2$
#    boundary.

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
# ## 1. Linear vs tanh-like vs non-odd
#
# 2D pre-activation network, $A$ = rotation at $\omega = 1$, $x_0 = (1, 0)$, Euler up
# to $t = 200$ at $h = 0.01, 0.1, 0.5$. `divergence_threshold=inf` lets the linear
# runs grow as far as float64 goes, instead of freezing them at $10^6|x_0|$.

# %%
A = ox.skew_from_frequencies([1.0])
x0 = jnp.array([1.0, 0.0])
T = 200.0
hs = [0.01, 0.1, 0.5]
acts = ["identity", "tanh", "hardtanh", "softsign", "relu", "sigmoid"]

euler = {}
for name in acts:
    field = ox.PreActivation(A, name)
    for h in hs:
        euler[name, h] = ox.simulate(field, x0, dt=h, t1=T, solver="euler",
                                     save_every=max(1, round(0.25 / h)),
                                     divergence_threshold=np.inf)

final = pd.DataFrame(
    {f"h={h}": [float(jnp.linalg.norm(euler[a, h].final)) for a in acts] for h in hs},
    index=pd.Index(acts, name=f"|x(T={T:g})|"),
)
final.map(lambda v: f"{v:.3g}")

# %%
fig, axes = plt.subplots(1, 3, figsize=(11, 3.2), sharey=True, layout="constrained")
for ax, h in zip(axes, hs):
    for name in acts:
        tr = euler[name, h]
        ax.semilogy(tr.ts, jnp.linalg.norm(tr.xs, axis=-1), label=name,
                    ls="-" if ox.get_activation(name).odd else "--")
    ax.set_title(f"forward Euler, h = {h}")
    ax.set_xlabel("t")
axes[0].set_ylabel("|x(t)|")
axes[0].legend(fontsize=8)
show(fig)

# %% [markdown]
# **Drift of the invariant.** Relative drift $|I(t) - I(0)|/|I(0)|$ at $h = 0.1$, on
# log-log axes: an exponential shoots up, a power law is a straight line. For the
# saturating activations we also fit the late-time power law
# $|x(t)| \propto t^{p}$ on $t \in [T/4, T]$.

# %%
h = 0.1
fig, axes = plt.subplots(1, 2, figsize=(11, 3.4), layout="constrained")
for name in acts:
    tr = euler[name, h]
    ls = "-" if ox.get_activation(name).odd else "--"
    axes[0].loglog(tr.ts[1:], tr.invariant_drift()[1:], ls=ls, label=name)
axes[0].set_xlabel("t")
axes[0].set_ylabel("|I(t) - I(0)| / |I(0)|")
axes[0].set_title(f"invariant drift, Euler h = {h}")
axes[0].legend(fontsize=8)

rows = []
for name in ["identity", "tanh", "hardtanh", "softsign"]:
    for hh in hs:
        tr = euler[name, hh]
        t, r = np.asarray(tr.ts), np.asarray(jnp.linalg.norm(tr.xs, axis=-1))
        late = t >= T / 4
        p = np.polyfit(np.log(t[late]), np.log(r[late]), 1)[0]
        # exponential rate of the first and second half: equal for an exponential
        half = len(t) // 2
        r1 = np.log(r[half] / r[0]) / t[half]
        r2 = np.log(r[-1] / r[half]) / (t[-1] - t[half])
        rows.append(dict(activation=name, h=hh, power_p=p, rate_first_half=r1,
                         rate_second_half=r2))
growth = pd.DataFrame(rows)
for name in ["tanh", "hardtanh", "softsign"]:
    g = growth[growth.activation == name]
    axes[1].semilogx(g.h, g.power_p, "o-", label=name)
axes[1].axhline(0.5, color="0.5", lw=0.8, ls=":")
axes[1].set_xlabel("h")
axes[1].set_ylabel("p in |x| ~ t^p, t in [T/4, T]")
axes[1].set_title("late-time growth exponent (saturating activations)")
axes[1].legend(fontsize=8)
show(fig)
growth.round(4)

# %% [markdown]
# ## 2. Per-step growth of the linear system: measured vs theory
#
# $A$ with two oscillator pairs, $\omega = 1$ and $2.5$, one unit of amplitude in
# each. Each fixed-step solver maps a 2D eigen-block by its stability function
# $R(ih\omega)$, so the norm of block $k$ is multiplied by exactly $|R(ih\omega_k)|$
# every step. We measure it as $(|x^{(k)}_N| / |x^{(k)}_0|)^{1/N}$ over $N = 20$ steps
# (`steps` fixed, only `dt` changes, so each solver compiles once) and compare with
# `ox.euler_growth` and `ox.amplification`.

# %%
omegas = np.array([1.0, 2.5])
A2 = ox.skew_from_frequencies(omegas)
field2 = ox.PreActivation(A2, "identity")
x0_2 = jnp.array([1.0, 0.0, 1.0, 0.0])
N = 20
h_grid = np.logspace(-2.5, np.log10(1.6), 15)
solvers = ["euler", "heun", "rk4", "implicit_midpoint"]

rows = []
for solver in solvers:
    for h in h_grid:
        tr = ox.simulate(field2, x0_2, dt=h, steps=N, solver=solver, save_every=N,
                         divergence_threshold=np.inf)
        xs = np.asarray(tr.xs)
        for k, w in enumerate(omegas):
            blk = slice(2 * k, 2 * k + 2)
            g = (np.linalg.norm(xs[-1, blk]) / np.linalg.norm(xs[0, blk])) ** (1 / N)
            rows.append(dict(solver=solver, h=h, omega=w, hw=h * w, measured=g,
                             theory=float(ox.amplification(solver, h, w))))
amp = pd.DataFrame(rows)
amp["rel_err"] = np.abs(amp.measured / amp.theory - 1)
eu = amp[amp.solver == "euler"]
# the Euler claim, checked: measured per-step growth = sqrt(1 + h^2 w^2)
np.testing.assert_allclose(eu.measured, ox.euler_growth(eu.h, eu.omega), rtol=1e-10)
np.testing.assert_allclose(amp.measured, amp.theory, rtol=1e-10)
amp.groupby("solver").rel_err.max().to_frame("max |measured/theory - 1|")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), layout="constrained")
ax = axes[0]
hw = np.logspace(-2.6, 0.7, 200)
ax.loglog(hw, ox.euler_growth(hw, 1.0) - 1, "k-", lw=1, label="sqrt(1 + h²ω²) - 1")
for w, mk in zip(omegas, "os"):
    e = eu[eu.omega == w]
    ax.loglog(e.hw, e.measured - 1, mk, mfc="none", label=f"measured, ω = {w}")
ax.set_xlabel("hω")
ax.set_ylabel("per-step growth - 1")
ax.set_title("forward Euler on the linear skew system")
ax.legend(fontsize=8)

ax = axes[1]
lim = ox.stability_limit("rk4")
for i, solver in enumerate(["heun", "rk4", "implicit_midpoint"]):
    s = amp[amp.solver == solver]
    theory = np.abs(np.log(ox.amplification(solver, hw, 1.0)))
    # below ~1e-15 it is float64 rounding: drawn at the 1e-16 floor
    ax.loglog(hw, np.where(theory < 1e-15, 1e-16, theory), color=f"C{i}", lw=1)
    meas = np.abs(np.log(s.measured))
    ax.loglog(s.hw, np.where(meas < 1e-15, 1e-16, meas), "o", mfc="none",
              color=f"C{i}", label=solver)
ax.axvline(lim, color="C1", ls="--", lw=0.8)
ax.text(lim, 1e-12, "|hω| = 2√2 \n(rk4 limit) ", color="C1", fontsize=8, ha="right")
ax.set_ylim(3e-17, 10)
ax.set_xlabel("hω")
ax.set_ylabel("|log |R(ihω)||  per step (floor 1e-16)")
ax.set_title("other solvers (lines: ox.amplification)")
ax.legend(fontsize=8, loc="upper left")
show(fig)

# %% [markdown]
# ## 3. A small stability atlas with the theory overlaid
#
# `ox.sweep` over the pre form, three activations (linear, tanh, non-odd sigmoid),
# Euler and RK4, ten step sizes from 0.01 to 4, $n = 2$, horizon $T = 40$. Each row
# is classified (conserved / drifting / diverged / escaped / collapsed) from streaming
# monitors; `theory_rate` is the linear theory's growth rate of $|x|^2$,
# $2\log|R(ih\omega)|/h$ with $\omega$ = the spectral radius.

# %%
spec = ox.SweepSpec(
    forms=("pre",), activations=("identity", "tanh", "sigmoid"),
    solvers=("euler", "rk4"),
    dts=tuple(float(d) for d in np.logspace(-2, np.log10(4.0), 10)),
    dims=(2,), amplitudes=(1.0,), seeds=1, spectral_radius=1.0, horizon=40.0,
    dtype="float64",
)
t0 = time.perf_counter()
res = ox.sweep(spec)
atlas = res.to_dataframe()
print(f"{len(atlas)} trajectories, {int(atlas.steps.sum())} steps in "
      f"{time.perf_counter() - t0:.1f} s")
atlas.pivot_table(index=["activation", "solver"], columns="dt", values="status",
                  aggfunc="first").rename(columns=lambda d: f"{d:.3g}")

# %%
STATUS_COLORS = {"conserved": "#4daf4a", "drifting": "#ffd92f", "diverged": "#e41a1c",
                 "escaped": "#984ea3", "collapsed": "#377eb8"}
rk4_dt = ox.stability_limit("rk4") / spec.spectral_radius
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), layout="constrained",
                         gridspec_kw={"width_ratios": [1.1, 1]})
ax = axes[0]
lin = atlas[atlas.activation == "identity"]
dd = np.logspace(-2.1, np.log10(4.5), 200)
for i, solver in enumerate(spec.solvers):
    s = lin[lin.solver == solver]
    th = 2 * np.log(ox.amplification(solver, dd, spec.spectral_radius)) / dd
    ax.loglog(dd, np.abs(th), color=f"C{i}", lw=1, label=f"{solver}: |theory_rate|")
    pos = s.growth_rate > 0
    ax.loglog(s.dt[pos], s.growth_rate[pos], "o", color=f"C{i}",
              label=f"{solver}: measured > 0")
    ax.loglog(s.dt[~pos], -s.growth_rate[~pos], "v", mfc="none", color=f"C{i}",
              label=f"{solver}: measured < 0 (decay)")
ax.axvline(rk4_dt, color="C1", ls="--", lw=0.8)
ax.text(rk4_dt, 1e-3, "2√2/ω ", ha="right", color="C1", fontsize=8)
ax.set_xlabel("dt")
ax.set_ylabel("|growth rate of |x|²| per unit time")
ax.set_title("linear network: sweep growth_rate vs theory_rate")
ax.legend(fontsize=7, loc="lower right")

ax = axes[1]
rows_ = [(a, s) for a in spec.activations for s in spec.solvers]
names = list(STATUS_COLORS)
grid = np.array([[names.index(atlas[(atlas.activation == a) & (atlas.solver == s)
                                    & (atlas.dt == d)].status.iloc[0])
                  for d in spec.dts] for a, s in rows_])
cmap = plt.matplotlib.colors.ListedColormap(list(STATUS_COLORS.values()))
ax.imshow(grid, cmap=cmap, vmin=-0.5, vmax=len(names) - 0.5, aspect="auto")
ax.set_yticks(range(len(rows_)), [f"{a} / {s}" for a, s in rows_])
ax.set_xticks(range(len(spec.dts)), [f"{d:.2g}" for d in spec.dts], rotation=60)
ax.axvline(np.interp(np.log(rk4_dt), np.log(spec.dts), np.arange(len(spec.dts))),
           color="k", ls="--", lw=0.8)
for nm, c in STATUS_COLORS.items():
    ax.plot([], [], "s", color=c, label=nm)
ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1, 1))
ax.set_xlabel("dt (dashed: rk4 limit 2√2/ω)")
ax.set_title("status map (pre form, n = 2)")
show(fig)

# %% [markdown]
# ## Conclusions (measured above)

# %%
nx = {k: float(jnp.linalg.norm(tr.final)) for k, tr in euler.items()}
g = growth.set_index(["activation", "h"])
eu_lin = lin[lin.solver == "euler"]
free = eu_lin.diverged_at < 0  # rows not stopped at the divergence threshold
stopped = eu_lin[~free]
rate_err = np.abs(eu_lin.growth_rate[free] / eu_lin.theory_rate[free] - 1).max()
rk_lin = lin[lin.solver == "rk4"]
rk_bad = rk_lin[rk_lin.status == "diverged"].dt


def counts(rows):
    return ", ".join(f"{k} {v}" for k, v in rows.status.value_counts().items())

# claims, checked
assert rate_err < 0.02
assert (rk_bad > rk4_dt).all() and (rk_lin[rk_lin.dt < rk4_dt].status != "diverged").all()
assert all(nx["tanh", h] < nx["identity", h] for h in hs)
assert all(g.loc[("tanh", h), "power_p"] < 1 for h in hs)

report([
    f"""Under forward Euler the **linear** network grows exponentially at every step
    size: $|x(T = {T:g})|$ = {nx["identity", 0.01]:.3g}, {nx["identity", 0.1]:.3g},
    {nx["identity", 0.5]:.3g} for h = 0.01, 0.1, 0.5, and the growth rate of
    $\log|x|$ is the same in both halves of the run (h = 0.1:
    {g.loc[("identity", 0.1), "rate_first_half"]:.4f} vs
    {g.loc[("identity", 0.1), "rate_second_half"]:.4f}; theory
    $\log\sqrt{{1 + h^2}}/h$ = {np.log(ox.euler_growth(0.1, 1.0)) / 0.1:.4f}).""",
    f"""**Saturating odd activations only drift**: tanh reaches
    {nx["tanh", 0.01]:.3g}, {nx["tanh", 0.1]:.3g}, {nx["tanh", 0.5]:.3g}; hardtanh
    {nx["hardtanh", 0.01]:.3g}, {nx["hardtanh", 0.1]:.3g}, {nx["hardtanh", 0.5]:.3g};
    softsign {nx["softsign", 0.01]:.3g}, {nx["softsign", 0.1]:.3g},
    {nx["softsign", 0.5]:.3g}. The growth is sub-exponential: the late-time
    power law $|x| \propto t^p$ has p = {", ".join(f"{g.loc[('tanh', h), 'power_p']:.2f}"
    for h in hs)} for tanh (h = {", ".join(map(str, hs))}), and its exponential rate
    falls from {g.loc[("tanh", 0.1), "rate_first_half"]:.4f} (first half) to
    {g.loc[("tanh", 0.1), "rate_second_half"]:.4f} (second half) at h = 0.1. At
    h = 0.5 the exponent is {", ".join(f"{a} {g.loc[(a, 0.5), 'power_p']:.2f}" for a in
    ["tanh", "hardtanh", "softsign"])}: roughly $|x| \sim \sqrt{{t}}$.""",
    f"""**Non-odd activations** leave regardless of the step: relu's orbit from
    $x_0$ runs off along a straight line ($|x(T)|$ = {nx["relu", 0.01]:.1f} at every
    h, where Euler is exact because $\sigma(Ax)$ is constant along it), sigmoid's to
    {nx["sigmoid", 0.01]:.0f} to {nx["sigmoid", 0.5]:.0f}.""",
    f"""**Per-step growth**: over {len(eu)} (h, ω) pairs, Euler's measured growth per
    step equals $\sqrt{{1 + h^2\omega^2}}$ to {eu.rel_err.max():.1e} relative
    error, and heun, rk4 and implicit midpoint match `ox.amplification` to
    {amp.rel_err.max():.1e} (implicit midpoint: |R| - 1 at most
    {np.abs(amp[amp.solver == "implicit_midpoint"].measured - 1).max():.0e}).""",
    f"""**Atlas**: the sweep's `growth_rate` of the linear Euler runs equals
    `theory_rate` to {rate_err:.1e} for the {int(free.sum())} runs that finish;
    the {len(stopped)} stopped at the divergence threshold (dt >=
    {stopped.dt.min():.2g}) read {100 * (1 - (stopped.growth_rate /
    stopped.theory_rate).min()):.0f}% low at most (their rate is a mean up to the
    stop). Every linear Euler run is classified
    {"/".join(sorted(set(eu_lin.status)))}. Linear RK4 diverges only for
    dt = {", ".join(f"{d:.3g}" for d in rk_bad)}, beyond its limit
    $2\sqrt2/\omega$ = {rk4_dt:.3f}, and decays (rate < 0) below it.""",
    f"""tanh under Euler is
    {counts(atlas[(atlas.activation == "tanh") & (atlas.solver == "euler")])}
    across the 10 step sizes, never exponentially diverged; sigmoid is
    {counts(atlas[atlas.activation == "sigmoid"])}
    with either solver: the non-odd activation fails regardless of the solver.""",
])

# %%
print(f"notebook run time: {time.perf_counter() - _t_start:.1f} s wall, "
      f"{time.process_time():.1f} s CPU (kernel process)")
