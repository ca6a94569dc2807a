"""The ``shadowfn`` command line: one subcommand per module, imported only when used."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["main"]

# Subcommand name -> (module that implements it, one-line help). Each module has
# ``configure_parser(parser)`` and ``run(args) -> int``.
SUBCOMMANDS = {
    "report": ("shadowfn._report_cli", "summarize structlog JSON-lines logs of shadowfn events"),
    "replay": (
        "shadowfn._replay_cli",
        "run a corpus of inputs through a shadowed function and its candidate",
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit status."""
    parser = argparse.ArgumentParser(prog="shadowfn", description="Tools for shadowfn migrations.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    arguments = list(sys.argv[1:] if argv is None else argv)

    chosen = next((a for a in arguments if not a.startswith("-")), None)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        subparser = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module = importlib.import_module(module_name)
            module.configure_parser(subparser)
            subparser.set_defaults(handler=module.run)

    args = parser.parse_args(arguments)
    status: int = args.handler(args)
    return status
