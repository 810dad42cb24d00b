"""Service settings, read from ``LIGHTSEARCH_*`` environment variables (or passed in tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything the API and the worker need; one object shared by both."""

    model_config = SettingsConfigDict(env_prefix="LIGHTSEARCH_", extra="ignore")

    data_dir: Path = Field(
        Path(".lightsearch"),
        description="Folder for the embedded SQLite database, artifacts and the admin token.",
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL; default sqlite:///<data_dir>/lightsearch.db. PostgreSQL: "
        "postgresql+psycopg://user@host:5432/db",
    )
    max_body_bytes: int = Field(1_000_000, ge=1024, description="Larger request bodies get 413.")
    tables_root: Path | None = Field(
        None, description="Admin folder of CSV tables jobs may name (default <data_dir>/tables).")
    datasets_root: Path | None = Field(
        None, description="Admin folder of datasets jobs may name (default "
        "<data_dir>/datasets).")
    models_root: Path | None = Field(
        None, description="Admin folder of model files jobs may name (default "
        "<data_dir>/models).")
    max_upload_bytes: int = Field(200_000_000, ge=1024,
                                  description="Largest upload (a larger one gets 413).")
    max_unpacked_bytes: int = Field(
        2_000_000_000, ge=1024, description="Largest total size of an unpacked dataset archive.")
    max_concurrent_jobs: int = Field(2, ge=1, le=1024, description="Jobs one worker runs at once.")
    executor: Literal["ray", "spec"] = Field(
        "spec",
        description="'spec': each job runs as its executor.name says (local: in the worker "
        "process; ray: on RAY_ADDRESS or a local Ray); 'ray': every job evaluates on Ray, and "
        "a job that asks for executor.name 'local' is refused at submit.",
    )
    lease_s: float = Field(
        15.0, gt=0,
        description="A running job whose worker has not sent a heartbeat for this long is "
        "claimed again by another worker (its worker is taken for dead).",
    )
    poll_s: float = Field(0.5, gt=0, description="How often an idle worker looks for jobs.")
    device_lease_s: float = Field(30.0, gt=0, description="A device agent that has not "
                                  "renewed its measurement's lease for this long loses it; "
                                  "the measurement goes back to the device's queue.")
    stop_grace_s: float = Field(
        10.0, ge=0, le=600, description="A stopping worker hands its jobs back at once, then "
        "waits this long for their threads to finish before it exits.")
    cancel_poll_s: float = Field(0.25, gt=0, description="How often a job re-reads its cancel "
                                 "flag from the database.")
    max_attempts: int = Field(
        20, ge=1, description="A job claimed this many times without finishing ends 'failed'."
    )
    db_pool_size: int = Field(20, ge=1, le=1000)
    sqlite_busy_timeout_ms: int = Field(30_000, ge=0)
    plugins: str = Field(
        "",
        description="Comma-separated modules imported at start by the API and the workers, "
        "to register extra spaces, agents, profilers or evaluators in the registries.",
    )
    response_cache_entries: int = Field(
        256, ge=0, description="Serialized job, trials, Pareto and hypervolume answers kept "
        "per API process, reused while the job is unchanged (0: off).",
    )
    auth_cache_s: float = Field(
        0.0, ge=0, le=300, description="Seconds a verified token is trusted without a database "
        "look-up (0: every request checks it, one indexed read). When on, a token revoked by "
        "the CLI or another API process still works in this one for up to this long.",
    )

    @model_validator(mode="after")
    def _default_url(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.data_dir / 'lightsearch.db').resolve()}"
        return self

    def load_plugins(self) -> None:
        """Import the plugin modules (each registers its components on import)."""
        import importlib

        for name in filter(None, (m.strip() for m in self.plugins.split(","))):
            importlib.import_module(name)

    @property
    def url(self) -> str:
        assert self.database_url is not None
        return self.database_url

    @property
    def artifact_dir(self) -> Path:
        return self.data_dir / "artifacts"

    @property
    def tables_dir(self) -> Path:
        """Admin tables (CSV look-ups) that jobs may name, relative to this folder."""
        return self.tables_root or self.data_dir / "tables"

    @property
    def datasets_dir(self) -> Path:
        return self.datasets_root or self.data_dir / "datasets"

    @property
    def models_dir(self) -> Path:
        return self.models_root or self.data_dir / "models"

    @property
    def uploads_dir(self) -> Path:
        """Users' uploads, ``<uploads_dir>/<user id>/<upload id>/``."""
        return self.data_dir / "uploads"

    @property
    def work_dir(self) -> Path:
        """Where jobs write files a spec names (``output`` paths), per user."""
        return self.data_dir / "work"

    @property
    def admin_token_file(self) -> Path:
        return self.data_dir / "admin-token"
