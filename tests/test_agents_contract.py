"""The ask/tell contract every registered agent must keep (Optuna's BasicSamplerTestCase idea).

Parametrized over every name in ``AGENTS``: an agent whose module cannot be imported fails
here rather than being skipped.
"""

from __future__ import annotations

import json
import pickle

import pytest

from agents.base import Agent, Proposal, TrialResult, TrialState
from agents.registry import AGENTS, GENERIC_AGENTS
from spaces.base import Continuous, Space
from spaces.nb201 import NB201Space
from tests.agent_helpers import (
    AGENT_VARIANTS,
    TWO_OBJECTIVES,
    MixedSpace,
    ToySpace,
    contract_result,
    drive,
    make_agent,
    registry_name,
)

# compression-only agents: tests/compression/test_agent_contract.py; variants (e.g. AMC's
# "paper") keep the contract as agents of their own
NAMES = GENERIC_AGENTS + sorted(v for v, (n, _) in AGENT_VARIANTS.items() if n in GENERIC_AGENTS)
SPACES = {"nb201": NB201Space, "toy": ToySpace}


@pytest.fixture(params=sorted(SPACES))
def space(request: pytest.FixtureRequest) -> Space:
    return SPACES[request.param]()


def _result_fn(space: Space):
    return lambda p, count: contract_result(space, p, count)


def _assert_inside(space: Space, proposal: Proposal) -> None:
    assert isinstance(proposal.trial_id, int)
    assert space.validate(proposal.arch) == proposal.arch
    json.dumps(proposal.arch)  # travels through SQL, REST and Ray as plain JSON
    json.dumps(proposal.info)


def _archs(proposals: list[Proposal]) -> list[tuple[int, str]]:
    return [(p.trial_id, json.dumps(p.arch, sort_keys=True)) for p in proposals]


@pytest.mark.parametrize("name", NAMES)
def test_registry_entry_builds_the_agent(name: str) -> None:
    cls = AGENTS.get(registry_name(name)).load()
    assert issubclass(cls, Agent)
    assert cls.name == registry_name(name)
    agent = make_agent(name, NB201Space(), seed=3)
    assert isinstance(agent, cls) and agent.seed == 3


@pytest.mark.parametrize("name", NAMES)
def test_proposals_in_flight_are_valid_and_ids_increase(name: str, space: Space) -> None:
    agent = make_agent(name, space)
    in_flight = [agent.ask() for _ in range(5)]
    for p in in_flight:
        _assert_inside(space, p)
    ids = [p.trial_id for p in in_flight]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    # Told out of order, with every kind of failure, and the agent goes on proposing.
    states = [TrialState.FAILED, TrialState.COMPLETE, TrialState.INVALID, TrialState.PRUNED,
              TrialState.COMPLETE]
    for p, state in zip(reversed(in_flight), states, strict=True):
        reward = 1.0 if state is TrialState.COMPLETE else None
        agent.tell(p.trial_id, TrialResult(state, reward=reward))
    later = drive(agent, 20, _result_fn(space))
    for p in later:
        _assert_inside(space, p)
    all_ids = ids + [p.trial_id for p in later]
    assert all_ids == sorted(all_ids) and len(set(all_ids)) == len(all_ids)


@pytest.mark.parametrize("name", NAMES)
def test_only_failures_do_not_break_it(name: str) -> None:
    space = NB201Space()
    agent = make_agent(name, space)
    failing = lambda p, c: TrialResult(  # noqa: E731
        (TrialState.FAILED, TrialState.INVALID, TrialState.PRUNED)[c % 3], error="boom")
    for p in drive(agent, 15, failing):
        _assert_inside(space, p)


@pytest.mark.parametrize("name", NAMES)
def test_unknown_or_repeated_trial_id_raises(name: str) -> None:
    agent = make_agent(name, NB201Space())
    p = agent.ask()
    with pytest.raises(ValueError):
        agent.tell(p.trial_id + 1000, TrialResult(TrialState.COMPLETE, reward=1.0))
    agent.tell(p.trial_id, TrialResult(TrialState.COMPLETE, reward=1.0))
    with pytest.raises(ValueError):
        agent.tell(p.trial_id, TrialResult(TrialState.COMPLETE, reward=1.0))
    _assert_inside(agent.space, agent.ask())  # a refused tell leaves the agent usable


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_sequence_different_seed_differs(name: str, space: Space) -> None:
    runs = [drive(make_agent(name, space, seed=s), 24, _result_fn(space)) for s in (5, 5, 6)]
    assert _archs(runs[0]) == _archs(runs[1])
    assert [a for _, a in _archs(runs[0])] != [a for _, a in _archs(runs[2])]


@pytest.mark.parametrize("name", NAMES)
def test_state_round_trip_continues_identically(name: str, space: Space) -> None:
    """Checkpoint after ~30 trials with two still in flight; a fresh agent loaded from it
    proposes what the original proposes, and accepts the in-flight trials' results."""
    result_fn = _result_fn(space)
    original = make_agent(name, space, seed=11)
    drive(original, 30, result_fn)
    in_flight = [original.ask(), original.ask()]
    state = original.state_dict()
    stored = pickle.loads(pickle.dumps(state))  # as a sink would store it

    restored = make_agent(name, space, seed=999)  # the seed must come from the state
    restored.load_state_dict(stored)
    for agent in (original, restored):
        for i, p in enumerate(in_flight):
            agent.tell(p.trial_id, result_fn(p, 30 + i))
    next_original = drive(original, 12, result_fn, start=32)
    next_restored = drive(restored, 12, result_fn, start=32)
    assert _archs(next_original) == _archs(next_restored)

    # state_dict() is a snapshot: the original ran on, yet its old state still resumes there.
    from_live = make_agent(name, space, seed=999)
    from_live.load_state_dict(state)
    for i, p in enumerate(in_flight):
        from_live.tell(p.trial_id, result_fn(p, 30 + i))
    assert _archs(drive(from_live, 12, result_fn, start=32)) == _archs(next_original)


@pytest.mark.parametrize("name", NAMES)
def test_two_objectives(name: str) -> None:
    """Jobs with an accuracy and a latency objective: metrics come with every result."""
    space = ToySpace()
    agent = make_agent(name, space, objectives=TWO_OBJECTIVES)
    assert agent.objectives == TWO_OBJECTIVES
    for p in drive(agent, 24, _result_fn(space)):
        _assert_inside(space, p)


@pytest.mark.parametrize("name", NAMES)
def test_continuous_decisions_supported_or_refused_at_construction(name: str) -> None:
    space = MixedSpace()
    cls = AGENTS.get(registry_name(name)).load()
    if not cls.supports_continuous:
        with pytest.raises(ValueError, match="(?i)continuous"):
            make_agent(name, space)
        return
    agent = make_agent(name, space)
    proposals = drive(agent, 24, _result_fn(space))
    for p in proposals:
        _assert_inside(space, p)
    for d in space.decisions:
        if isinstance(d, Continuous):
            values = {p.arch[d.name] for p in proposals}
            assert len(values) > 1, f"{d.name} never varies"
            assert all(d.low <= v <= d.high for v in values)
