"""The ``sana-wm`` command line: argument parsing only; every algorithm lives in the library.

Each subcommand is a module in this package with ``register(subparsers)``, which adds its parser and
sets ``func(args) -> int``. Bad input anywhere (:class:`sana_wm.errors.InputError`, or an argparse
error) becomes exactly one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import sys
from collections.abc import Sequence

from sana_wm.errors import InputError

# Subcommand modules, in the order `sana-wm --help` lists them.
_COMMANDS = (
    "demo",
    "trajectory",
    "overlay_demo",
    "generate",
    "stream",
    "serve",
    "worlds",
    "annotate",
    "cache_latents",
    "train",
    "convert",
    "export",
    "eval_world",
    "bench",
)


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad arguments as one line (no usage dump) and exits 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sana-wm", description="SANA-WM: a camera-controlled video world model.")
    parser.add_argument("--quiet", action="store_true", help="only print warnings and errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in _COMMANDS:
        importlib.import_module(f"sana_wm.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    command = "sana-wm"
    try:
        parser = build_parser()  # imports every subcommand module: inside the Ctrl-C handling too
        args = parser.parse_args(argv)
        command = f"sana-wm {args.command}"
        logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
        return int(args.func(args) or 0)
    except InputError as err:
        for line in str(err).splitlines() or [""]:  # several missing weight files: one line each
            print(f"{command}: error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sana-wm: interrupted", file=sys.stderr)
        return 130
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = f" writing {err.filename}" if err.filename else ""
        print(
            f"{command}: error: no space left on the device{where}; nothing partial was kept", file=sys.stderr
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
