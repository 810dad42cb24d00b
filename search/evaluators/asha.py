"""Early stopping of poor candidates with Ray Tune's ASHA scheduler, across one job's trials.

The search loop, not Ray Tune, launches trainings, so there is no ``tune.Tuner`` run to attach
a scheduler to. Instead every training reports its per-epoch validation accuracy to one
``ray.tune.schedulers.ASHAScheduler`` shared by all trials of the job, through the scheduler's
public trial hooks (``on_trial_add``/``on_trial_result``), and stops when it says STOP. The
scheduler lives in this process for in-process executors, and in a named Ray actor (one per
evaluator, ``num_cpus=0``) when the training runs inside Ray, so parallel trainings on several
workers see the same rungs.

ASHA is asynchronous: a decision depends on which trials reached a rung first. With the
in-process executor the order is the loop's and runs repeat exactly; on Ray, trainings in the
same batch race, so which candidates are stopped can differ between runs.
"""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

ACTOR_NAMESPACE = "lightsearch"
_LOCAL: dict[str, _AshaState] = {}
_LOCK = threading.Lock()


class _AshaState:
    """An ``ASHAScheduler`` fed with (trial, epoch, val_acc) reports."""

    def __init__(self, max_t: int, grace_period: int, reduction_factor: float) -> None:
        from ray.tune.schedulers import ASHAScheduler, TrialScheduler

        self._continue = TrialScheduler.CONTINUE
        self.scheduler = ASHAScheduler(
            time_attr="epoch", metric="val_acc", mode="max", max_t=max_t,
            grace_period=grace_period, reduction_factor=reduction_factor, brackets=1,
            stop_last_trials=False,
        )
        self.trials: dict[str, Any] = {}
        self.stopped = 0

    def report(self, trial_id: str, epoch: int, val_acc: float) -> bool:
        """True: keep training; False: ASHA stops this trial here."""
        trial = self.trials.get(trial_id)
        if trial is None:
            trial = self.trials[trial_id] = SimpleNamespace(trial_id=trial_id)
            self.scheduler.on_trial_add(None, trial)
        action = self.scheduler.on_trial_result(None, trial,
                                                {"epoch": epoch, "val_acc": val_acc})
        keep = action == self._continue
        self.stopped += not keep
        return keep

    def summary(self) -> dict[str, Any]:
        return {"trials": len(self.trials), "stopped": self.stopped,
                "scheduler": self.scheduler.debug_string()}


class AshaGate:
    """Handle on the job's shared ASHA state; picklable, resolves its home on first use."""

    def __init__(self, run_id: str, max_t: int, grace_period: int = 1,
                 reduction_factor: float = 3.0) -> None:
        if grace_period < 1 or grace_period > max_t:
            raise ValueError(f"asha.grace_period must be in 1..epochs ({max_t}), "
                             f"got {grace_period}")
        if reduction_factor <= 1:
            raise ValueError(f"asha.reduction_factor must be > 1, got {reduction_factor}")
        self.run_id, self.max_t = run_id, int(max_t)
        self.grace_period, self.reduction_factor = int(grace_period), float(reduction_factor)
        self._handle: Any | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_handle": None}  # actor handles are per process

    @property
    def actor_name(self) -> str:
        return f"asha-{self.run_id}"

    def _args(self) -> tuple[int, int, float]:
        return self.max_t, self.grace_period, self.reduction_factor

    def _actor(self) -> Any | None:
        try:
            import ray
        except ImportError:  # pragma: no cover - ray is a dependency
            return None
        if not ray.is_initialized():
            return None
        if self._handle is None:
            self._handle = ray.remote(num_cpus=0)(_AshaState).options(
                name=self.actor_name, namespace=ACTOR_NAMESPACE, get_if_exists=True,
                lifetime="detached",
            ).remote(*self._args())
        return self._handle

    def report(self, trial_id: str, epoch: int, val_acc: float) -> bool:
        actor = self._actor()
        if actor is not None:
            import ray

            return bool(ray.get(actor.report.remote(trial_id, epoch, val_acc)))
        with _LOCK:
            state = _LOCAL.get(self.run_id)
            if state is None:
                state = _LOCAL[self.run_id] = _AshaState(*self._args())
            return state.report(trial_id, epoch, val_acc)

    def summary(self) -> dict[str, Any] | None:
        actor = self._actor()
        if actor is not None:
            import ray

            return ray.get(actor.summary.remote())
        state = _LOCAL.get(self.run_id)
        return state.summary() if state else None

    def close(self) -> None:
        """Drop the shared state (kills the Ray actor, if any)."""
        _LOCAL.pop(self.run_id, None)
        self._handle = None
        try:
            import ray
        except ImportError:  # pragma: no cover
            return
        if ray.is_initialized():
            try:
                ray.kill(ray.get_actor(self.actor_name, namespace=ACTOR_NAMESPACE))
            except ValueError:
                pass  # never created: nothing to drop
