"""RLlib's environments and the ``rllib`` ask/tell agent (the contract suite covers the rest).

RLlib imports take seconds: one module-scoped fixture imports it once for the file.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from pydantic import ValidationError

from agents.base import TrialResult, TrialState
from agents.envs import ArchitectureEnv, CompressionEnv, make_env
from agents.registry import AGENTS
from search.compression.graph import analyze
from search.compression.reference import build_reference
from search.envs import JobReward, job_env
from search.spec import JobSpec
from spaces.compression import CompressionSpace
from spaces.nb201 import NB201Space
from tests.agent_helpers import MatchSpace, MixedSpace, ToySpace, best_reward, drive, make_agent

TARGET = (1, 3, 0, 4, 2, 2)


def match_reward(arch: dict) -> float:
    """Decisions equal to the hidden target (optimum 6 of 6)."""
    return float(sum(arch[f"d{i}"] == t for i, t in enumerate(TARGET)))


def rollout(env, seed: int = 0) -> tuple[float, dict, int]:
    """A random episode: its final reward, info and length."""
    env.reset(seed=seed)
    env.action_space.seed(seed)
    steps, done = 0, False
    while not done:
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs)
        done, steps = terminated or truncated, steps + 1
    return reward, info, steps


@pytest.fixture(scope="module")
def rllib():
    """Import RLlib once for the module (the slow part of building an agent)."""
    return pytest.importorskip("ray.rllib")


# ---- environments ---------------------------------------------------------------------------
@pytest.mark.parametrize("space", [NB201Space(), ToySpace(), MatchSpace()], ids=lambda s: s.name)
def test_architecture_env_passes_the_checker_and_rewards_the_chosen_arch(space) -> None:
    seen = []
    env = ArchitectureEnv(space, lambda arch: seen.append(arch) or float(len(seen)))
    check_env(env, skip_render_check=True)
    seen.clear()
    reward, info, steps = rollout(env)
    assert steps == len(space.decisions)
    assert info["arch"] == seen[-1] == space.validate(info["arch"]) and reward == 1.0


def test_architecture_env_pareto_mode_shows_and_passes_the_target() -> None:
    env = ArchitectureEnv(MatchSpace(), lambda arch, target: target, latency_targets=(2.0, 8.0))
    check_env(env, skip_render_check=True)
    obs, info = env.reset(seed=3)
    assert 2.0 <= info["target"] <= 8.0
    expected = np.log(info["target"] / 2.0) / np.log(4.0)
    assert obs[-1] == pytest.approx(expected, rel=1e-5)
    reward, _, _ = rollout(env, seed=3)
    assert reward == pytest.approx(info["target"])


def test_architecture_env_refuses_continuous_decisions() -> None:
    with pytest.raises(ValueError, match="continuous"):
        ArchitectureEnv(MixedSpace(), lambda arch: 0.0)


def test_compression_env_walks_the_layers_with_box_actions() -> None:
    env = CompressionEnv(MixedSpace(), lambda arch: -arch["ratio"])
    check_env(env, skip_render_check=True)
    reward, info, steps = rollout(env, seed=1)
    assert steps == len(MixedSpace().decisions)
    assert reward == -info["arch"]["ratio"] and 0.0 <= info["arch"]["ratio"] <= 0.9


def _lbound_space(ratio: float, model: str = "mobilenetv2_small") -> CompressionSpace:
    table = analyze(build_reference(model, width=0.5), (1, 8, 8)).table
    return CompressionSpace(table, controls=["prune"], target={"metric": "flops", "ratio": ratio})


def _kept_fractions(space: CompressionSpace, arch: dict) -> list[float]:
    names = [s.decisions["prune"] for s in space.steps]
    return [space.keep(space.group_of(n), arch[n]) / space.table.groups[space.group_of(n)].channels
            for n in names]


def test_compression_env_lbound_keeps_a_least_fraction_of_every_layer() -> None:
    """AMC's lbound on the walk: never below it (whole channels), the target still met; without
    it random walks prune some layer below 20%; a target out of its reach relaxes it."""
    space = _lbound_space(0.25)
    free = CompressionEnv(space, lambda arch: 0.0)
    assert min(f for seed in range(10) for f in _kept_fractions(
        space, rollout(free, seed)[1]["arch"])) < 0.2
    env = CompressionEnv(space, lambda arch: 0.0, lbound=0.3)
    assert not env.bound_relaxed
    check_env(env, skip_render_check=True)
    for seed in range(10):
        arch = rollout(env, seed)[1]["arch"]
        assert space.fits(arch)
        names = [s.decisions["prune"] for s in space.steps]
        for n in names:
            channels = space.table.groups[space.group_of(n)].channels
            assert space.keep(space.group_of(n), arch[n]) >= round(0.3 * channels), n
    relaxed = CompressionEnv(_lbound_space(0.03, "resnet_small"), lambda arch: 0.0, lbound=0.2)
    assert relaxed.bound_relaxed
    with pytest.raises(ValueError, match="lbound"):
        CompressionEnv(space, lambda arch: 0.0, lbound=1.0)


def test_job_env_scores_with_the_jobs_evaluator_and_registers_with_tune(rllib) -> None:
    spec = {"space": {"name": "nb201"}, "evaluator": {"name": "tabular"}, "seed": 0}
    env = job_env(spec)
    check_env(env, skip_render_check=True)
    reward, info, _ = rollout(env, seed=2)
    assert 0.0 < reward <= 100.0 and reward == env.reward_fn.last["val_acc"]
    # Picklable for Ray, and usable through tune.register_env by name.
    from ray.tune.registry import ENV_CREATOR, _global_registry, register_env

    register_env("lightsearch-test", lambda cfg: make_env(cfg))
    creator = _global_registry.get(ENV_CREATOR, "lightsearch-test")
    reward_fn = pickle.loads(pickle.dumps(JobReward(JobSpec.model_validate(spec))))
    made = creator({"space": "nb201", "reward_fn": reward_fn})
    assert isinstance(made, ArchitectureEnv)
    assert rollout(made, seed=2)[0] == reward


# ---- the agent ------------------------------------------------------------------------------
def test_options_are_refused_with_the_field_named_and_without_ray() -> None:
    entry = AGENTS.get("rllib")
    with pytest.raises(ValidationError, match="algorithm"):
        entry.parse_options({"algorithm": "DQN"})
    with pytest.raises(ValidationError, match="clip_param"):
        entry.parse_options({"algorithm": "SAC", "config": {"clip_param": 0.2}})
    with pytest.raises(ValidationError, match="lstm_cell_size"):
        entry.parse_options({"model": {"use_lstm": True, "lstm_cell_size": 0}})
    with pytest.raises(ValidationError, match="lr"):
        entry.parse_options({"config": {"lr": -1}})
    ok = entry.parse_options({"algorithm": "PPO", "config": {"lr": 0.01, "lambda_": 0.9},
                              "model": {"use_lstm": True}})
    assert ok.config == {"lr": 0.01, "lambda_": 0.9}


def test_lbound_option_shares_amcs_meaning_and_is_validated_at_submit() -> None:
    entry = AGENTS.get("rllib")
    assert entry.parse_options({}).lbound == AGENTS.get("amc").parse_options({}).lbound == 0.2
    for bad in (1.0, -0.1, "0.2"):
        with pytest.raises(ValidationError, match="lbound"):
            entry.parse_options({"algorithm": "SAC", "lbound": bad})
    # the architecture environment has no prune actions: an explicit lbound is refused
    with pytest.raises(ValidationError, match="lbound"):
        entry.parse_options({"environment": "architecture", "lbound": 0.3})
    # the unused default passes (the worker re-validates a job's options from their full dump)
    arch = entry.parse_options({"environment": "architecture"})
    assert arch.lbound == 0.2 and entry.parse_options(arch.model_dump()) == arch
    assert entry.parse_options({"environment": "architecture", "lbound": None}).lbound is None
    assert entry.parse_options({"algorithm": "SAC", "lbound": None}).lbound is None
    with pytest.raises(ValidationError, match=r"agent[\s\S]*lbound"):
        JobSpec.model_validate({"agent": {"name": "rllib", "options": {
            "environment": "architecture", "lbound": 0.5}}})


def test_job_spec_refuses_bad_options_naming_the_field() -> None:
    with pytest.raises(ValidationError, match=r"agent[\s\S]*config[\s\S]*no_such_key"):
        JobSpec.model_validate({"agent": {"name": "rllib", "options": {
            "algorithm": "PPO", "config": {"no_such_key": 1}}}})


@pytest.mark.parametrize("options", [
    {"config": {"lr": 0.01}},
    {"config": {"lr": 0.01}, "model": {"use_lstm": True, "lstm_cell_size": 32}},
], ids=["mlp", "lstm"])
def test_ppo_beats_random_on_a_toy_space(rllib, options) -> None:
    """6 decisions x 5 choices, reward = decisions matching a hidden target (optimum 6).
    Over 200 episodes, PPO's last 50 proposals match more than random's 1.2 on average."""
    space = MatchSpace()
    agent = make_agent("rllib", space, seed=0, options=options, fast=False)
    proposals = drive(agent, 200, lambda p, c: TrialResult(
        TrialState.COMPLETE, reward=match_reward(p.arch)), batch_size=4)
    late = np.mean([match_reward(p.arch) for p in proposals[-50:]])
    assert late >= 2.5, late  # random: 1.2 expected, sd of a 50-mean ~0.13
    assert match_reward(agent.greedy()) >= 4
    rnd = best_reward(make_agent("random", space, seed=0), match_reward, 200)
    assert best_reward(make_agent("rllib", space, seed=0, options=options, fast=False),
                       match_reward, 200) >= rnd


@pytest.mark.parametrize("algorithm", ["PPO", "APPO", "SAC"])
def test_save_restore_round_trip_per_algorithm(rllib, algorithm) -> None:
    """A pickled state resumes identically (weights, optimizer, pending episodes, RNG)."""
    space = MixedSpace() if algorithm == "SAC" else MatchSpace()
    options = {"algorithm": algorithm, "warmup_episodes": 3, "batch_episodes": 4,
               "episodes_per_update": 4}
    result = lambda p, c: TrialResult(TrialState.COMPLETE, reward=float(  # noqa: E731
        sum(space.encode(p.arch))))
    agent = make_agent("rllib", space, seed=4, options=options)
    drive(agent, 10, result)
    in_flight = agent.ask()
    state = pickle.loads(pickle.dumps(agent.state_dict()))
    assert agent.updates > 0
    restored = make_agent("rllib", space, seed=99, options=options)
    restored.load_state_dict(state)
    for a in (agent, restored):
        a.tell(in_flight.trial_id, result(in_flight, 0))
    assert ([p.arch for p in drive(agent, 8, result)]
            == [p.arch for p in drive(restored, 8, result)])
    with pytest.raises(ValueError, match="state is for"):
        make_agent("random", space).load_state_dict(state)


def test_sac_proposes_on_the_compression_walk(rllib) -> None:
    agent = make_agent("rllib", MixedSpace(), options={"algorithm": "SAC",
                                                        "warmup_episodes": 2})
    assert agent.kind == "compression"
    proposals = drive(agent, 8, lambda p, c: TrialResult(TrialState.COMPLETE,
                                                          reward=-p.arch["ratio"]))
    assert agent.updates >= 5
    ratios = [p.arch["ratio"] for p in proposals]
    assert len(set(ratios)) >= 4 and all(0.0 <= r <= 0.9 for r in ratios)
    with pytest.raises(ValueError, match="SAC"):
        make_agent("rllib", MatchSpace(), options={"algorithm": "SAC",
                                                   "environment": "architecture"})


@pytest.mark.parametrize("lbound", [0.3, None])
def test_sac_walk_never_goes_below_lbound(rllib, lbound) -> None:
    """The rllib agent's compression walk is AMC's bounded one (warm-up and learned actions);
    ``lbound: null`` walks the space's own bound."""
    space = _lbound_space(0.25)
    agent = make_agent("rllib", space, seed=1, options={
        "algorithm": "SAC", "warmup_episodes": 3, "batch_episodes": 4, "lbound": lbound})
    assert not agent.bound_relaxed
    proposals = drive(agent, 9, lambda p, c: TrialResult(TrialState.COMPLETE, reward=float(
        np.mean(_kept_fractions(space, p.arch)))))
    assert agent.updates > 0
    least = min(f for p in proposals for f in _kept_fractions(space, p.arch))
    assert all(space.fits(p.arch) for p in proposals)
    if lbound is None:
        assert least < 0.2
    else:
        names = [s.decisions["prune"] for s in space.steps]
        for p in proposals:
            for n in names:
                channels = space.table.groups[space.group_of(n)].channels
                assert space.keep(space.group_of(n), p.arch[n]) >= round(lbound * channels)


def test_job_reward_follows_the_jobs_profilers_constraints_and_reward_spec() -> None:
    spec = {"space": {"name": "nb201"}, "profilers": [{"name": "lut:pixel3"}],
            "objectives": [{"metric": "val_acc"}, {"metric": "pixel3_latency",
                                                    "direction": "min"}],
            "reward": {"kind": "mnas", "accuracy": "val_acc", "latency": "pixel3_latency",
                       "target": 10.0}}
    arch = NB201Space().sample(np.random.default_rng(0))
    reward = JobReward(spec)
    value = reward(arch)
    m = reward.last
    assert value == pytest.approx(m["val_acc"] * (m["pixel3_latency"] / 10.0) ** -0.07)
    rejecting = JobReward({**spec, "constraints": [
        {"metric": "pixel3_latency", "max": m["pixel3_latency"] / 2, "reject": True}]},
        failure_reward=-1.0)
    assert rejecting(arch) == -1.0
