"""Reading a new password for `user add` and `user passwd`: hidden and asked twice on a terminal,
one line with `--password-stdin` for scripts; too short is refused here, before anything is stored.

Only passwords a person chooses pass through here: robots' secrets are generated (long and random)
and `user import-htpasswd` keeps the hashes it imports, so neither is held to the minimum.
"""

from __future__ import annotations

import getpass
import sys

#: The shortest password accepted (NIST SP 800-63B's minimum for a chosen secret).
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024


def read_password(from_stdin: bool) -> str:
    """From stdin (one line, newline dropped) or, on a terminal, prompted twice; ValueError says what is wrong."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        try:
            password = getpass.getpass("Password: ")
            again = getpass.getpass("Again: ")
        except EOFError:  # Ctrl-D at either prompt: the person changed their mind
            print(file=sys.stderr)
            raise ValueError("no password entered; nothing was changed") from None
        if again != password:
            raise ValueError("the passwords do not match; nothing was changed")
    else:
        raise ValueError("no terminal to prompt on: pipe the password with --password-stdin")
    if not password:
        raise ValueError("the password is empty")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"the password is too short: at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValueError(f"the password is longer than {MAX_PASSWORD_LENGTH} characters")
    return password
