"""Pano4D entry point: the desktop app with no arguments, otherwise the command line."""

from __future__ import annotations

import sys


def main() -> int:
    from app.commands import register as app_register
    from engine.cli import build_parser
    from engine.cli import main as cli_main
    from viewer.commands import register

    if len(sys.argv) == 1:
        print("The desktop app is not in this build yet; the command line is:\n", file=sys.stderr)
        build_parser([register, app_register]).print_help(sys.stderr)
        return 2
    return cli_main(sys.argv[1:], plugins=[register, app_register])


if __name__ == "__main__":
    sys.exit(main())
