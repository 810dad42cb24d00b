"""Server-sent events: a job's new trials, front changes, hypervolume points and progress.

``GET /api/v1/jobs/{id}/events`` sends one ``update`` event per change, carrying only what is
new since the client's cursor, and an ``end`` event once the job has finished and everything
was sent. Each event's ``id`` is the cursor (``<trial row>.<hv points>.<hv checksum>``,
``queries.Cursor``), so a browser
that reconnects resumes by itself (``Last-Event-ID``); ``?since=`` does the same for the first
connection (the cursor the page's snapshot came with). Auth: a bearer header or the
dashboard's session cookie (``service.dashboard.auth`` explains why not a query token).

The API and the workers share only the database, so the stream polls it every ``POLL_S``: the
job row and the trial rows after the cursor (two indexed reads); front and hypervolume only
when something changed. A connection lives at most ``MAX_CONNECTION_S`` and then ends; the
browser reconnects with its cursor and the token is checked again.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Header, Query
from fastapi.sse import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from service import crud
from service.api.deps import StateDep
from service.api.routes.jobs import ERRORS, JobId
from service.core.db import Database, json_dumps
from service.core.security import Principal
from service.dashboard import queries
from service.dashboard.auth import Viewer
from service.models import Job

router = APIRouter(prefix="/jobs", tags=["events"], responses=ERRORS)

POLL_S = 0.25
MAX_TRIALS_PER_EVENT = 1000
MAX_CONNECTION_S = 600.0
RETRY_MS = 1500
FINISHED = ("succeeded", "failed", "cancelled", "exhausted")


def job_state(job: Job) -> dict[str, Any]:
    """The job's live fields (what the page header shows)."""
    return {
        "status": job.status, "reason": job.reason, "cancel_requested": job.cancel_requested,
        "evaluations": job.evaluations, "budget": job.budget, "trials": job.n_trials,
        "complete": job.n_complete, "failed": job.n_failed, "cached": job.n_cached,
        "best_trial_id": job.best_trial_id, "best_reward": job.best_reward,
        "hypervolume": job.hypervolume, "hv_reference": job.hv_reference,
        "hv_true_front": job.hv_true_front, "updated_at": _iso(job.updated_at),
        "started_at": _iso(job.started_at), "finished_at": _iso(job.finished_at),
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass
class Follower:
    """One connection's view of a job: what it already sent."""

    db: Database
    user: Principal
    job_id: str
    cursor: queries.Cursor
    front: list[int] | None = None
    state: dict[str, Any] | None = None
    finished: bool = False
    backlog: bool = False  # a full event was sent: read again without waiting

    def poll(self) -> dict[str, Any] | None:
        """What is new since the last poll, or None (runs in a worker thread).

        Each poll reads the job row and the trial rows after the cursor (a primary-key range
        scan); the front and the hypervolume history are read only when one of those changed.
        """
        with self.db.reading() as session:
            job = crud.get_job(session, self.user, self.job_id)  # 404 if deleted meanwhile
            state = job_state(job)
            rows = queries.trials_after(session, job.id, self.cursor.trial,
                                        MAX_TRIALS_PER_EVENT)
            if not rows and state == self.state and self.front is not None:
                self.finished = job.status in FINISHED
                return None
            payload: dict[str, Any] = {}
            if rows:
                payload["trials"] = [queries.compact(r) for r in rows]
            reset, points, hv_count, hv_sig = queries.hv_after(session, job.id, self.cursor)
            if points or reset:
                payload["hv"] = {"reset": reset, "points": points}
            front = queries.front_ids(session, job.id)
            if front != self.front:
                payload["front"] = front
                self.front = front
            if state != self.state:
                payload["job"] = state
                self.state = state
            self.backlog = len(rows) == MAX_TRIALS_PER_EVENT
            self.cursor = queries.Cursor(rows[-1].id if rows else self.cursor.trial, hv_count,
                                         hv_sig)
            self.finished = job.status in FINISHED and not self.backlog
            return payload or None


def follower(job_id: JobId, state: StateDep, user: Viewer,
             since: Annotated[str | None, Query(
                 max_length=40, pattern=queries.CURSOR_PATTERN,
                 description="Resume after this cursor (an event's id).")] = None,
             last_event_id: Annotated[str, Header(
                 alias="Last-Event-ID", max_length=40, pattern=queries.CURSOR_PATTERN,
                 description="Sent by the browser when it reconnects.")] = "") -> Follower:
    """Checks access before the stream starts, so a bad token or job is a plain 401/404."""
    cursor = queries.Cursor.parse(last_event_id or since,
                                  "Last-Event-ID" if last_event_id else "since")
    with state.db.reading() as session:
        crud.get_job(session, user, job_id)
    return Follower(state.db, user, job_id, cursor)


@router.get("/{job_id}/events", response_class=EventSourceResponse,
            responses={200: {"description": "`update` events (JSON: `trials`, `front`, `hv`, "
                             "`job`, only the parts that changed) and a final `end` event."}})
async def job_events(follow: Annotated[Follower, Depends(follower)]
                     ) -> AsyncIterator[ServerSentEvent]:
    """Live updates of one job, only what is new; resumable with `since` or Last-Event-ID."""
    deadline = time.monotonic() + MAX_CONNECTION_S
    first = True
    while time.monotonic() < deadline:
        payload = await run_in_threadpool(follow.poll)
        if payload is not None or first:
            yield ServerSentEvent(raw_data=json_dumps(payload or {}), event="update",
                                  id=str(follow.cursor), retry=RETRY_MS if first else None)
            first = False
        if follow.finished:
            yield ServerSentEvent(raw_data=json_dumps(follow.state or {}), event="end",
                                  id=str(follow.cursor))
            return
        if not follow.backlog:
            await anyio.sleep(POLL_S)
