"""Errors a user can cause, and how the CLI maps them to exit codes (DESIGN.md section 7)."""

from __future__ import annotations


class Pano4DError(Exception):
    """Base class of every error the engine raises on purpose."""

    exit_code = 1


class InputError(Pano4DError):
    """Bad input or a missing resource: one clear line for the user, exit code 2."""

    exit_code = 2


class FormatError(InputError):
    """A scene or file that does not follow its format (wrong version, shape, dtype, NaN)."""


class ResumeMismatch(InputError):
    """``--resume`` of an unfinished run whose inputs or settings have changed since."""


class Cancelled(Pano4DError):
    """The user cancelled a long run: exit code 130."""

    exit_code = 130


# What from_pretrained raises for a missing, partial or wrong-kind weights folder.
LOAD_ERRORS = (OSError, ValueError, TypeError, RuntimeError, KeyError, ImportError)


def first_line(e: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none)."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
