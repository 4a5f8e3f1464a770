"""The `oscillax` command line: atlas, simulate, fit, bench, devices."""

from __future__ import annotations

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Simulate, sweep and fit skew-symmetric continuous-time RNNs (JAX).",
)


# --- atlas command (owner: sweep) ---
# --- end atlas command ---


# --- fit command (owner: fitting) ---
# --- end fit command ---


# --- bench command (owner: benchmarks) ---
# --- end bench command ---


# --- devices command (owner: scale-out) ---
# --- end devices command ---


def main() -> None:  # entry point of the `oscillax` script
    app()


if __name__ == "__main__":
    main()
