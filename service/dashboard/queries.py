"""The dashboard's reads: down-sampled scatter data, progress series, filtered trial pages and
what changed since a cursor (for the event stream).

Everything here is a read of rows the worker committed; nothing is cached in the API process,
so any number of API replicas serve the same picture. Axis keys name where a number lives:
``trial_id``/``reward``/``duration_s``/``evaluation_index`` (columns), ``metrics.<name>``
(what the agent saw) or ``recorded.<name>`` (kept for the user, e.g. ``test_acc``).
"""

from __future__ import annotations

import json
import math
import re
import zlib
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from sqlalchemy import ColumnElement, func, literal, or_, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from search.trials import better_best, counts
from service.artifacts import job_dir
from service.core.errors import InvalidInput
from service.models import HypervolumePoint, Job, Trial

#: An event's id: ``<trial row>.<hv points>.<hv checksum>`` (``Cursor``).
CURSOR_RE = r"(\d{1,18})\.(\d{1,9})\.([0-9a-f]{1,8})"
CURSOR_PATTERN = rf"^({CURSOR_RE})?$"
COLUMNS = ("trial_id", "reward", "duration_s", "evaluation_index")
AXIS_RE = re.compile(r"^(?:(metrics|recorded)\.)?([A-Za-z0-9_.:\-]{1,200})$")
ARCH_KEY_CHARS = 300  # hover text; the full architecture is one click away
ERROR_CHARS = 300


# ---- axes ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Axis:
    source: Literal["column", "metrics", "recorded"]
    name: str

    @property
    def key(self) -> str:
        return self.name if self.source == "column" else f"{self.source}.{self.name}"


def parse_axis(key: str, field: str) -> Axis:
    """An axis key from a query parameter; ``InvalidInput`` naming ``field`` otherwise."""
    m = AXIS_RE.match(key)
    if m is None:
        raise InvalidInput(field, f"not an axis key: {key[:200]!r}; use one of {list(COLUMNS)},"
                                  " 'metrics.<name>' or 'recorded.<name>'")
    source, name = m.group(1), m.group(2)
    if source is None:
        if name not in COLUMNS:
            raise InvalidInput(field, f"unknown column {name!r}; columns: {list(COLUMNS)} "
                                      "(metrics: 'metrics.<name>')")
        return Axis("column", name)
    return Axis(source, name)  # type: ignore[arg-type]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def axis_value(axis: Axis, row: Any) -> float | None:
    if axis.source == "column":
        return _number(getattr(row, axis.name))
    values = row.metrics if axis.source == "metrics" else row.recorded
    return _number((values or {}).get(axis.name))


def objectives(job: Job) -> list[dict[str, str]]:
    """The job's objectives as stored (read without re-validating the spec)."""
    out = []
    for o in (job.spec or {}).get("objectives") or []:
        if isinstance(o, dict) and isinstance(o.get("metric"), str):
            out.append({"metric": o["metric"], "direction": o.get("direction", "max")})
    return out


def axes(session: Session, job: Job, sample: int = 200) -> list[dict[str, Any]]:
    """Axis choices: objectives first, then other numeric metrics and recorded values seen in
    the latest ``sample`` trials, then the columns."""
    objs = objectives(job)
    out: list[dict[str, Any]] = [
        {"key": f"metrics.{o['metric']}", "label": o["metric"], "group": "objective",
         "direction": o["direction"]} for o in objs]
    seen = {a["key"] for a in out}
    rows = session.execute(
        select(Trial.metrics, Trial.recorded).where(Trial.job_id == job.id)
        .order_by(Trial.id.desc()).limit(sample)).all()
    for source in ("metrics", "recorded"):
        names: set[str] = set()
        for row in rows:
            values = getattr(row, source) or {}
            names.update(k for k, v in values.items() if _number(v) is not None)
        for name in sorted(names):
            key = f"{source}.{name}"
            if key not in seen and AXIS_RE.match(key):
                seen.add(key)
                out.append({"key": key, "label": name, "group": source, "direction": None})
    out += [{"key": c, "label": c, "group": "column", "direction": "max" if c == "reward"
             else None} for c in COLUMNS]
    return out


# ---- cursors -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cursor:
    """What a client already has: trials up to row ``trial`` (row ids only grow) and the
    first ``hv`` points of the hypervolume history, whose checksum is ``sig``.

    The history is matched by content, not by row id: the worker rewrites it whenever the
    reference point moves, and SQLite may hand the new rows the ids of the deleted ones."""

    trial: int = 0
    hv: int = 0
    sig: str = "0"

    def __str__(self) -> str:
        return f"{self.trial}.{self.hv}.{self.sig}"

    @classmethod
    def parse(cls, text: str | None, field: str = "since") -> Cursor:
        text = (text or "").strip()
        if not text:
            return cls()
        m = re.fullmatch(CURSOR_RE, text)
        if m is None:
            raise InvalidInput(field, f"not a cursor: {text[:60]!r}; expected "
                                      "'<trial>.<points>.<checksum>' as sent in an event's id")
        return cls(int(m.group(1)), int(m.group(2)), m.group(3))


def _signature(points: list[list[float]]) -> str:
    return format(zlib.crc32(json.dumps(points).encode()), "x")


def hv_history(session: Session, job_id: str) -> list[list[float]]:
    """``[evaluations, value]`` per change: indexed by distinct evaluations, like progress."""
    return [[e, v] for e, v in session.execute(
        select(HypervolumePoint.evaluations, HypervolumePoint.value)
        .where(HypervolumePoint.job_id == job_id)
        .order_by(HypervolumePoint.trial_id, HypervolumePoint.id)).all()]


def current_cursor(session: Session, job_id: str,
                   history: list[list[float]] | None = None) -> Cursor:
    trial = session.scalar(select(func.max(Trial.id)).where(Trial.job_id == job_id))
    history = hv_history(session, job_id) if history is None else history
    return Cursor(int(trial or 0), len(history), _signature(history))


# ---- scatter -------------------------------------------------------------------------------
def _downsample(x: np.ndarray, y: np.ndarray, keep: np.ndarray, max_points: int) -> np.ndarray:
    """Indices to draw: every ``keep`` point, plus one point per occupied cell of a grid over
    the plot, thinned evenly if the cells exceed the budget. The grid is refined until the
    occupied cells fill the budget (trials crowd into a small part of the plot), so the shape
    of the cloud, its edges and outliers survive; the density inside it is what is dropped."""
    kept = np.flatnonzero(keep)
    budget = max_points - len(kept)
    if budget <= 0:
        return kept
    rest = np.flatnonzero(~keep)

    def scaled(v: np.ndarray) -> np.ndarray:
        lo, hi = float(v.min()), float(v.max())
        return (v - lo) / (hi - lo) if hi > lo else np.zeros_like(v)

    sx, sy = scaled(x[rest]), scaled(y[rest])
    side = max(2, int(math.sqrt(budget)))
    while True:
        cx = np.minimum((sx * side).astype(np.int64), side - 1)
        cy = np.minimum((sy * side).astype(np.int64), side - 1)
        _, first = np.unique(cx * side + cy, return_index=True)  # lowest trial id per cell
        if len(first) >= budget or side >= 4096:
            break
        side *= 2
    chosen = rest[np.sort(first)]
    if len(chosen) > budget:
        chosen = chosen[np.linspace(0, len(chosen) - 1, budget).astype(np.int64)]
    return np.union1d(kept, chosen)


def scatter(session: Session, job: Job, x: Axis, y: Axis, color: Axis | None,
            max_points: int) -> dict[str, Any]:
    """Completed, first-time trials with both coordinates, down-sampled to ``max_points``;
    Pareto points and the best trial are always kept. Column-wise JSON keeps it small."""
    cursor = current_cursor(session, job.id)
    wanted = [x, y] + ([color] if color else [])
    wanted += [Axis("metrics", o["metric"]) for o in objectives(job)] + [Axis("column",
                                                                             "reward")]
    shown_axes = list(dict.fromkeys(wanted))
    load = [Trial.id, Trial.trial_id, Trial.on_front, Trial.reward, Trial.metrics,
            Trial.duration_s, Trial.evaluation_index]
    if any(a.source == "recorded" for a in shown_axes):
        load.append(Trial.recorded)
    rows = session.execute(
        select(*load).where(Trial.job_id == job.id, Trial.state == "complete",
                            Trial.cached.is_(False)).order_by(Trial.trial_id)).all()
    # One pass: each row's two coordinates are read once (this loop is most of the time).
    points, xs, ys = [], [], []
    for row in rows:
        xv, yv = axis_value(x, row), axis_value(y, row)
        if xv is not None and yv is not None:
            points.append(row)
            xs.append(xv)
            ys.append(yv)
    total = len(points)
    if total > max_points:
        best = job.best_trial_id
        keep = np.fromiter((bool(r.on_front) or r.trial_id == best for r in points), bool, total)
        idx = _downsample(np.array(xs), np.array(ys), keep, max_points).tolist()
    else:
        idx = list(range(total))
    chosen = [points[i] for i in idx]
    known = {x.key: xs, y.key: ys}
    cols = {a.key: [known[a.key][i] for i in idx] if a.key in known else
            [axis_value(a, r) for r in chosen] for a in shown_axes}
    ids = [r.trial_id for r in chosen]
    keys = dict(session.execute(
        select(Trial.trial_id, Trial.arch_key).where(Trial.job_id == job.id,
                                                     Trial.trial_id.in_(ids))).all()
                ) if len(ids) <= 30_000 else {}
    front = session.scalars(select(Trial.trial_id).where(
        Trial.job_id == job.id, Trial.on_front.is_(True)).order_by(Trial.trial_id)).all()
    return {
        "x": x.key, "y": y.key, "color": color.key if color else None,
        "total": total, "shown": len(chosen), "sampled": len(chosen) < total,
        "t": ids, "f": [int(bool(r.on_front)) for r in chosen],
        "k": [(keys.get(t) or "")[:ARCH_KEY_CHARS] for t in ids],
        "cols": cols,
        "front": list(front), "best": job.best_trial_id, "cursor": str(cursor),
    }


# ---- progress series -----------------------------------------------------------------------
def series(session: Session, job: Job) -> dict[str, Any]:
    """Hypervolume and best reward after each evaluation that changed them, as
    ``[evaluations, value]``; the best is chosen by ``search.trials`` (the job's best trial)."""
    hv = hv_history(session, job.id)
    cursor = current_cursor(session, job.id, hv)
    rows = session.execute(
        select(Trial.trial_id, Trial.evaluation_index, Trial.reward, Trial.state, Trial.cached,
               Trial.recorded).where(
            Trial.job_id == job.id, Trial.state == "complete", Trial.cached.is_(False),
            Trial.reward.is_not(None))
        .order_by(Trial.trial_id)).all()
    best: list[list[float]] = []
    top = None
    for row in rows:
        if better_best(row, top):
            top = row
            best.append([row.evaluation_index or 0, row.reward])
    return {"hv": hv, "best": best, "last": job.evaluations,
            "reference": job.hv_reference, "reference_source": job.hv_reference_source,
            "true_front": job.hv_true_front, "cursor": str(cursor)}


# ---- trials --------------------------------------------------------------------------------
def compact(row: Trial) -> dict[str, Any]:
    """A trial as the page draws it (the full row is one request away)."""
    out: dict[str, Any] = {
        "t": row.trial_id, "s": row.state, "r": _number(row.reward),
        "m": {k: _number(v) for k, v in (row.metrics or {}).items()},
        "rc": {k: v for k, v in ((row.recorded or {}).items()) if _number(v) is not None},
        "f": bool(row.on_front), "c": bool(row.cached), "k": row.arch_key[:ARCH_KEY_CHARS],
        "e": row.evaluation_index, "d": row.duration_s,
        "n": counts(row),  # may be the best trial or on the front (search.trials)
    }
    if row.error:
        out["err"] = row.error[:ERROR_CHARS]
    if row.artifacts:
        out["a"] = {k: v for k, v in row.artifacts.items() if v}
    return out


def _sort_key(sort: str) -> ColumnElement[Any]:
    axis = parse_axis(sort, "sort")
    if axis.source == "column":
        return getattr(Trial, axis.name)
    if axis.source == "recorded":
        raise InvalidInput("sort", "sort by a column or 'metrics.<name>'")
    return Trial.metrics[axis.name].as_float()


@dataclass(frozen=True)
class TrialFilter:
    """What the trials table shows: the same filter pages the table, the CSV export and the
    parallel coordinates' brushing (``where``: metric ranges and decision choices)."""

    state: str | None = None
    front: bool = False
    metric: str | None = None
    low: float | None = None
    high: float | None = None
    q: str | None = None
    repeats: bool = True
    where: dict[str, Any] | None = None


def parse_where(text: str | None) -> dict[str, Any] | None:
    """``{"ranges": {"metrics.<name>": [lo, hi]}, "choices": {"<decision>": [values]}}``
    from a query parameter; ``InvalidInput('where')`` for anything else."""
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError as err:
        raise InvalidInput("where", f"not JSON: {err}") from None
    if not isinstance(data, dict) or set(data) - {"ranges", "choices"}:
        raise InvalidInput("where", "expected an object with 'ranges' and/or 'choices'")
    ranges, choices = data.get("ranges") or {}, data.get("choices") or {}
    if not isinstance(ranges, dict) or not isinstance(choices, dict) \
            or len(ranges) + len(choices) > 64:
        raise InvalidInput("where", "'ranges' and 'choices' are objects (64 entries at most)")
    for key, bounds in ranges.items():
        parse_axis(key, "where")
        if not (isinstance(bounds, list) and len(bounds) == 2
                and all(_number(b) is not None for b in bounds)):
            raise InvalidInput("where", f"range of {key[:200]!r} must be [low, high] numbers")
    for name, values in choices.items():
        if not AXIS_RE.match(name) or not isinstance(values, list) or not values or any(
                isinstance(v, dict | list) for v in values) or len(values) > 256:
            raise InvalidInput("where", f"choices of {name[:200]!r} must be a list of values")
    return {"ranges": ranges, "choices": choices}


def filter_conditions(job: Job, f: TrialFilter, dialect: str,
                      sort: str = "trial_id") -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = [Trial.job_id == job.id]
    state, front, metric, low, high, q = f.state, f.front, f.metric, f.low, f.high, f.q
    if state:
        conds.append(Trial.state == state)
    if front:
        conds.append(Trial.on_front.is_(True))
    if not f.repeats:
        conds.append(Trial.cached.is_(False))
    for key, (lo, hi) in ((f.where or {}).get("ranges") or {}).items():
        value = _sort_key(key)
        conds += [value >= float(lo), value <= float(hi)]
    for name, values in ((f.where or {}).get("choices") or {}).items():
        conds.append(_arch_in(name, values, dialect))
    if (low is not None or high is not None) and not metric:
        metric = sort  # min/max bound the sort key unless a metric is named
    if metric:
        value = _sort_key(metric)
        if low is not None:
            conds.append(value >= low)
        if high is not None:
            conds.append(value <= high)
        if low is None and high is None:
            conds.append(value.is_not(None))
    if q:
        text = [Trial.arch_key.icontains(q, autoescape=True)]
        if q.strip().lstrip("#").isdigit():
            text.append(Trial.trial_id == int(q.strip().lstrip("#")))
        conds.append(or_(*text))
    return conds


def _arch_in(name: str, values: list[Any], dialect: str) -> ColumnElement[bool]:
    """A decision's value is one of ``values``: SQLite's json_extract gives the native text
    or number; PostgreSQL compares jsonb with jsonb (1.0 equals 1)."""
    if dialect == "sqlite":
        return func.json_extract(Trial.arch, f"$.{json.dumps(name)}").in_(values)
    return Trial.arch.op("->", return_type=JSONB)(name).in_(
        [literal(v, JSONB) for v in values])


def trials_page(session: Session, job: Job, f: TrialFilter, *, offset: int, limit: int,
                sort: str, order: Literal["asc", "desc"]) -> dict[str, Any]:
    conds = filter_conditions(job, f, session.get_bind().dialect.name, sort)
    key = _sort_key(sort)
    key = key.asc() if order == "asc" else key.desc()
    count = session.scalar(select(func.count()).select_from(Trial).where(*conds)) or 0
    rows = session.scalars(select(Trial).where(*conds)
                           .order_by(key.nulls_last(), Trial.trial_id)
                           .offset(offset).limit(limit)).all()
    return {"data": [compact(r) for r in rows], "count": int(count)}


def trial_row(session: Session, job_id: str, trial_id: int) -> Trial | None:
    return session.scalar(select(Trial).where(Trial.job_id == job_id,
                                              Trial.trial_id == trial_id))


def trial_files(artifact_root: Any, row: Trial) -> list[dict[str, Any]]:
    """The trial's files with their sizes and what each is: those its evaluation wrote
    (a file another node kept is listed missing, without a path) and the deployable files
    the job exported for it (``models/trial<ID>/``)."""
    base = job_dir(artifact_root, row.job_id)
    out = []
    for name, rel in sorted((row.artifacts or {}).items()):
        size = None
        if rel:
            path = base / rel
            try:
                if path.resolve().is_relative_to(base.resolve()) and path.is_file():
                    size = path.stat().st_size
            except OSError:
                size = None
        out.append({"name": name, "path": rel or None, "size": size,
                    "what": describe_file(rel or name)})
    listed = {f["path"] for f in out}
    out += [f for f in job_files(artifact_root, row.job_id)
            if f["trial"] == row.trial_id and f["path"] not in listed]
    return out


FILE_KINDS = (  # (suffix of the name, what the file is), first match wins
    ("results.json", "Search results: every trial, the Pareto front and the best trial"),
    ("_card.json", "Model card (JSON): metrics, latency, provenance"),
    ("_card.md", "Model card (Markdown)"),
    ("export-error.txt", "Why exporting the models failed"),
    (".pt", "PyTorch weights (state dict)"),
    (".ts", "TorchScript model"),
    (".onnx", "ONNX model"),
    (".lsz", "Compressed model (LightSearch format)"),
    (".png", "Per-layer policy plot"),
    (".json", "JSON file written by the evaluator"),
    (".log", "Log"),
)
TRIAL_FOLDER = re.compile(r"^(?:models/trial|trials/)(\d+)/")


def describe_file(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return next((what for suffix, what in FILE_KINDS if name.endswith(suffix)), "File")


def job_files(artifact_root: Any, job_id: str) -> list[dict[str, Any]]:
    """Every file in the job's folder: path, size, what it is and the trial it belongs to
    (exported models sit in ``models/trial<ID>/``)."""
    from service.artifacts import list_artifacts

    out = []
    for f in list_artifacts(artifact_root, job_id):
        m = TRIAL_FOLDER.match(f.path)
        out.append({"name": f.path.rsplit("/", 1)[-1], "path": f.path, "size": f.size,
                    "what": describe_file(f.path), "trial": int(m.group(1)) if m else None})
    return out


# ---- what changed since a cursor (the event stream) -----------------------------------------
def trials_after(session: Session, job_id: str, after: int, limit: int) -> list[Trial]:
    """Trial rows inserted after row ``after``: a primary-key range scan, cheap however many
    trials the job has. A trial re-run after a resume is a new row, so it is sent again."""
    return list(session.scalars(select(Trial).where(Trial.id > after, Trial.job_id == job_id)
                                .order_by(Trial.id).limit(limit)).all())


def hv_after(session: Session, job_id: str,
             cursor: Cursor) -> tuple[bool, list[list[float]], int, str]:
    """New hypervolume points as ``(reset, points, count, checksum)``: the points after the
    client's ``cursor.hv`` when its copy is still a prefix of the history, else the whole
    history with ``reset`` (the worker rewrote it: the reference point moved)."""
    history = hv_history(session, job_id)
    count, sig = len(history), _signature(history)
    if cursor.hv <= count and _signature(history[:cursor.hv]) == cursor.sig:
        return False, history[cursor.hv:], count, sig
    return True, history, count, sig


def front_ids(session: Session, job_id: str) -> list[int]:
    return list(session.scalars(select(Trial.trial_id).where(
        Trial.job_id == job_id, Trial.on_front.is_(True)).order_by(Trial.trial_id)).all())
