"""Pano4D entry point: the desktop app with no arguments, otherwise the command line."""

from __future__ import annotations

import sys


def run_app_or_explain() -> int:
    """The desktop app; without a display or Qt, one line on stderr and exit code 2."""
    from engine.errors import InputError

    try:
        from app.main import run_app
    except ImportError as e:  # PySide6 or its system libraries missing
        print(
            f"error: the app needs PySide6 and Qt's xcb libraries ({e}); run scripts/setup.sh",
            file=sys.stderr,
        )
        return 2
    try:
        return run_app()
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def main() -> int:
    from app.commands import register as app_register
    from engine.cli import main as cli_main
    from viewer.commands import register

    if len(sys.argv) == 1:
        return run_app_or_explain()
    return cli_main(sys.argv[1:], plugins=[register, app_register])


if __name__ == "__main__":
    sys.exit(main())
