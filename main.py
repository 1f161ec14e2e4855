"""Pano4D entry point: the desktop app with no arguments, otherwise the command line."""

from __future__ import annotations

import sys


def main() -> int:
    if len(sys.argv) == 1:
        from engine.cli import build_parser

        print(
            "The desktop app is not in this build yet; the command line is:\n",
            file=sys.stderr,
        )
        build_parser().print_help(sys.stderr)
        return 2
    from engine.cli import main as cli_main

    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
