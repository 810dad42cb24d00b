"""The dashboard's trial filter (the parallel coordinates' brushes, hide repeats) and its CSV
select the same trials on SQLite and PostgreSQL: decision values compared as JSON (strings,
integers, floats such as 1.0), metric ranges, cached rows."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from service.dashboard import queries
from service.dashboard.export import trials_csv
from service.models import Job, Trial, User

OPS = ["none", "conv", "skip"]
ROWS = [{"trial_id": i,
         "arch": {"op": OPS[i % 3], "k": [3, 5][i % 2], "w": [0.5, 1.0, 1.25][i % 3]},
         "arch_key": f"a{i}", "state": "complete" if i % 5 else "failed",
         "reward": float(i), "metrics": {"acc": float(i), "lat": 10.0 - i / 2} if i % 5 else {},
         "cached": i % 7 == 6} for i in range(30)]


@pytest.fixture
def job(db: Any) -> Job:
    with db.writing() as session:
        user = User(name="filters")
        session.add(user)
        session.flush()
        job = Job(owner_id=user.id, name="filters", spec={"objectives": [
            {"metric": "acc", "direction": "max"}]}, n_trials=len(ROWS))
        session.add(job)
        session.flush()
        for row in ROWS:
            session.add(Trial(job_id=job.id, **row))
        session.expunge(job)
    return job


def expected(f: queries.TrialFilter) -> list[int]:
    out = []
    for r in ROWS:
        ranges = (f.where or {}).get("ranges", {})
        choices = (f.where or {}).get("choices", {})
        if not f.repeats and r["cached"]:
            continue
        if any(not (lo <= r["metrics"].get(k.split(".", 1)[1], float("nan")) <= hi)
               for k, (lo, hi) in ranges.items()):
            continue
        if any(r["arch"][name] not in values for name, values in choices.items()):
            continue
        out.append(r["trial_id"])
    return out


@pytest.mark.parametrize("where,repeats", [
    ({"choices": {"op": ["conv", "skip"]}}, True),
    ({"choices": {"k": [5]}}, False),
    ({"choices": {"w": [1.0, 1.25]}, "ranges": {"metrics.acc": [4, 22]}}, True),
    ({"choices": {"w": [1]}}, True),  # 1 and 1.0 are the same JSON number
    ({"choices": {"op": [3]}}, True),  # a number never equals a string decision
    ({"ranges": {"metrics.lat": [0, 5]}}, False),
])
def test_filter_and_csv_select_the_same_trials(db: Any, job: Job, where: dict[str, Any],
                                               repeats: bool) -> None:
    f = queries.TrialFilter(repeats=repeats, where=queries.parse_where(json.dumps(where)))
    with db.reading() as session:
        page = queries.trials_page(session, job, f, offset=0, limit=100, sort="trial_id",
                                   order="asc")
        text = trials_csv(session, job, f, "trial_id", "asc")
    want = expected(f)
    assert [t["t"] for t in page["data"]] == want and page["count"] == len(want)
    table = list(csv.reader(io.StringIO(text)))
    assert [int(r[0]) for r in table[1:]] == want
    assert table[0][:3] == ["trial_id", "state", "reward"]
