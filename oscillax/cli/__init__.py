"""The `oscillax` command line: atlas, show, simulate, orbits, fit, bench, devices.

Each command lives in its own module as a thin typer function that checks its options,
calls the library once and reports errors through `_errors.fail`. `main` is the console
entry point (`oscillax`, `python -m oscillax`).
"""

from __future__ import annotations

from typing import Annotated

import typer

from . import _atlas, _bench, _devices, _fit, _lyapunov, _orbits, _show, _simulate
from ._errors import OneLineErrors, print_error

app = typer.Typer(
    name="oscillax",
    cls=OneLineErrors,
    add_completion=False,
    no_args_is_help=True,
    help="Simulate, sweep and fit skew-symmetric continuous-time RNNs (JAX).",
    rich_markup_mode="markdown",
    epilog="Example: `oscillax atlas quick --out runs/quick`, then `oscillax show runs/quick`",
)


def _print_version(value: bool) -> None:
    if value:
        import oscillax

        typer.echo(f"oscillax {oscillax.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option(
        "--version", is_eager=True, callback=_print_version,
        help="Print the version and exit.")] = False,
) -> None:
    """Simulate, sweep and fit skew-symmetric continuous-time RNNs (JAX)."""


app.command("atlas", epilog=_atlas.EPILOG)(_atlas.atlas)
app.command("show", epilog=_show.EPILOG)(_show.show)
app.command("simulate", epilog=_simulate.EPILOG)(_simulate.simulate)
app.command("orbits", epilog=_orbits.EPILOG)(_orbits.orbits)
app.command("lyapunov", epilog=_lyapunov.EPILOG)(_lyapunov.lyapunov)
app.command("fit", epilog=_fit.EPILOG)(_fit.fit)
app.command("bench", epilog=_bench.EPILOG)(_bench.bench)
app.command("devices", epilog=_devices.EPILOG)(_devices.devices)


def _use_compilation_cache() -> str | None:
    """Keep compiled programs on disk between runs of the command (JAX's persistent
    compilation cache), so that running an atlas over the same grid again skips its
    compilations, which dominate the default one. `OSCILLAX_CACHE_DIR` sets the directory
    (`off` turns it off); the default is `$XDG_CACHE_HOME/oscillax/jax`, else
    `~/.cache/oscillax/jax`. A cache directory given to JAX itself
    (`JAX_COMPILATION_CACHE_DIR`) wins. Returns the directory in use, if any."""
    import os

    import jax

    if jax.config.jax_compilation_cache_dir:
        return jax.config.jax_compilation_cache_dir
    d = os.environ.get("OSCILLAX_CACHE_DIR")
    if d is not None and d.strip().lower() in ("", "off", "0", "false", "none"):
        return None
    if d is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"),
                                                                 ".cache")
        d = os.path.join(base, "oscillax", "jax")
    try:
        os.makedirs(d, exist_ok=True)
    except OSError:  # e.g. a read-only home: run without the cache
        return None
    jax.config.update("jax_compilation_cache_dir", d)
    # the engine's programs compile in about a second on CPU: keep those too
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)
    return d


def main() -> None:
    """Entry point of the `oscillax` script."""
    from .. import _distributed

    try:
        _distributed.use_cpu_cores()  # one CPU device per core: sweeps use every core
    except ValueError as e:  # a bad OSCILLAX_CPU_DEVICES
        print_error(str(e))
        raise SystemExit(2) from None
    _use_compilation_cache()
    app(prog_name="oscillax")
