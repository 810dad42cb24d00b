"""A job's reward as a callable, and the Gymnasium environment of a job spec, for RLlib users.

``agents.envs`` holds the environments but never imports ``search``; this module supplies the
reward they call at the end of an episode: profilers first (cheap), the evaluator, then the
job's reward spec, exactly as the search loop scores a trial. An architecture the job would
not reward (invalid, a rejecting constraint broken, the evaluation failed) earns
``failure_reward``.

    from ray import tune
    from search.envs import job_env
    tune.register_env("nb201", lambda cfg: job_env(cfg["spec"]))
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym

from agents.envs import ArchitectureEnv, CompressionEnv
from search.base import MetricNotMeasured
from search.loop import evaluation_seed
from search.objectives import constraint_violations, make_reward
from search.registry import EVALUATORS, PROFILERS
from search.spec import JobSpec
from spaces.base import Architecture, Categorical, InvalidArchitecture, Space
from spaces.registry import SPACES


class JobReward:
    """``reward(arch) -> float`` from a job's profilers, evaluator and reward spec.

    Picklable (it holds the spec and builds its parts on first use), so Ray can ship it to
    env runners. ``last`` keeps the metrics of the latest call for inspection.
    """

    def __init__(self, spec: JobSpec | Mapping[str, Any], *, failure_reward: float = 0.0
                 ) -> None:
        self.spec = spec if isinstance(spec, JobSpec) else JobSpec.model_validate(spec)
        self.failure_reward = float(failure_reward)
        self.last: dict[str, float] = {}
        self._parts: tuple[Space, list[Any], Any, Any] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_parts": None, "last": {}}

    @property
    def space(self) -> Space:
        return self._build()[0]

    def _build(self) -> tuple[Space, list[Any], Any, Any]:
        if self._parts is None:
            s = self.spec
            space = SPACES.create(s.space.name, options=s.space.options)
            profilers = [PROFILERS.create(p.name, options=p.options) for p in s.profilers]
            evaluator = EVALUATORS.create(s.evaluator.name, options=s.evaluator.options)
            self._parts = (space, profilers, evaluator, make_reward(s.reward, s.objectives))
        return self._parts

    def __call__(self, arch: Architecture) -> float:
        space, profilers, evaluator, reward = self._build()
        metrics: dict[str, float] = {}
        try:
            arch = space.validate(arch)
            for profiler in profilers:
                metrics.update(profiler.profile(arch, space))
            rejecting = [c for c in self.spec.constraints if c.reject and c.metric in metrics]
            if constraint_violations(rejecting, metrics):
                return self.failure_reward
            seed = evaluation_seed(self.spec.seed, space.key(arch))
            metrics.update(evaluator.evaluate(arch, space, seed=seed).metrics)
            return float(reward(metrics))
        except (InvalidArchitecture, MetricNotMeasured):
            return self.failure_reward
        finally:
            self.last = metrics


def job_env(spec: JobSpec | Mapping[str, Any], **env_options: Any) -> gym.Env:
    """The environment of a job: ``ArchitectureEnv`` on categorical spaces, else AMC's
    ``CompressionEnv`` (``env_options`` go to the environment)."""
    reward = JobReward(spec)
    space = reward.space
    if all(isinstance(d, Categorical) for d in space.decisions) and space.name != "compression":
        return ArchitectureEnv(space, reward, **env_options)
    return CompressionEnv(space, reward, **env_options)
