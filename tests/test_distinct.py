"""Samplers answer their own repeats (agents/distinct.py): only distinct architectures reach
the loop, every such agent reaches its budget on NB201 with one proposal per evaluation, and a
job on an exhausted space still ends 'exhausted'."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import pytest
import torch

from agents.base import Proposal, TrialResult, TrialState
from agents.distinct import DistinctProposals
from agents.random_search import RandomSearch
from search.loop import SearchLoop
from search.sinks import MemorySink
from search.spec import parse_spec
from spaces.base import Architecture, Categorical, Space
from tests.loop_helpers import job, register_test_components

torch.set_num_threads(1)
register_test_components()


def nb201_job(agent: str, budget: int, **options: Any) -> dict:
    """Every proposal must be a new architecture: the proposal cap equals the budget."""
    return job(space={"name": "nb201"}, agent={"name": agent, "options": options},
               budget={"evaluations": budget, "max_proposals": budget})


def run(spec: dict) -> tuple[SearchLoop, Any, MemorySink]:
    sink = MemorySink()
    loop = SearchLoop(parse_spec(spec), sink)
    return loop, loop.run(), sink


def check_reached(agent: str, budget: int) -> SearchLoop:
    loop, summary, sink = run(nb201_job(agent, budget))
    assert summary.status == "succeeded", summary.reason
    assert summary.evaluations == summary.proposals == budget
    assert not any(t.cached for t in sink.trials)
    assert [t.trial_id for t in sink.trials] == list(range(budget))  # consecutive ids
    return loop


@pytest.mark.parametrize("agent", ["tpe", "nsga2", "evolution"])
def test_sampler_reaches_budget_200_with_one_proposal_per_evaluation(agent: str) -> None:
    loop = check_reached(agent, 200)
    # These samplers do repeat themselves on NB201 (seed 0): the agent answered them.
    assert loop.agent.repeats_answered > 0


@pytest.mark.slow
def test_nsga2_reaches_budget_1000() -> None:
    """NSGA-II once stalled near 233 distinct evaluations of a 2,000 budget, 92% repeats."""
    loop = check_reached("nsga2", 1000)
    assert loop.agent.unseen_fallbacks > 0  # its population collapsed: fallbacks kept it going


@pytest.mark.slow
@pytest.mark.parametrize("agent", ["gp", "smac"])
def test_model_based_samplers_reach_their_budget(agent: str) -> None:
    check_reached(agent, 30)


# ---- the mechanism, on a sampler that only ever proposes two architectures ------------------
class TinySpace(Space):
    name = "tiny"

    def __init__(self, sizes: Sequence[int] = (3, 3)) -> None:
        self._decisions = tuple(Categorical(f"d{i}", tuple(range(s)))
                                for i, s in enumerate(sizes))

    @property
    def decisions(self) -> Sequence[Categorical]:
        return self._decisions


class _Stuck(RandomSearch):
    """A sampler whose model has collapsed onto two architectures; it records what it is
    told and which architectures it was handed."""

    name: ClassVar[str] = "stuck"

    def __init__(self, space: Space, **kw: Any) -> None:
        super().__init__(space, **kw)
        self.archs: dict[int, Architecture] = {}
        self.told: list[tuple[int, TrialState, float | None]] = []
        self.given: list[Architecture] = []

    def ask(self) -> Proposal:
        prop = super().ask()
        n = len(self.space.decisions)
        prop.arch = self.space.decode([0] * (n - 1) + [prop.trial_id % 2])
        self.archs[prop.trial_id] = prop.arch
        return prop

    def _ask_arch(self, arch: Architecture) -> Proposal:
        prop = super().ask()
        prop.arch = dict(arch)
        self.archs[prop.trial_id] = prop.arch
        self.given.append(prop.arch)
        return prop

    def tell(self, trial_id: int, result: TrialResult) -> None:
        super().tell(trial_id, result)
        self.told.append((trial_id, result.state, result.reward))

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "archs": dict(self.archs)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.archs = dict(state["archs"])


class Stuck(DistinctProposals, _Stuck):
    pass


def reward(arch: Architecture) -> TrialResult:
    return TrialResult(TrialState.COMPLETE, float(arch["d0"] * 3 + arch["d1"]))


def test_repeats_are_told_their_result_then_an_unseen_architecture_comes() -> None:
    agent = Stuck(TinySpace(), max_repeats=3)
    seen = set()
    for _ in range(9):  # every architecture of the 3 x 3 space, each once
        prop = agent.ask()
        key = (prop.arch["d0"], prop.arch["d1"])
        assert key not in seen
        seen.add(key)
        agent.tell(prop.trial_id, reward(prop.arch))
    assert len(seen) == 9
    # Every inner repeat was told the result of its architecture (the model learns from it).
    for trial_id, state, r in agent.told:
        assert state is TrialState.COMPLETE and r == reward(agent.archs[trial_id]).reward
    assert len(agent.told) == len(agent.archs)  # nothing left pending inside
    # After the first two, every proposal is a fallback preceded by max_repeats re-asks + 1.
    assert agent.unseen_fallbacks == 7 == len(agent.given)
    assert agent.repeats_answered == 7 * (3 + 1)


def test_a_repeat_of_an_architecture_in_flight_waits_for_its_result() -> None:
    agent = Stuck(TinySpace(), max_repeats=5)
    a, b = agent.ask(), agent.ask()
    c = agent.ask()  # inner proposals 2.. repeat a and b (in flight): answered by waiting
    assert {tuple(p.arch.values()) for p in (a, b)} == {(0, 0), (0, 1)}
    assert c.info["origin"] == "random_unseen" and c.info["repeats_answered"] == 6
    told_before = len(agent.told)
    agent.tell(a.trial_id, reward(a.arch))
    waiting_on_a = [t for t, arch in agent.archs.items() if arch == a.arch]
    assert {t for t, *_ in agent.told[told_before:]} == set(waiting_on_a)


def test_failures_are_not_remembered_so_a_repeat_is_evaluated_again() -> None:
    agent = Stuck(TinySpace(), max_repeats=0)
    a = agent.ask()
    agent.tell(a.trial_id, TrialResult(TrialState.FAILED, error="worker died"))
    b = agent.ask()
    assert b.arch == {"d0": 0, "d1": 1}  # the sampler's own next proposal
    agent.tell(b.trial_id, reward(b.arch))
    c = agent.ask()
    assert c.arch == a.arch and c.info.get("origin") != "random_unseen"  # evaluated again


def test_state_round_trip_continues_identically() -> None:
    agent = Stuck(TinySpace(), max_repeats=2)
    pending = [agent.ask() for _ in range(2)]
    agent.tell(pending[0].trial_id, reward(pending[0].arch))
    state = agent.state_dict()
    clone = Stuck(TinySpace(), max_repeats=2)
    clone.load_state_dict(state)
    for ag in (agent, clone):
        ag.tell(pending[1].trial_id, reward(pending[1].arch))
    for _ in range(5):
        p, q = agent.ask(), clone.ask()
        assert (p.trial_id, p.arch, p.info) == (q.trial_id, q.arch, q.info)
        agent.tell(p.trial_id, reward(p.arch))
        clone.tell(q.trial_id, reward(q.arch))


def test_an_exhausted_space_lets_the_repeat_through() -> None:
    agent = Stuck(TinySpace(), max_repeats=1)
    for _ in range(9):
        prop = agent.ask()
        agent.tell(prop.trial_id, reward(prop.arch))
    last = agent.ask()  # nothing unseen is left: the sampler's repeat leaves the agent
    assert last.arch in ({"d0": 0, "d1": 0}, {"d0": 0, "d1": 1})
    assert last.info.get("origin") != "random_unseen"
    agent.tell(last.trial_id, reward(last.arch))


def test_a_job_with_no_unseen_architecture_found_still_ends_exhausted(monkeypatch) -> None:
    """Honest end: when the agent finds nothing new, repeats reach the loop, which counts
    them against the proposal cap and ends the job 'exhausted' with what it reached."""
    from agents import distinct
    from agents.registry import AGENTS, DistinctOptions
    from spaces.registry import Entry

    if "stuck" not in AGENTS:
        AGENTS.register(Entry("stuck", "tests.test_distinct:Stuck", DistinctOptions))
    monkeypatch.setattr(distinct, "_UNSEEN_TRIES", 0)
    spec = job(space={"name": "nb201"}, agent={"name": "stuck"},
               budget={"evaluations": 8, "max_proposals": 30})
    loop, summary, sink = run(spec)
    assert summary.status == "exhausted"
    assert summary.evaluations == 2 and summary.proposals == 30
    assert loop.agent.repeats_answered > 0 and loop.agent.unseen_fallbacks == 0


def test_evolution_parents_name_trials_the_loop_recorded() -> None:
    """The sampler's own ids stay inside: a child's "parent" is the loop's trial of the parent
    architecture, one decision away from the child."""
    spec = nb201_job("evolution", 120)
    spec["agent"]["options"] = {"population_size": 5, "sample_size": 2}
    loop, summary, sink = run(spec)
    assert loop.agent.repeats_answered > 0  # inner ids and trial ids did diverge
    by_id = {t.trial_id: t for t in sink.trials}
    children = [t for t in sink.trials if t.info.get("origin") == "mutation"]
    assert len(children) > 50
    for child in children:
        parent = by_id[child.info["parent"]]
        assert parent.trial_id < child.trial_id
        assert [k for k in parent.arch if parent.arch[k] != child.arch[k]] == [
            child.info["mutated"]]
