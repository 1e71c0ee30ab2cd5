"""What the ``workbench`` subcommands share: the parser with one-line errors, argument
types, the catalog/cache options and JSON output."""

from __future__ import annotations

import argparse
import json


class Parser(argparse.ArgumentParser):
    """argparse with the workbench's one-line errors (exit code 2)."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def whole(minimum: int):
    """An argparse type: a whole number >= ``minimum``."""
    def parse(value: str) -> int:
        if not value.lstrip("-").isdigit() or int(value) < minimum:
            raise argparse.ArgumentTypeError(f"takes a whole number >= {minimum}, got {value!r}")
        return int(value)
    parse.__name__ = "whole number"
    return parse


def port_number(value: str) -> int:
    """An argparse type: a TCP port, 1 to 65535."""
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise argparse.ArgumentTypeError(f"takes a port from 1 to 65535, got {value!r}")
    return int(value)


def whole_list(value: str) -> list[int]:
    """An argparse type: a comma list of whole numbers >= 0 (``0,5,10``)."""
    parts = value.split(",")
    if not all(p.strip().isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"takes whole numbers >= 0 separated by commas, got "
                                         f"{value!r}")
    return [int(p) for p in parts]


def distance(value: str) -> float:
    try:
        km = float(value)
    except ValueError:
        km = -1.0
    if not km >= 0 or km == float("inf"):
        raise argparse.ArgumentTypeError(f"takes a distance in km >= 0, got {value!r}")
    return km


def devices(value: str) -> int | str:
    if value == "auto":
        return value
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"--devices takes a whole number >= 1 or 'auto', "
                                         f"got {value!r}")
    return int(value)


def catalog_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--catalog", action="append", default=[], metavar="DIR",
        help="extra catalog folder (repeatable; added to $WORKBENCH_CATALOG for this command "
             "and what it starts: training workers, notebook kernels, batch entries)",
    )


def common(parser: argparse.ArgumentParser) -> None:
    catalog_option(parser)
    parser.add_argument("--cache", metavar="DIR", help="cache folder (default $WORKBENCH_CACHE)")


def print_json(value) -> None:
    print(json.dumps(value, indent=2, default=str))
