"""The plan of a sweep: the grid of trajectories and its deterministic cut into chunks.

One compiled program serves every (form, activation) of a dimension and solver
(`BatchField`): a chunk holds `width` trajectories of each (form, activation) segment,
the same (dt, amplitude, gamma, bias, seed) cases in each, so a group holds all
trajectories of one (dim, solver). Inside a group, cases are sorted by step count, so a
chunk's loop runs about as many steps as its members need: total work is about the sum of
the trajectories' steps, not the max step count times the number of cases. Chunks depend
only on the spec and the chunk size.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import pandas as pd

from .._field import SMALL_N
from .._solver import FIXED_SOLVERS
from ._spec import SweepSpec

AXES = ("form", "activation", "solver", "dt", "dim", "amplitude", "gamma", "bias", "seed")
"""The axis columns of a sweep's table, in grid order (`traj_id` runs over the last fastest).
Adding an axis of one value leaves every `traj_id` as it was."""


def strings(names, codes, dtype=None) -> pd.api.extensions.ExtensionArray:
    """`names[codes]` (integer codes) as a pandas string column of `dtype` (default: the
    grid's, `pd.StringDtype(na_value=nan)`), built by pyarrow: an object array of a million
    names took a second to convert."""
    import pyarrow as pa
    import pyarrow.compute as pc

    taken = pc.take(pa.array(list(names), pa.large_string()),
                    pa.array(np.asarray(codes, np.int64)))
    return pd.array(taken, dtype=pd.StringDtype(na_value=np.nan) if dtype is None else dtype)


def grid(spec: SweepSpec) -> pd.DataFrame:
    """One row per trajectory: the sweep axes, its step count and a stable `traj_id`."""
    cols = np.meshgrid(
        np.arange(len(spec.forms)), np.arange(len(spec.activations)),
        np.arange(len(spec.solvers)), np.arange(len(spec.dts)), np.arange(len(spec.dims)),
        np.arange(len(spec.amplitudes)), np.arange(len(spec.gammas)),
        np.arange(len(spec.biases)), np.arange(spec.seeds), indexing="ij",
    )
    f, a, s, d, n, amp, gam, bias, seed = (c.ravel() for c in cols)
    df = pd.DataFrame({
        "traj_id": np.arange(f.size, dtype=np.int64),
        "form": strings(spec.forms, f),
        "activation": strings(spec.activations, a),
        "solver": strings(spec.solvers, s),
        "dt": np.asarray(spec.dts)[d],
        "dim": np.asarray(spec.dims, np.int64)[n],
        "amplitude": np.asarray(spec.amplitudes)[amp],
        "gamma": np.asarray(spec.gammas, np.float64)[gam],
        "bias": np.asarray(spec.biases, np.float64)[bias],
        "seed": seed.astype(np.int64),
        "steps": np.asarray([spec.steps_for(float(x)) for x in spec.dts], np.int64)[d],
    }, copy=False)  # fresh arrays: no copy into 2-D blocks (0.5 s of a 1e6-row grid)
    return df


@dataclasses.dataclass(frozen=True)
class Chunk:
    """Trajectories integrated together in one compiled call.

    `traj_ids` `(len(segments) * seg_width,)` is segment-major: `seg_width` members of the
    first (form, activation) segment, then of the second, ...; -1 marks padding (a 0-step
    copy of another member)."""

    index: int
    dim: int
    solver: str
    traj_ids: np.ndarray
    seg_width: int
    segments: tuple[tuple[str, str], ...]
    seed: int | None = None  # the one seed of a chunk whose A is shared (dim > SMALL_N)

    @property
    def width(self) -> int:
        return len(self.traj_ids)

    @property
    def n_members(self) -> int:
        return int(np.sum(self.traj_ids >= 0))

    @property
    def program(self) -> tuple:
        """What fixes the compiled program (chunks with equal keys share it)."""
        return (self.dim, self.solver, self.seg_width, self.segments)


def group_chunk_size(steps: np.ndarray, chunk_size: int, pieces: int = 8) -> int:
    """Chunk size for one compiled group: `chunk_size`, or smaller when step counts vary.

    A chunk runs until its longest member is done, so when a group mixes step counts (a
    fixed-horizon sweep over dt) it is cut into at least `pieces` chunks sorted by step
    count; the work is then close to the sum of the members' steps.
    """
    if steps.size == 0 or steps.max() <= 2 * steps.min():
        return chunk_size
    return max(1, min(chunk_size, -(-steps.size // pieces)))


def plan(spec: SweepSpec, chunk_size: int, g: pd.DataFrame | None = None) -> list[Chunk]:
    """Deterministic chunking: groups by compiled program, then by step count.

    `chunk_size` is the number of trajectories per call; each of the S = forms ×
    activations segments gets `chunk_size // S` of them (at least 1). `g`: the spec's
    `grid` when already built."""
    if chunk_size < 1:
        raise ValueError(f"`chunk_size` must be >= 1; got {chunk_size}.")
    g = grid(spec) if g is None else g
    chunks: list[Chunk] = []
    for (dim, sol), sub in g.groupby(["dim", "solver"], sort=False):
        for segments in program_segments(spec, sol):
            seg_rows = sub[sub["form"].isin({f for f, _ in segments})]
            _cut(spec, g, seg_rows, int(dim), sol, segments, chunk_size, chunks)
    return chunks


def program_segments(spec: SweepSpec, solver: str) -> list[tuple[tuple[str, str], ...]]:
    """The (form, activation) segments of each program of a solver: every pair in one
    program, or for an implicit solver one program per form (measured: XLA:CPU runs the
    Newton steps of 14 segments about 4x slower per member than of 7, as it stops fusing
    the reassembly of many segments)."""
    pairs = [(f, a) for f in spec.forms for a in spec.activations]
    if not FIXED_SOLVERS[solver].implicit:
        return [tuple(pairs)]
    return [tuple(p for p in pairs if p[0] == f) for f in spec.forms]


def _cut(spec, g, sub, dim, sol, segments, chunk_size, chunks) -> None:
    """Append the chunks of one program's trajectories `sub` to `chunks`."""
    S = len(segments)
    # Large n: one shared A per chunk (a real matmul), so chunks don't mix seeds.
    parts = ([(None, sub)] if dim <= SMALL_N
             else [(int(s), p) for s, p in sub.groupby("seed", sort=True)])
    for seed, part in parts:
        # (the grid is a full product: every segment has the same cases)
        part = part.sort_values(["steps", "traj_id"], ascending=[False, True], kind="stable")
        ids = np.stack([part.loc[(part["form"] == f) & (part["activation"] == a),
                                 "traj_id"].to_numpy() for f, a in segments])  # (S, m)
        seg_steps = g["steps"].to_numpy()[ids[0]]  # traj_id == row position in g
        w = group_chunk_size(seg_steps, max(1, chunk_size // S))
        for start in range(0, ids.shape[1], w):
            block = ids[:, start:start + w]
            if block.shape[1] < w:
                block = np.pad(block, ((0, 0), (0, w - block.shape[1])), constant_values=-1)
            chunks.append(Chunk(len(chunks), dim, sol, block.reshape(-1), w, segments, seed))


def iter_chunks(chunks: list[Chunk], skip: set[int], process_index: int = 0,
                process_count: int = 1) -> Iterator[Chunk]:
    """This process's share of the chunks, less those already done."""
    for c in chunks:
        if c.index % process_count == process_index and c.index not in skip:
            yield c


def side_by_side(todo: list[Chunk], slots: int) -> Iterator[list[Chunk]]:
    """Consecutive chunks that one call can run side by side (one per device): the same
    compiled program, and the same seed where A is shared."""
    key = lambda c: (c.program, c.seed)
    batch: list[Chunk] = []
    for c in todo:
        if batch and (len(batch) == slots or key(c) != key(batch[0])):
            yield batch
            batch = []
        batch.append(c)
    if batch:
        yield batch
