"""CSV of the trials the table shows: the same filter (``queries.TrialFilter``) and order as
the trials route, every page of it, one row per trial."""

from __future__ import annotations

import csv
import io
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.admission import job_metrics_document
from service.dashboard.queries import TrialFilter, _number, _sort_key, filter_conditions, objectives
from service.models import Job, Trial

FIXED = ["trial_id", "state", "reward", "on_front", "cached", "duration_s", "arch_key",
         "error"]


def trials_csv(session: Session, job: Job, f: TrialFilter, sort: str,
               order: Literal["asc", "desc"]) -> str:
    """The CSV text (read in one transaction, so it is one consistent snapshot). Metric
    columns: the objectives, then every other metric the matching trials carry, by name,
    with the unit the metric registry gives."""
    conds = filter_conditions(job, f, session.get_bind().dialect.name, sort)
    key = _sort_key(sort)
    key = key.asc() if order == "asc" else key.desc()
    rows = session.execute(
        select(Trial.trial_id, Trial.state, Trial.reward, Trial.on_front, Trial.cached,
               Trial.duration_s, Trial.arch_key, Trial.error, Trial.metrics)
        .where(*conds).order_by(key.nulls_last(), Trial.trial_id)).all()
    names: dict[str, None] = {o["metric"]: None for o in objectives(job)}
    for r in rows:
        names.update(dict.fromkeys(sorted(r.metrics or {})))
    registry, _formula = job_metrics_document(job.id, job.spec)
    units = {n: (registry.get(n) or {}).get("unit") for n in names}
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    # The metric registry's unit in brackets: "metrics.pixel3_latency [ms]".
    out.writerow(FIXED + [f"metrics.{n} [{units[n]}]" if units[n] else f"metrics.{n}"
                          for n in names])
    for r in rows:
        metrics: dict[str, Any] = r.metrics or {}
        out.writerow([r.trial_id, r.state, _cell(r.reward), int(bool(r.on_front)),
                      int(bool(r.cached)), _cell(r.duration_s), r.arch_key, r.error or ""]
                     + [_cell(_number(metrics.get(n))) for n in names])
    return buf.getvalue()


def _cell(v: float | None) -> str:
    return "" if v is None else repr(float(v))
