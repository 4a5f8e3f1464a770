"""The one error printer of the command line: `error: <message>` on stderr, exit status 2.

Every error goes through it: the commands' own checks (`fail`), the library's messages, and
click's usage errors (an option given a word where it takes a number, an unknown option),
which `OneLineErrors` prints the same way instead of typer's boxed panel.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import typer
from typer.core import TyperGroup

try:  # typer >= 0.2x carries its own copy of click
    from typer._click import exceptions as _click_errors
except ImportError:  # pragma: no cover - older typer runs on click itself
    from click import exceptions as _click_errors

EXIT_USAGE = 2


def print_error(message: str) -> None:
    """Print `error: <message>` to stderr on one line; the message is never read as markup
    (it holds paths, column names and values the user typed)."""
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True).print(f"[bold red]error:[/bold red] {escape(str(message))}",
                               highlight=False, soft_wrap=True)


def print_warning(message: str) -> None:
    """Print `warning: <message>` to stderr (never read as markup), and go on."""
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True).print(f"[bold yellow]warning:[/bold yellow] {escape(str(message))}",
                               highlight=False, soft_wrap=True)


def fail(message: str) -> NoReturn:
    """Print the error and end the command with exit status 2."""
    print_error(message)
    raise typer.Exit(EXIT_USAGE)


class OneLineErrors(TyperGroup):
    """Typer's command group, with click's usage errors printed by `print_error`."""

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            rv = super().main(*args, standalone_mode=False, **kwargs)
        except _click_errors.NoArgsIsHelpError as e:  # the help is printed already
            sys.exit(e.exit_code)
        except _click_errors.UsageError as e:
            msg, ctx = e.format_message().rstrip(), getattr(e, "ctx", None)
            msg += "" if msg.endswith((".", ")")) else "."
            print_error(msg + (f" See `{ctx.command_path} --help`." if ctx is not None else ""))
            sys.exit(EXIT_USAGE)
        except _click_errors.ClickException as e:
            print_error(e.format_message())
            sys.exit(e.exit_code)
        except typer.Abort:
            print_error("aborted.")
            sys.exit(1)
        # Without standalone mode, typer.Exit(code) and --help come back as the exit code.
        sys.exit(rv if isinstance(rv, int) and not isinstance(rv, bool) else 0)
