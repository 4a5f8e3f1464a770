"""`python -m oscillax.cli`: the `oscillax` command."""

from . import main

main()
