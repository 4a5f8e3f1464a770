"""Stability sweeps: spec (`_spec`) → plan (`_plan`) → cases (`_cases`) → engine calls and
classification (`_run`) → run directory (`_store`) → result (`_result`)."""

from ._cases import case as case
from ._plan import AXES as AXES
from ._plan import Chunk as Chunk
from ._plan import grid as grid
from ._plan import plan as plan
from ._plan import side_by_side as side_by_side
from ._result import MEASURED as MEASURED
from ._result import SweepResult as SweepResult
from ._result import load_sweep as load_sweep
from ._run import DEFAULT_CHUNK as DEFAULT_CHUNK
from ._run import integrate as integrate
from ._run import run_chunk as run_chunk
from ._run import run_chunks as run_chunks
from ._run import sweep as sweep
