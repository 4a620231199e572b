"""The embedded default's generated admin password: shown where the operator looks.

A generated password is logged once by whichever process makes it, which may be
a worker whose log scrolled away. So its clear text is also kept beside its hash,
in ``instance/admin-password.txt`` (mode 0600, owner only), and gunicorn's
``when_ready`` (gunicorn.conf.py) prints it at every ``make run`` for as long as
it is still the password. ``flask --app wsgi admin reset-password`` makes a new
one, prints it once and keeps only its hash, so from then on nothing is shown.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from werkzeug.security import check_password_hash, generate_password_hash

from app.files import atomic_write

HASH_FILE = "admin-password.hash"  # the same file as app.admin.auth.PASSWORD_FILE
CLEAR_FILE = "admin-password.txt"


def new_password() -> str:
    return secrets.token_urlsafe(12)


def keep(instance: Path, password: str) -> None:
    """Keep a generated password's clear text for ``pending`` (owner-readable only)."""
    atomic_write(instance / CLEAR_FILE, (password + "\n").encode(), mode=0o600)


def pending(instance: Path) -> str | None:
    """The generated password, if it is still the admin's (its hash unchanged)."""
    try:
        password = (instance / CLEAR_FILE).read_text().strip()
        hashed = (instance / HASH_FILE).read_text().strip()
    except OSError:
        return None
    return password if password and hashed and check_password_hash(hashed, password) else None


def reset(instance: Path) -> str:
    """A new password: its hash replaces the old one (ending every session), the clear
    text is returned to be shown once and is kept nowhere."""
    password = new_password()
    atomic_write(
        instance / HASH_FILE, (generate_password_hash(password) + "\n").encode(), mode=0o600
    )
    (instance / CLEAR_FILE).unlink(missing_ok=True)
    return password


def instance_folder(root: Path) -> Path:
    """The instance folder as ``create_app`` finds it, for gunicorn's master process."""
    configured = os.environ.get("LOOKALIKE_INSTANCE_PATH")
    return Path(configured).resolve() if configured else root / "instance"
