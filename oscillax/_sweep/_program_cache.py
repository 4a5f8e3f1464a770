"""`ProgramCache`: the sweep's engine programs kept on disk, traced once per machine.

JAX's persistent compilation cache keeps compiled executables, but a new process still
traces and lowers every program before it can look its executable up: about 0.6 s per
sweep program, in Python under the GIL (the default atlas has 8). `ProgramCache.call`
runs an `equinox.filter_jit` function through `jax.export` instead: the first process to
run a program exports it (its StableHLO, a few tens of kB) into
`<JAX compilation cache>/oscillax-programs/`; later processes read it back (ms) and call
it under `jax.jit`, and the compiled executable comes from JAX's cache as before. The
numbers are those of the traced program (the same StableHLO is compiled either way).

The file's name hashes everything the program depends on: oscillax's own source files,
the versions of jax, jaxlib and equinox, `XLA_FLAGS`, the JAX settings that change
lowering, the backend and its devices, the compiler options, and the arguments
(`_describe`): the arrays' shapes, dtypes and shardings, and every other part by value,
functions by module, name, defaults and closure. A function or class from outside
oscillax and the libraries it pins in the key (a user's own activation or field: its
code, or a global it reads, could change between runs unseen) makes the call a plain
call, as does any object that `_describe` cannot describe by value. It is off when JAX
has no compilation cache directory (nothing persists: a plain `ox.sweep` from a script,
unless the script sets one) and with the environment variable `OSCILLAX_PROGRAM_CACHE=0`.
A program that cannot be exported, read or written runs as a plain call; nothing here
changes a number.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import threading
import types
from pathlib import Path

import equinox as eqx
import jax
import numpy as np

from .._classify import GrowthSums, QuarterMax, WindowSums
from .._monitor import MonitorOutput
from . import _store

FORMAT = 1
"""Bumped when the layout of a cached program (or of its key) changes."""
SUBDIR = "oscillax-programs"
_OUTPUTS = (MonitorOutput, GrowthSums, WindowSums, QuarterMax)
"""Output types an exported program may return (registered for serialization)."""
_LOWERING_SETTINGS = ("jax_enable_x64", "jax_default_matmul_precision",
                      "jax_numpy_rank_promotion", "jax_numpy_dtype_promotion",
                      "jax_use_shardy_partitioner", "jax_threefry_partitionable")


def enabled() -> bool:
    """Whether programs are cached: JAX has a compilation cache directory and
    `OSCILLAX_PROGRAM_CACHE` is not 0."""
    return (os.environ.get("OSCILLAX_PROGRAM_CACHE", "1").strip() != "0"
            and bool(jax.config.jax_compilation_cache_dir))


@functools.cache
def _register_outputs() -> None:
    for t in _OUTPUTS:
        try:
            jax.export.register_namedtuple_serialization(
                t, serialized_name=f"oscillax.{t.__name__}")
        except ValueError:  # already registered (e.g. by a reloaded module)
            pass


@functools.cache
def _environment() -> str:
    """What every cached program depends on besides its arguments."""
    import equinox as _eqx
    import jaxlib

    root = Path(__file__).resolve().parents[1]  # the oscillax package
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.py")):
        h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    settings = {k: getattr(jax.config, k, None) for k in _LOWERING_SETTINGS}
    devices = [(d.platform, d.device_kind, d.id) for d in jax.devices()]
    return repr((FORMAT, h.hexdigest(), jax.__version__, jaxlib.__version__,
                 _eqx.__version__, os.environ.get("XLA_FLAGS", ""), jax.default_backend(),
                 devices, sorted(settings.items())))


_TRUSTED = ("oscillax", "jax", "jaxlib", "numpy", "equinox", "lineax", "optimistix",
            "diffrax", "math", "builtins", "operator", "functools")
"""Top-level modules whose functions and classes are described by name: oscillax's
sources are hashed into the key, the others' versions pin them (with jax, jaxlib and
equinox in the key; the others are only named here because oscillax uses them)."""


class _Unstable(Exception):
    """An argument that cannot be described by value (see `_describe`)."""


def _trusted(obj) -> bool:
    module = getattr(obj, "__module__", None) or ""
    return module.split(".")[0] in _TRUSTED


def _describe(x, seen: frozenset = frozenset(), const: bool = False) -> str:
    """A text that is equal for two arguments exactly when the program traced from them is
    the same, in every process; raises `_Unstable` when it cannot tell.

    An array that is a leaf of the arguments' pytree is traced: its shape, dtype and
    sharding. One that is not (`const`: in a function's closure or defaults, in a static
    field of an equinox module, in a plain object) is a constant of the program: its value
    too (a hash of its bytes)."""
    if x is None or isinstance(x, (bool, int, float, complex, str, bytes)):
        return f"{type(x).__name__}:{x!r}"
    if isinstance(x, (jax.Array, np.ndarray)):
        if const:
            v = np.asarray(x)
            return f"const:{v.dtype}{v.shape}:{hashlib.sha256(v.tobytes()).hexdigest()}"
        return "array:" + repr(_aval(x)[:3]) + _describe_sharding(getattr(x, "sharding", None))
    if isinstance(x, np.generic):
        return f"{x.dtype}:{x!r}"
    if isinstance(x, np.dtype):
        return f"dtype:{x}"
    if id(x) in seen:
        return "<cycle>"
    seen = seen | {id(x)}
    d = lambda y, c=const: _describe(y, seen, c)  # noqa: E731
    if isinstance(x, (tuple, list)):
        return f"{type(x).__qualname__}(" + ",".join(map(d, x)) + ")"
    if isinstance(x, dict):
        return "dict(" + ",".join(sorted(f"{d(k)}={d(v)}" for k, v in x.items())) + ")"
    if isinstance(x, jax.sharding.Mesh):
        return (f"Mesh({x.axis_names!r},{np.asarray(x.device_ids).tolist()!r},"
                f"{getattr(x, 'axis_types', None)!r})")
    if isinstance(x, functools.partial):
        return f"partial({d(x.func, True)},{d(x.args, True)},{d(x.keywords, True)})"
    if isinstance(x, (jax.custom_jvp, jax.custom_vjp)):
        parts = [getattr(x, k, None) for k in ("fun", "jvp", "fwd", "bwd", "nondiff_argnums")]
        return f"{type(x).__name__}(" + ",".join(d(p, True) for p in parts) + ")"
    if isinstance(x, type):
        if not _trusted(x):
            raise _Unstable(x)
        return f"type:{x.__module__}.{x.__qualname__}"
    if isinstance(x, types.FunctionType):
        if not _trusted(x):
            raise _Unstable(x)
        try:
            cells = tuple(c.cell_contents for c in (x.__closure__ or ()))
        except ValueError:  # an empty cell
            raise _Unstable(x) from None
        return (f"fn:{x.__module__}.{x.__qualname__}({d(x.__defaults__, True)},"
                f"{d(x.__kwdefaults__, True)},{d(cells, True)})")
    if isinstance(x, (types.BuiltinFunctionType, np.ufunc)):
        if not _trusted(x) and not isinstance(x, np.ufunc):
            raise _Unstable(x)
        return f"builtin:{getattr(x, '__module__', '')}.{x.__name__}"
    if dataclasses.is_dataclass(x):  # equinox modules (fields, solvers, activations)
        if not _trusted(type(x)):
            raise _Unstable(type(x))
        module = isinstance(x, eqx.Module)  # (a pytree: its non-static fields are leaves)

        def field(f):
            static = const or not module or f.metadata.get("static", False)
            return f"{f.name}={d(getattr(x, f.name, None), static)}"

        fields = ",".join(map(field, dataclasses.fields(x)))
        return f"{type(x).__module__}.{type(x).__qualname__}({fields})"
    if callable(x) and hasattr(x, "__wrapped__") and _trusted(x):  # e.g. jnp.tanh
        return f"wrapped:{getattr(x, '__qualname__', '')}({d(x.__wrapped__, True)})"
    raise _Unstable(type(x))


def _describe_sharding(s) -> str:
    if s is None:
        return ""
    if isinstance(s, jax.sharding.NamedSharding):
        return f"|named:{_describe(s.mesh)},{s.spec!r},{s.memory_kind!r}"
    if isinstance(s, jax.sharding.SingleDeviceSharding):
        (device,) = s.device_set
        return f"|single:{device.platform}:{device.id},{s.memory_kind!r}"
    raise _Unstable(type(s))


def _aval(x):
    return (tuple(x.shape), str(x.dtype), bool(getattr(x, "weak_type", False)),
            getattr(x, "sharding", None))


def _spec(x):
    sharding = getattr(x, "sharding", None)
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding,
                                weak_type=bool(getattr(x, "weak_type", False)))


class ProgramCache:
    """Exported programs by argument signature, in memory and in `directory`."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self._calls: dict = {}
        self._lock = threading.Lock()

    def call(self, fn, args: tuple, kwargs: dict, compiler_options: dict | None = None):
        """`fn(*args, **kwargs)`, `fn` an `equinox.filter_jit` function, through the cached
        exported program of this signature (plain call when it cannot be cached)."""
        dyn, static = eqx.partition((args, kwargs), eqx.is_array)
        leaves, tree = jax.tree.flatten(dyn)
        static_leaves, static_tree = jax.tree.flatten(static)
        options = tuple(sorted((compiler_options or {}).items()))
        try:
            key = (fn, tree, static_tree, tuple(static_leaves),
                   tuple(_aval(x) for x in leaves), options)
            hash(key)
        except TypeError:  # an unhashable static part: as filter_jit would see it
            return fn(*args, **kwargs)
        with self._lock:
            program = self._calls.get(key)
            if program is None:
                program = self._build(fn, (args, kwargs), tree, static, leaves,
                                      compiler_options)
                self._calls[key] = program
        if program is False:
            return fn(*args, **kwargs)
        return program(*leaves)

    def _build(self, fn, arguments, tree, static, leaves, compiler_options):
        """The `jax.jit`-ed call of the exported program of `fn` at `arguments` (read from
        disk, or exported and written), or False when it cannot be cached."""
        try:
            text = _describe((fn.__wrapped__, arguments, compiler_options))
        except _Unstable:  # not the same in another process
            return False
        digest = hashlib.sha256((_environment() + "\n" + text).encode()).hexdigest()
        path = self.directory / f"{digest[:40]}.jaxexport"
        try:
            _register_outputs()
        except Exception:  # a JAX without namedtuple serialization: plain calls
            return False
        exported = None
        try:
            exported = jax.export.deserialize(bytearray(path.read_bytes()))
        except FileNotFoundError:
            pass
        except Exception:  # unreadable or from an incompatible JAX: export again
            exported = None
        if exported is None:
            raw = fn.__wrapped__

            def pure(*dyn_leaves):
                args, kwargs = eqx.combine(jax.tree.unflatten(tree, dyn_leaves), static)
                return raw(*args, **kwargs)

            try:
                exported = jax.export.export(
                    jax.jit(pure, compiler_options=compiler_options))(
                        *[_spec(x) for x in leaves])
                data = exported.serialize()
            except Exception:  # not exportable (or not serializable): plain calls
                return False
            _write(path, data)

        def program(*dyn_leaves):
            return exported.call(*dyn_leaves)

        # named as the function (JAX's logs and cache entries: `jit_<name>`)
        program.__name__ = program.__qualname__ = getattr(fn.__wrapped__, "__name__", "call")
        return jax.jit(program, compiler_options=compiler_options)


def _write(path: Path, data) -> None:
    """Write `data` to `path` atomically (`_store.atomic_write`); a failure leaves the
    cache as it was."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _store.atomic_write(path, lambda p: Path(p).write_bytes(bytes(data)), durable=False)
    except OSError:
        pass


_caches: dict[str, ProgramCache] = {}
_caches_lock = threading.Lock()


def call(fn, args: tuple, kwargs: dict, compiler_options: dict | None = None):
    """`fn(*args, **kwargs)` through the `ProgramCache` of JAX's compilation cache
    directory when `enabled()`, else a plain call."""
    if not enabled() or not hasattr(jax, "export"):
        return fn(*args, **kwargs)
    directory = os.path.join(jax.config.jax_compilation_cache_dir, SUBDIR)
    with _caches_lock:
        cache = _caches.get(directory)
        if cache is None:
            cache = _caches[directory] = ProgramCache(directory)
    return cache.call(fn, args, kwargs, compiler_options)
