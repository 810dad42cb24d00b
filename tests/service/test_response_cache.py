"""The response cache, and the trial pages' direct JSON against the schema's document."""

from __future__ import annotations

import json
import math

import pytest

from service.api.cache import ResponseCache
from service.schemas import TrialPublic, TrialsPublic
from service.trial_pages import trials_json


def test_a_miss_builds_once_then_hits():
    cache = ResponseCache()
    calls = []

    def build() -> bytes:
        calls.append(1)
        return b'{"n":1}'

    bodies = [cache.respond(("trials", "j", 1), build).body for _ in range(3)]
    assert bodies == [b'{"n":1}'] * 3 and len(calls) == 1
    cache.respond(("trials", "j", 2), build)  # a new job version is a new answer
    assert len(calls) == 2 and cache.hits == 2


def test_the_trial_page_json_is_the_schemas_document():
    """Rows as the database gives them, with the awkward values: NaN and infinite rewards,
    integer metrics, a failed trial with an error, nested architecture values."""
    rows = [
        {"trial_id": 1, "arch": {"ops": ["conv3", "skip"], "width": 0.5}, "arch_key": "a|b",
         "state": "complete", "reward": 91.25, "metrics": {"val_acc": 91.25, "params": 12345,
                                                            "lat": None},
         "recorded": {"test_acc": 90.5, "nested": {"x": [1, 2]}}, "info": {"cached_from": 3},
         "error": None, "cached": False, "evaluation_index": 0, "duration_s": 0.25,
         "node": "local", "artifacts": {"weights": "trial1/w.pt"}, "on_front": True},
        {"trial_id": 2, "arch": {}, "arch_key": "", "state": "failed", "reward": math.nan,
         "metrics": {}, "recorded": {}, "info": {}, "error": "Boom: x\nline 2",
         "cached": True, "evaluation_index": None, "duration_s": 0.0, "node": None,
         "artifacts": {}, "on_front": False},
        {"trial_id": 3, "arch": {"k": "é"}, "arch_key": "ü", "state": "pruned",
         "reward": -math.inf, "metrics": {"v": 1e-300}, "recorded": {}, "info": {},
         "error": None, "cached": False, "evaluation_index": 5, "duration_s": 1e9,
         "node": "n1", "artifacts": {}, "on_front": False, "extra_column": "not public"},
    ]
    schema = TrialsPublic(data=[TrialPublic.model_validate(r) for r in rows], count=7)
    assert json.loads(trials_json(rows, 7)) == json.loads(schema.model_dump_json())


@pytest.mark.parametrize("missing", ["on_front", "node"])
def test_the_trial_page_json_needs_every_public_field(missing):
    row = {f: None for f in TrialPublic.model_fields if f != missing}
    with pytest.raises(KeyError):
        trials_json([row], 1)
