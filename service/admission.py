"""What the service checks at submit beyond the spec's own validation and the path policy:
every metric the job names is one it produces (``search.metrics``), and every executor field
takes effect on this service or is refused. A job the worker would refuse is refused here,
with the field at fault, so it never reaches the queue.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from pydantic import ValidationError

from search.metrics import JobMetrics, check_metrics, job_metrics, metric_info
from search.objectives import reward_formula
from search.spec import JobSpec, SpecError
from service.core.config import Settings
from service.core.errors import InvalidInput


def check_executor(spec: JobSpec, settings: Settings) -> None:
    """The service's workers run jobs on their own Ray (``RAY_ADDRESS``), so a job cannot
    choose one; with ``executor = "ray"`` every job runs on Ray, so a job cannot ask for
    ``local``. Both are refused rather than silently changed."""
    if spec.executor.address is not None:
        raise InvalidInput("executor.address", "the service runs jobs on its own Ray "
                           "cluster; leave executor.address out (it is for "
                           "'lightsearch search')")
    if settings.executor == "ray" and spec.executor.name == "local" \
            and "name" in spec.executor.model_fields_set:
        raise InvalidInput("executor.name", "this server runs every job on Ray "
                           "(LIGHTSEARCH_EXECUTOR=ray); set executor.name to 'ray' or leave "
                           "it out", ["ray"])


def admit(spec: JobSpec, settings: Settings) -> JobMetrics:
    """Refuse (``InvalidInput``) a job this service would not run as written; its metrics."""
    check_executor(spec, settings)
    try:
        return check_metrics(spec)
    except SpecError as err:
        raise InvalidInput(err.field, err.message, err.valid) from None


def job_metrics_document(job_id: str, spec: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """A job's ``metrics`` (name -> label, unit, device, direction) and ``reward_formula``
    for its document. A spec never changes, so one job's answer is kept (by id); a table that
    has since gone still names the metrics the objectives use."""
    return _document(job_id, json.dumps(spec, sort_keys=True))


@lru_cache(maxsize=1024)
def _document(_job_id: str, spec_json: str) -> tuple[dict[str, Any], str | None]:
    try:
        spec = JobSpec.model_validate(json.loads(spec_json))
    except ValidationError:
        return {}, None  # stored before a rule it breaks: shown without metric details
    try:
        infos = job_metrics(spec).metrics
    except SpecError:
        infos = {}
    for o in spec.objectives:
        infos.setdefault(o.metric, metric_info(o.metric))
    units = {name: m.unit for name, m in infos.items()}
    return ({name: m.public() for name, m in infos.items()},
            reward_formula(spec.reward, spec.objectives, units))
