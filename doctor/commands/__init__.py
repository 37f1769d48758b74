"""Subcommands: each module has ``add_parser(subparsers)`` and ``run(args) -> int``.

``doctor.cli`` lists them in ``COMMANDS``; a subcommand is one small module.
"""
