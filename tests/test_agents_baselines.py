"""Behaviour specific to the baseline agents (random, evolution, TPE, NSGA-II) beyond the
shared contract: the evolution cycle, constrained spaces, and what Optuna is told."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from pydantic import ValidationError

from agents.base import Objective, Proposal, TrialResult, TrialState
from agents.evolution import EvolutionSampler, RegularizedEvolution
from agents.optuna_agents import GPAgent, NSGA2Agent, TPEAgent
from agents.random_search import RandomSearch
from agents.registry import AGENTS
from search.pareto import hypervolume
from spaces.base import Architecture, Categorical, Decision, InvalidArchitecture, Space
from spaces.nb201 import NB201Space
from tests.agent_helpers import (
    TWO_OBJECTIVES,
    MatchSpace,
    ToySpace,
    drive,
    make_agent,
    synthetic_reward,
)

BASELINES = ["random", "evolution", "tpe", "nsga2"]
#: Samplers that optimize the objectives themselves when a job has two or more.
PARETO_SAMPLERS = {"nsga2": NSGA2Agent, "gp": GPAgent}


def _ok(reward: float, **metrics: float) -> TrialResult:
    return TrialResult(TrialState.COMPLETE, reward=reward, metrics=dict(metrics))


class ConstrainedSpace(Space):
    """Two decisions of 4 choices where a + b must stay below 4: 10 of 16 pairs are valid."""

    name = "constrained"

    @property
    def decisions(self) -> Sequence[Decision]:
        return (Categorical("a", (0, 1, 2, 3)), Categorical("b", (0, 1, 2, 3)))

    def check(self, arch: Architecture) -> None:
        if arch["a"] + arch["b"] >= 4:
            raise InvalidArchitecture("a + b must be < 4", decision="b")


# ---- evolution --------------------------------------------------------------------------
def test_evolution_fills_population_at_random_counting_proposals_in_flight() -> None:
    agent = RegularizedEvolution(NB201Space(), population_size=5, sample_size=2)
    first = [agent.ask() for _ in range(5)]
    assert [p.info["origin"] for p in first] == ["random"] * 5
    # Two of the five fail: they never enter, so two more random ones fill the population.
    for i, p in enumerate(first):
        agent.tell(p.trial_id, _ok(float(i)) if i < 3 else TrialResult(TrialState.FAILED))
    assert [agent.ask().info["origin"] for _ in range(3)] == ["random", "random", "mutation"]


def test_evolution_mutates_exactly_one_decision_of_a_population_member() -> None:
    space = NB201Space()
    agent = RegularizedEvolution(space, population_size=4, sample_size=2, seed=1)
    drive(agent, 4, lambda p, _: _ok(synthetic_reward(space, p.arch)))
    members = {p_id: arch for p_id, arch, _ in agent.state_dict()["population"]}
    for _ in range(30):
        child = agent.ask()
        assert child.info["origin"] == "mutation"
        parent = members[child.info["parent"]]
        changed = [k for k in parent if parent[k] != child.arch[k]]
        assert changed == [child.info["mutated"]]


def test_evolution_ages_out_the_oldest_and_ignores_failures() -> None:
    space = NB201Space()
    # The sampler itself: the agent answers repeats inside, with ids of its own.
    agent = EvolutionSampler(space, population_size=4, sample_size=2)
    told_ok: list[int] = []
    for i in range(20):
        p = agent.ask()
        if i % 3 == 2:
            agent.tell(p.trial_id, TrialResult(TrialState.INVALID))
        elif i == 7:  # the best reward of the run, still aged out later
            agent.tell(p.trial_id, _ok(1e6))
            told_ok.append(p.trial_id)
        else:
            agent.tell(p.trial_id, _ok(float(i)))
            told_ok.append(p.trial_id)
    population = agent.state_dict()["population"]
    assert [ind[0] for ind in population] == told_ok[-4:]


def test_evolution_tournament_prefers_the_best() -> None:
    """With one standout among 10, a 3-sample tournament picks it ~27% of the time, versus
    10% for a uniform pick."""
    space = NB201Space()
    # The sampler itself: 400 asks without a tell would be mostly repeats in flight.
    agent = EvolutionSampler(space, population_size=10, sample_size=3, seed=4)
    batch = [agent.ask() for _ in range(10)]
    for i, p in enumerate(batch):
        agent.tell(p.trial_id, _ok(100.0 if i == 6 else 1.0))
    best_id = batch[6].trial_id
    parents = [agent.ask().info["parent"] for _ in range(400)]
    assert 0.2 < parents.count(best_id) / len(parents) < 0.35


def test_evolution_options_are_checked() -> None:
    with pytest.raises(ValidationError, match="sample_size"):
        AGENTS.get("evolution").parse_options({"population_size": 4, "sample_size": 5})
    with pytest.raises(ValueError, match="sample_size"):
        RegularizedEvolution(NB201Space(), population_size=4, sample_size=5)
    with pytest.raises(ValueError, match="population_size"):
        RegularizedEvolution(NB201Space(), population_size=1, sample_size=1)


# ---- all baselines ------------------------------------------------------------------------
@pytest.mark.parametrize("name", BASELINES)
def test_proposals_respect_the_space_constraints(name: str) -> None:
    space = ConstrainedSpace()
    agent = AGENTS.create(name, space, options={"population_size": 4} if name in (
        "evolution", "nsga2") else None, seed=2)
    proposals = drive(agent, 40, lambda p, _: _ok(float(p.arch["a"] + p.arch["b"])))
    for p in proposals:
        assert p.arch["a"] + p.arch["b"] < 4
    assert len({(p.arch["a"], p.arch["b"]) for p in proposals}) > 3


@pytest.mark.parametrize("name", BASELINES)
def test_loading_another_agents_state_is_refused(name: str) -> None:
    other = "random" if name != "random" else "evolution"
    state = AGENTS.create(other, NB201Space()).state_dict()
    with pytest.raises(ValueError, match=other):
        AGENTS.create(name, NB201Space()).load_state_dict(state)


def test_random_search_ignores_results() -> None:
    space = ToySpace()
    a, b = RandomSearch(space, seed=3), RandomSearch(space, seed=3)
    good = drive(a, 20, lambda p, _: _ok(synthetic_reward(space, p.arch)))
    bad = drive(b, 20, lambda p, _: TrialResult(TrialState.FAILED))
    assert [p.arch for p in good] == [p.arch for p in bad]


# ---- what Optuna is told --------------------------------------------------------------------
def _told(agent: TPEAgent | NSGA2Agent) -> list[tuple[str, list[float] | None]]:
    return [(t["state"], t["values"]) for t in agent.state_dict()["trials"]]


def test_tpe_tells_the_reward_and_fails_everything_else() -> None:
    agent = TPEAgent(ToySpace(), n_startup_trials=2)
    results = [
        _ok(0.5),
        TrialResult(TrialState.FAILED),
        TrialResult(TrialState.PRUNED, metrics={"latency": 3.0}),
        TrialResult(TrialState.COMPLETE, reward=None),
        _ok(float("nan")),
        _ok(2.0),
    ]
    for r in results:
        agent.tell(agent.ask().trial_id, r)
    assert _told(agent) == [
        ("COMPLETE", [0.5]), ("FAIL", None), ("FAIL", None), ("FAIL", None), ("FAIL", None),
        ("COMPLETE", [2.0]),
    ]


@pytest.mark.parametrize("name", sorted(PARETO_SAMPLERS))
def test_pareto_samplers_tell_objective_metrics_and_fail_missing_ones(name: str) -> None:
    agent = PARETO_SAMPLERS[name](ToySpace(), objectives=TWO_OBJECTIVES)
    results = [
        _ok(9.0, acc=0.9, latency=3.0),
        _ok(9.0, acc=0.8),  # latency not measured
        TrialResult(TrialState.PRUNED, metrics={"acc": 0.7, "latency": 1.0}),
        _ok(9.0, acc=0.6, latency=float("inf")),
    ]
    for r in results:
        agent.tell(agent.ask().trial_id, r)
    assert _told(agent) == [("COMPLETE", [0.9, 3.0]), ("FAIL", None), ("FAIL", None),
                            ("FAIL", None)]
    assert [d.name for d in agent._study.directions] == ["MAXIMIZE", "MINIMIZE"]


@pytest.mark.parametrize("name", sorted(PARETO_SAMPLERS))
def test_pareto_samplers_with_one_objective_optimize_the_reward(name: str) -> None:
    agent = PARETO_SAMPLERS[name](ToySpace(), objectives=(Objective("acc", "min"),))
    agent.tell(agent.ask().trial_id, _ok(7.0, acc=0.1))
    assert _told(agent) == [("COMPLETE", [7.0])]
    assert [d.name for d in agent._study.directions] == ["MAXIMIZE"]


def test_optuna_options_are_checked() -> None:
    with pytest.raises(ValueError, match="population_size"):
        NSGA2Agent(NB201Space(), population_size=1)
    with pytest.raises(ValueError, match="mutation_prob"):
        NSGA2Agent(NB201Space(), mutation_prob=1.5)
    with pytest.raises(ValueError, match="n_startup_trials"):
        TPEAgent(NB201Space(), n_startup_trials=-1)
    with pytest.raises(ValidationError, match="crossover_prob"):
        AGENTS.get("nsga2").parse_options({"crossover_prob": 2})


def _front_hypervolume(name: str, seed: int, budget: int) -> float:
    """Hypervolume of the front an agent finds on a toy two-objective problem: accuracy is
    the number of decisions matching a hidden target, latency the sum of the choices (so the
    target's high choices cost latency and the front trades the two)."""
    space = MatchSpace(6, 5)
    target = np.random.default_rng(2000 + seed).integers(2, 5, size=6)
    points: list[tuple[float, float]] = []

    def result(p: Proposal, _: int) -> TrialResult:
        choices = [p.arch[f"d{i}"] for i in range(6)]
        acc = float(sum(c == int(t) for c, t in zip(choices, target, strict=True)))
        latency = float(sum(choices) + 1)
        points.append((acc, latency))
        return _ok(acc, acc=acc, latency=latency)

    agent = make_agent(name, space, seed=seed, objectives=TWO_OBJECTIVES, fast=False)
    drive(agent, budget, result, batch_size=1)
    return hypervolume(points, (0.0, 26.0), ("max", "min"))


@pytest.mark.slow
def test_gp_on_two_objectives_finds_a_better_front_than_random() -> None:
    """GP's log-EHVI on the objectives, against random search on the same budget and seeds.
    Measured ratio of mean hypervolumes at 30 trials over three disjoint sets of three seeds:
    1.62, 1.68, 1.66 (about 65 s a set beside three benchmark processes: each GP ask
    refits two models and maximizes log-EHVI)."""
    seeds, budget = range(3), 30
    gp = float(np.mean([_front_hypervolume("gp", s, budget) for s in seeds]))
    rnd = float(np.mean([_front_hypervolume("random", s, budget) for s in seeds]))
    assert gp > rnd * 1.3, f"gp {gp:.1f} vs random {rnd:.1f}"
