"""Errors that mean "the user gave bad input" (as opposed to a bug).

The ``privcap`` command prints these as one line ``privcap: error: ...`` and exits with
status 2; any other exception is a bug and propagates with its traceback. Library functions
report bad input with ``ValueError`` / ``FileNotFoundError`` naming the problem;
:class:`UserError` is for bad input that no built-in exception describes.
"""

from __future__ import annotations

__all__ = ["UserError", "USER_ERRORS"]


class UserError(Exception):
    """Bad input (a file, a parameter, a value) described by the message."""


#: exception types the command line reports as bad input
USER_ERRORS: tuple[type[BaseException], ...] = (
    UserError,
    ValueError,
    FileNotFoundError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
)
