"""Artifact files of a job, under ``<data_dir>/artifacts/<job_id>/``, and safe downloads.

A requested path is resolved (symlinks followed) and must stay inside the job's folder; any
other path, a missing file, a folder or an undecodable name is reported as not found, so
``../`` tricks, absolute paths and links that point outside all end in 404.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from service.core.errors import ArtifactNotFound

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class ArtifactFile:
    path: str
    size: int
    modified_at: datetime


def job_dir(root: Path, job_id: str) -> Path:
    return root / job_id


def safe_name(name: str) -> str:
    """A file name with no separators or parent references (for names from evaluators)."""
    cleaned = _SAFE.sub("_", os.path.basename(str(name))).strip("._") or "artifact"
    return cleaned[:150]


def store_trial_artifacts(root: Path, job_id: str, trial_id: int,
                          artifacts: dict[str, str]) -> dict[str, str]:
    """Copy a trial's files into the job folder; returns name -> path relative to it.

    A file the evaluator wrote on another Ray node is not on this host: it is recorded as
    missing (``""``) rather than failing the trial.
    """
    stored: dict[str, str] = {}
    for name, src in artifacts.items():
        source = Path(src)
        rel = Path("trials") / str(trial_id) / safe_name(source.name or name)
        dest = job_dir(root, job_id) / rel
        if source.is_file():
            dest.parent.mkdir(parents=True, exist_ok=True)
            if source.resolve() != dest.resolve():
                shutil.copyfile(source, dest)
            stored[str(name)] = rel.as_posix()
        elif dest.is_file():  # stored by an earlier attempt of this job
            stored[str(name)] = rel.as_posix()
        else:
            stored[str(name)] = ""
    return stored


def write_job_file(root: Path, job_id: str, name: str, text: str) -> Path:
    """Write a file atomically into the job folder (a crash leaves the old one or none)."""
    dest = job_dir(root, job_id) / safe_name(name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(dest.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, dest)
    return dest


def list_artifacts(root: Path, job_id: str) -> list[ArtifactFile]:
    base = job_dir(root, job_id)
    if not base.is_dir():
        return []
    out = []
    resolved_base = base.resolve()
    for dirpath, _dirs, files in os.walk(base):  # does not descend into linked folders
        for f in files:
            p = Path(dirpath) / f
            try:
                real = p.resolve()
                if not real.is_relative_to(resolved_base) or not real.is_file():
                    continue
                st = real.stat()
            except OSError:
                continue
            out.append(ArtifactFile(p.relative_to(base).as_posix(), st.st_size,
                                    datetime.fromtimestamp(st.st_mtime, UTC)))
    return sorted(out, key=lambda a: a.path)


def resolve_artifact(root: Path, job_id: str, rel: str) -> Path:
    """The file for a download request, or ``ArtifactNotFound`` for anything else."""
    base = job_dir(root, job_id)
    try:
        if not rel or "\x00" in rel or Path(rel).is_absolute():
            raise ArtifactNotFound(rel)
        target = (base / rel).resolve()
        if not target.is_relative_to(base.resolve()) or not target.is_file():
            raise ArtifactNotFound(rel)
    except (OSError, ValueError) as err:
        raise ArtifactNotFound(rel) from err
    return target
