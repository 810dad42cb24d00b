"""Trial pages built by the database (PostgreSQL) or from rows (SQLite) are the schema's
document: same values, same order, the awkward ones included."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from service import crud
from service.models import Job, Trial, TrialMetric, User
from service.schemas import TrialPublic, TrialsPublic
from service.trial_pages import page_json

ROWS: list[dict[str, Any]] = [
    {"trial_id": 1, "arch": {"ops": ["conv3", "skip"], "width": 0.5}, "arch_key": "a|b",
     "state": "complete", "reward": 91.25,
     "metrics": {"val_acc": 91.25, "params": 12345, "lat": None},
     "recorded": {"test_acc": 90.5, "nested": {"x": [1, 2]}}, "info": {"cached_from": 3},
     "error": None, "cached": False, "evaluation_index": 0, "duration_s": 0.25,
     "node": "local", "artifacts": {"weights": "trial1/w.pt"}, "on_front": True},
    {"trial_id": 2, "arch": {}, "arch_key": "", "state": "failed", "reward": math.nan,
     "metrics": {}, "recorded": {}, "info": {}, "error": 'Boom: "x"\nline 2\ttab',
     "cached": True, "evaluation_index": None, "duration_s": math.inf, "node": None,
     "artifacts": {}, "on_front": False},
    {"trial_id": 3, "arch": {"k": "é", "z": 1, "aa": [None, True]}, "arch_key": "ü",
     "state": "pruned", "reward": -math.inf, "metrics": {"val_acc": 1e-300, "big": 1e300},
     "recorded": {}, "info": {}, "error": None, "cached": False, "evaluation_index": 5,
     "duration_s": 1e9, "node": "n1", "artifacts": {}, "on_front": False},
    *({"trial_id": i, "arch": {"i": i}, "arch_key": f"k{i}", "state": "complete",
       "reward": i / 7, "metrics": {"val_acc": (i * 37 % 11) / 3}, "recorded": {}, "info": {},
       "error": None, "cached": False, "evaluation_index": i, "duration_s": i * 0.1,
       "node": "local", "artifacts": {}, "on_front": i % 2 == 0} for i in range(4, 14)),
]


def numbers_as_floats(document: str | bytes) -> Any:
    """JSON numbers by value: PostgreSQL's ``jsonb`` writes 1e300 out in full (an integer
    to Python's parser), the schema writes ``1e+300``; JSON readers take both as one number."""
    return json.loads(document, parse_int=float)


@pytest.fixture
def job(db: Any) -> Job:
    with db.writing() as session:
        user = User(name="pages")
        session.add(user)
        session.flush()
        job = Job(owner_id=user.id, name="pages", spec={}, n_trials=len(ROWS))
        session.add(job)
        session.flush()
        for row in ROWS:
            session.add(Trial(job_id=job.id, **row))
            for name, value in row["metrics"].items():
                if value is not None:
                    session.add(TrialMetric(job_id=job.id, trial_id=row["trial_id"],
                                            name=name, value=value))
        session.expunge(job)
    return job


@pytest.mark.parametrize("query", [
    {}, {"offset": 5, "limit": 4}, {"sort": "reward", "order": "desc"},
    {"sort": "duration_s"}, {"sort": "val_acc", "order": "desc", "limit": 20},
    {"sort": "val_acc", "offset": 10, "limit": 3},  # past the trials with the metric
    {"state": "complete", "sort": "evaluation_index", "order": "desc"},
    {"offset": 100}, {"sort": "no_such_metric"},
])
def test_a_page_is_the_schemas_document(db, job, query):
    with db.reading() as session:
        rows, count = crud.list_trials(session, job, **query)
    expected = TrialsPublic(data=[TrialPublic.model_validate(r) for r in rows], count=count)
    body = db.read(lambda session: page_json(session, job, **query))
    assert numbers_as_floats(body) == numbers_as_floats(expected.model_dump_json())
    if rows:
        assert list(json.loads(body)["data"][0]) == list(TrialPublic.model_fields)
    if not query:
        data = numbers_as_floats(body)["data"]
        assert [t["trial_id"] for t in data] == list(range(1, 14))
        nan, minus_inf = data[1:3]
        assert nan["reward"] is None and nan["duration_s"] is None
        assert minus_inf["reward"] is None and minus_inf["metrics"]["big"] == 1e300
