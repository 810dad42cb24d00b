"""First-start bootstrap: an admin token so a new install is usable at once."""

from __future__ import annotations

import os
from pathlib import Path

from service import crud
from service.core.db import Database


def bootstrap_admin(db: Database, token_file: Path) -> str | None:
    """With no users yet, create ``admin`` and write its token to ``token_file`` (mode 600).

    Returns the new token, or None when users already exist.
    """
    with db.write_session() as session:
        if crud.count_users(session) > 0:
            return None
        _user, token = crud.create_token(session, "admin", admin=True, label="bootstrap")
    token_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return token
