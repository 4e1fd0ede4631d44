"""Subcommands of the ``gnnkit`` CLI, one module each (see :mod:`gnnkit.cli`)."""
