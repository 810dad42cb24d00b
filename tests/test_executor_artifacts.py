"""Artifact files written on a Ray node other than the driver's come back with the result."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from search.base import Evaluation, Evaluator
from search.executors import EvalOutcome, EvalTask, RayExecutor, pack_artifacts, unpack_artifacts
from spaces.base import Architecture, Space
from spaces.nb201 import NB201Space


class ArtifactEvaluator(Evaluator):
    """Writes one small model file per trial under ``folder`` (as ``export_dir`` would)."""

    name = "artifact-writer"

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def signal_metrics(self) -> list[str]:
        return ["val_acc"]

    def evaluate(self, arch: Architecture, space: Space, *, seed: int) -> Evaluation:
        path = Path(self.folder) / f"model-{space.to_index(arch)}.bin"
        path.write_bytes(space.key(arch).encode() * 3)
        return Evaluation(metrics={"val_acc": 1.0}, artifacts={"model": str(path)})


def outcome_with_file(path: Path, data: bytes) -> EvalOutcome:
    path.write_bytes(data)
    return EvalOutcome(7, Evaluation(metrics={"val_acc": 1.0}, artifacts={"model": str(path)}))


def test_shipped_file_is_rewritten_at_its_path(tmp_path: Path) -> None:
    outcome = outcome_with_file(tmp_path / "m.bin", b"weights")
    pack_artifacts(outcome)
    os.remove(tmp_path / "m.bin")  # as seen from the driver: the file is on another node
    unpack_artifacts(outcome, str(tmp_path / "fallback"))
    assert outcome.evaluation.artifacts["model"] == str(tmp_path / "m.bin")
    assert (tmp_path / "m.bin").read_bytes() == b"weights"
    assert outcome.shipped is None and not (tmp_path / "fallback").exists()


def test_shipped_file_goes_to_the_fallback_when_its_folder_cannot_exist(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the remote node had a folder")
    (tmp_path / "remote").mkdir()
    outcome = outcome_with_file(tmp_path / "remote" / "m.bin", b"\x00\x01weights")
    pack_artifacts(outcome)
    outcome.shipped = {"model": (str(blocker / "sub" / "m.bin"), outcome.shipped["model"][1])}
    unpack_artifacts(outcome, str(tmp_path / "fallback"))
    landed = Path(outcome.evaluation.artifacts["model"])
    assert landed.parent.parent == tmp_path / "fallback"
    assert landed.read_bytes() == b"\x00\x01weights"


def test_outcomes_without_artifacts_ship_nothing() -> None:
    outcome = EvalOutcome(1, Evaluation(metrics={"val_acc": 1.0}))
    pack_artifacts(outcome)
    assert outcome.shipped is None


@pytest.mark.ray
def test_ray_executor_ships_artifacts_from_another_node(ray_session, tmp_path: Path) -> None:
    space = NB201Space()
    executor = RayExecutor(chunk_size=1)
    executor._driver_node = "another-node"  # every worker now counts as remote
    archs = [space.from_index(i) for i in (0, 1, 2)]
    tasks = [EvalTask(i, a, seed=0) for i, a in enumerate(archs)]
    outcomes = executor.run(ArtifactEvaluator(str(tmp_path)), space, tasks)
    assert executor.files_shipped == 3
    for outcome, arch in zip(outcomes, archs, strict=True):
        assert outcome.error is None and outcome.shipped is None
        path = Path(outcome.evaluation.artifacts["model"])
        assert path.read_bytes() == space.key(arch).encode() * 3
    same_node = RayExecutor(chunk_size=1)  # on this one node nothing needs to travel
    same_node.run(ArtifactEvaluator(str(tmp_path)), space, tasks)
    assert same_node.files_shipped == 0


@pytest.mark.ray
def test_steady_submit_and_wait_ship_artifacts_too(ray_session, tmp_path: Path) -> None:
    """Steady mode's ``submit``/``wait`` hand back each task as it finishes, files unpacked."""
    space = NB201Space()
    executor = RayExecutor(chunk_size=0)  # steady: one task per evaluation whatever the chunk
    executor._driver_node = "another-node"
    archs = {i: space.from_index(i) for i in (3, 4, 5)}
    executor.submit(ArtifactEvaluator(str(tmp_path)), space,
                    [EvalTask(i, a, seed=0) for i, a in archs.items()])
    assert len(executor._flying) == 3
    got = {}
    while len(got) < 3:
        for outcome in executor.wait(timeout=30):
            got[outcome.trial_id] = outcome
    assert executor.wait(timeout=0.1) == [] and executor.files_shipped == 3
    for i, arch in archs.items():
        path = Path(got[i].evaluation.artifacts["model"])
        assert path.read_bytes() == space.key(arch).encode() * 3
