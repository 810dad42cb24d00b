"""The queue: atomic claims under concurrency, lease expiry, fencing of a stale worker."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import update

from agents.base import TrialState
from search.sinks import TrialRecord
from search.spec import parse_spec
from service import crud
from service.core.db import Database
from service.core.errors import LeaseLost
from service.core.security import Principal
from service.models import Job, utcnow
from service.queue import claim_job, heartbeat, release
from service.sink import SqlSink


def _jobs(db, n: int) -> list[str]:
    with db.write_session() as session:
        user, _ = crud.create_token(session, "queue-user")
        owner = Principal(user.id, user.name)
        return [crud.create_job(session, owner, parse_spec({"name": f"j{i}"})).id
                for i in range(n)]


def test_concurrent_workers_never_claim_one_job_twice(db, settings):
    ids = _jobs(db, 30)
    claims: dict[str, list[str]] = {}
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        own = Database.from_url(settings.url, pool_size=2)  # its own connections
        got: list[str] = []
        try:
            barrier.wait()
            while (claim := claim_job(own, name, lease_s=60)) is not None:
                got.append(claim.job_id)
                time.sleep(0.005)  # "work" on it, as a real worker would, so the others get turns
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)
        finally:
            own.dispose()
            claims[name] = got

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    everything = [j for got in claims.values() for j in got]
    assert sorted(everything) == sorted(ids)  # each job exactly once
    assert sum(1 for got in claims.values() if got) >= 2  # the claimers really raced
    with db.reading() as session:
        for job_id in ids:
            job = session.get(Job, job_id)
            assert job.status == "running" and job.attempts == 1
            assert job_id in claims[job.worker_id]


def test_claims_go_oldest_first_and_skip_finished(db):
    ids = _jobs(db, 3)
    with db.write_session() as session:
        session.execute(update(Job).where(Job.id == ids[0]).values(status="cancelled"))
        session.commit()
    assert claim_job(db, "w", 60).job_id == ids[1]
    assert claim_job(db, "w", 60).job_id == ids[2]
    assert claim_job(db, "w", 60) is None


def test_expired_lease_is_claimed_again_and_fences_the_old_worker(db, settings):
    (job_id,) = _jobs(db, 1)
    first = claim_job(db, "old", lease_s=60)
    assert first is not None and not first.resumed
    assert claim_job(db, "new", lease_s=60) is None  # lease still fresh
    assert heartbeat(db, [first]) == {job_id}
    with db.write_session() as session:  # the old worker stops sending heartbeats
        session.execute(update(Job).where(Job.id == job_id)
                        .values(heartbeat_at=utcnow() - timedelta(seconds=120)))
        session.commit()
    second = claim_job(db, "new", lease_s=60)
    assert second is not None and second.job_id == job_id
    assert second.attempt == 2 and second.resumed

    spec = parse_spec({"name": "x"})
    stale = SqlSink(db, first, spec, artifact_root=settings.artifact_dir)
    record = TrialRecord(0, {"a": 1}, "k0", TrialState.COMPLETE, reward=1.0,
                         metrics={"val_acc": 1.0}, evaluation_index=1)
    with pytest.raises(LeaseLost):
        stale.on_trial(record)
    with pytest.raises(LeaseLost):
        stale.on_checkpoint({"last_trial_id": 0})
    assert stale.should_stop()
    assert heartbeat(db, [first]) == set()
    fresh = SqlSink(db, second, spec, artifact_root=settings.artifact_dir)
    fresh.on_trial(record)
    with db.reading() as session:
        job = session.get(Job, job_id)
        assert job.n_trials == 1 and job.worker_id == "new"
    assert release(db, second)
    assert claim_job(db, "third", lease_s=60).attempt == 3
