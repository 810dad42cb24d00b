"""The service's files are readable by the service's user only: every tenant's jobs and
token hashes live in the database, and artifacts hold users' models.

``secure_data_dir`` makes the data folder and the artifacts folder 0700 and an embedded SQLite
file 0600 (created so before SQLite first opens it; its WAL and shared-memory files take the
database's mode). The server commands also set the process umask to 0077, so every file they
write later (artifacts, results, exported models) is private too.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from sqlalchemy.engine import make_url

PRIVATE_UMASK = 0o077


def _private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL (None for other databases)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def secure_data_dir(data_dir: Path, artifact_dir: Path, database_url: str) -> None:
    """Create (or tighten) the data and artifact folders (0700) and the SQLite file (0600)."""
    _private_dir(data_dir)
    _private_dir(artifact_dir)
    db_file = sqlite_file(database_url)
    if db_file is None:
        return
    db_file.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(db_file, os.O_RDWR | os.O_CREAT, 0o600))  # an empty file is an empty db
    for path in (db_file, Path(f"{db_file}-wal"), Path(f"{db_file}-shm")):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(path, 0o600)
