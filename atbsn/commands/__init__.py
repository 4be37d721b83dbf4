"""Handlers of the `atbsn` subcommands, one module per command family; `cli.py` wires them up."""
