"""Domain errors raised by crud and the worker; ``api.errors`` maps each to one HTTP status."""

from __future__ import annotations


class ServiceError(Exception):
    """Base of every error the service reports to a client."""

    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotAuthenticated(ServiceError):
    status_code = 401


class Forbidden(ServiceError):
    status_code = 403


class NotFound(ServiceError):
    """Also raised for another user's job, so its existence does not leak."""

    status_code = 404


class JobNotFound(NotFound):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id[:100]!r} not found")


class ArtifactNotFound(NotFound):
    def __init__(self, path: str) -> None:
        super().__init__(f"artifact {path[:200]!r} not found")


class UploadNotFound(NotFound):
    def __init__(self, upload_id: str) -> None:
        super().__init__(f"upload {upload_id[:100]!r} not found")


class TooLarge(ServiceError):
    status_code = 413


class InvalidTransition(ServiceError):
    """A state change the job's current status does not allow (cancel a finished job...)."""

    status_code = 409


class Conflict(ServiceError):
    status_code = 409


class InvalidInput(ServiceError):
    """Bad input the request model could not catch; ``field`` names the culprit."""

    status_code = 422

    def __init__(self, field: str, message: str, valid: list[str] | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.field_message = message
        self.valid = valid


class LeaseLost(Exception):
    """The worker no longer owns the job (another worker claimed it): stop writing."""
