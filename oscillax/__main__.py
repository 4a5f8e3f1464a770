"""`python -m oscillax`: the `oscillax` command."""

from .cli import main

main()
