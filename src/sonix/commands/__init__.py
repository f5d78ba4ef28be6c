"""Subcommands of `sonix`: one module each, with a `register(subparsers)` function."""
