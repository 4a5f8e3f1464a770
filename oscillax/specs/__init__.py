"""Sweep specs shipped with oscillax, as package data (`oscillax atlas --list` shows them).

Each `NAME.toml` here starts with one comment line, the question its atlas answers, and runs
as `oscillax atlas NAME`; `oscillax atlas --copy NAME` writes it out for editing. From
Python: `importlib.resources.files("oscillax.specs") / "quick.toml"`. A source checkout's
`experiments/` links to these files, which are the only copies.
"""
