"""The agents a job can name, with their options (torch-free, so the API validates cheaply).

Each options model documents its fields; the agent class receives them as keyword arguments.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from agents.rllib_options import RLlibOptions
from spaces.registry import Entry, NoOptions, Registry


class RandomOptions(NoOptions):
    """Uniform random search has no options."""


class DistinctOptions(NoOptions):
    """Repeat handling shared by the samplers that may propose an evaluated architecture."""

    max_repeats: int = Field(
        10, ge=0, le=10_000,
        description="Repeats (architectures already evaluated or in flight) the agent answers "
        "itself per proposal, telling its sampler the known result and asking again, before it "
        "proposes a random architecture not seen yet instead. Only distinct architectures "
        "leave the agent, so a collapsed sampler does not use up the job's proposals.",
    )


class EvolutionOptions(DistinctOptions):
    """Regularized evolution (Real et al. 2019)."""

    population_size: int = Field(10, ge=2, le=10_000, description="Individuals kept alive.")
    sample_size: int = Field(3, ge=1, le=10_000, description="Tournament size.")

    def model_post_init(self, _context: object) -> None:
        if self.sample_size > self.population_size:
            raise ValueError(
                f"sample_size <= population_size must hold, got sample_size="
                f"{self.sample_size}, population_size={self.population_size}"
            )


class ControllerOptions(NoOptions):
    """Options shared by the LSTM controllers (MnasNet's PPO and REINFORCE)."""

    hidden_size: int = Field(64, ge=8, le=1024, description="LSTM hidden units.")
    learning_rate: float = Field(0.01, gt=0, le=1.0, description="Adam step size.")
    batch_size: int = Field(8, ge=1, le=1024, description="Told trials per policy update.")
    entropy_weight: float = Field(0.05, ge=0, le=10.0, description="Entropy bonus weight.")
    baseline_decay: float = Field(
        0.95, ge=0, lt=1.0, description="Decay of the moving-average reward baseline."
    )
    temperature: float = Field(1.0, gt=0, le=100.0, description="Softmax temperature.")
    tanh_constant: float | None = Field(
        None, gt=0, le=100.0, description="If set, logits = c * tanh(logits) (ENAS trick)."
    )
    advantage: Literal["baseline", "normalized", "rank"] = Field(
        "normalized",
        description="'baseline': reward minus the moving average (MnasNet/ENAS); "
        "'normalized': that divided by the batch's reward std; 'rank': centred batch ranks.",
    )
    fresh_tries: int = Field(
        16, ge=0, le=100_000,
        description="Plain samples drawn per ask to find an architecture not proposed before, "
        "before the exact masked sampler takes over (proposals always come from the policy "
        "restricted to new architectures, with that distribution's log-probabilities).",
    )
    sil_weight: float = Field(
        1.0, ge=0, le=100.0,
        description="Weight of the self-imitation loss on the best architectures told so far "
        "(Oh et al. 2018); 0 gives the plain policy-gradient update.",
    )
    sil_top: int = Field(
        4, ge=1, le=10_000,
        description="How many of the best architectures (above the baseline) to imitate; "
        "Pareto mode imitates the current front instead.",
    )
    dyna_updates: int = Field(
        16, ge=0, le=1000,
        description="Dyna-style planning (Sutton 1991): policy-gradient steps on rewards "
        "predicted by a Gaussian process fitted on the evaluations so far, after each real "
        "update (0: none). Scalar rewards only.",
    )
    dyna_batch: int = Field(32, ge=2, le=4096,
                            description="Fresh samples scored by the predictor per planning step.")
    dyna_kappa: float = Field(
        2.0, ge=0, le=100.0,
        description="Planning reward: predicted mean + kappa x predicted std (UCB).")
    pareto: bool = Field(
        False,
        description="MnasNet's multi-objective search: each proposal draws its own latency "
        "target T and the agent learns from ACC * (LAT/T)^w (recorded as the trial's metric "
        "'agent_reward'), so one policy covers a Pareto front. Off: the agent learns from the "
        "job's reward. Needs one max (accuracy) and one min (latency) objective.",
    )
    pareto_mode: Literal["hard", "soft"] = Field(
        "hard",
        description="Pareto mode's MnasNet reward: 'hard' (alpha = 0, beta = -1: T is a real "
        "constraint) or 'soft' (alpha = beta = pareto_w).",
    )
    pareto_w: float = Field(-0.07, ge=-10.0, le=0.0,
                            description="Pareto mode, 'soft': the exponent w (paper: -0.07).")
    pareto_reach: float = Field(
        0.1, ge=0.0, le=2.0,
        description="Pareto mode: how far below the fastest useful latency seen the targets "
        "reach, as a fraction of the log-latency range seen.",
    )
    dyna_pareto: bool = Field(
        False,
        description="Pareto mode: Dyna-style planning too, on predicted accuracy (UCB) and "
        "latency (mean) of fresh samples, each rewarded by MnasNet's formula under its own "
        "drawn target.",
    )
    dyna_pareto_until: int = Field(
        0, ge=0, le=1_000_000,
        description="Pareto mode with dyna_pareto: plan only until this many architectures "
        "have a reward (0: for the whole search).",
    )
    dyna_latency_kappa: float = Field(
        0.0, ge=0.0, le=10.0,
        description="Pareto mode with dyna_pareto: planning scores each sample at its "
        "predicted log latency minus this many standard deviations (optimism on latency, "
        "as dyna_kappa is on accuracy; 0: the mean).",
    )


class MnasOptions(ControllerOptions):
    """MnasNet's controller trained with PPO (clipped objective)."""

    learning_rate: float = Field(0.003, gt=0, le=1.0, description="Adam step size.")
    entropy_weight: float = Field(
        0.02, ge=0, le=10.0,
        description="Entropy bonus weight (per decision with the critic, else per architecture).")
    tanh_constant: float | None = Field(
        1.5, gt=0, le=100.0,
        description="Logits = c * tanh(logits) (ENAS): bounds how much likelier one choice "
        "can be than another (e ** 2c), which keeps exploring single edits of the incumbent; "
        "null: unbounded.")
    clip: float = Field(0.3, gt=0, le=1.0, description="PPO clipping epsilon.")
    ppo_epochs: int = Field(4, ge=1, le=100, description="Optimization epochs per batch.")
    critic: bool = Field(
        True,
        description="PPO as RLlib runs it: a value head on the LSTM, advantages R - V(prefix) "
        "per decision, a clipped ratio per decision (exact for the restricted sampler).",
    )
    value_coeff: float = Field(1.0, ge=0, le=100.0, description="Weight of the critic's loss.")
    prefix_input: bool = Field(
        False,
        description="Each LSTM step reads every choice made so far (one-hot, through a "
        "2-layer MLP) instead of the previous choice's embedding, as RLlib's LSTM model.",
    )


class ReinforceOptions(ControllerOptions):
    """The same controller trained with REINFORCE, as in the NAS-Bench-201 paper: one sample
    per update, reward minus an exponential moving average (momentum 0.9), no extras."""

    batch_size: int = Field(1, ge=1, le=1024, description="Told trials per policy update.")
    entropy_weight: float = Field(0.0, ge=0, le=10.0, description="Entropy bonus weight.")
    baseline_decay: float = Field(
        0.9, ge=0, lt=1.0, description="Decay of the moving-average reward baseline."
    )
    advantage: Literal["baseline", "normalized", "rank"] = Field(
        "baseline", description="See MnasOptions; the paper uses 'baseline'."
    )
    sil_weight: float = Field(0.0, ge=0, le=100.0,
                              description="Self-imitation loss weight (see MnasOptions).")
    dyna_updates: int = Field(0, ge=0, le=1000,
                              description="Planning steps per update (see MnasOptions).")


class TPEOptions(DistinctOptions):
    """Optuna's TPE sampler."""

    n_startup_trials: int = Field(10, ge=0, le=100_000, description="Random trials first.")
    multivariate: bool = Field(True, description="Model decisions jointly.")


class NSGA2Options(DistinctOptions):
    """Optuna's NSGA-II sampler."""

    population_size: int = Field(20, ge=2, le=10_000, description="Individuals per generation.")
    mutation_prob: float | None = Field(None, ge=0, le=1.0, description="Per-decision mutation.")
    crossover_prob: float = Field(0.9, ge=0, le=1.0, description="Crossover probability.")


class GPOptions(DistinctOptions):
    """Optuna's GPSampler (Gaussian-process Bayesian optimisation; log expected hypervolume
    improvement on the objectives themselves when a job has two or more)."""

    n_startup_trials: int = Field(10, ge=0, le=100_000, description="Random trials first.")
    max_repeats: int = Field(
        1, ge=0, le=10_000,
        description="As for the other samplers, but 1 by default: each ask refits the model "
        "(and with two objectives two models), so one re-ask, then a random architecture not "
        "seen yet.")


class SMACOptions(DistinctOptions):
    """SMAC3's random-forest Bayesian optimisation (hyperparameter-optimisation facade)."""
    max_repeats: int = Field(
        1, ge=0, le=10_000,
        description="As for the other samplers, but 1 by default: each ask refits the model, "
        "so one re-ask, then a random architecture not seen yet.")

    n_initial: int = Field(10, ge=1, le=100_000,
                           description="Configurations of the initial (Sobol) design.")
    random_probability: float = Field(
        0.2, ge=0, le=1.0, description="Share of proposals drawn at random (interleaved).")


class AMCOptions(NoOptions):
    """AMC's DDPG agent (He et al. 2018); defaults are the paper code's."""

    hidden1: int = Field(300, ge=1, le=4096, description="Actor/critic first hidden layer.")
    hidden2: int = Field(300, ge=1, le=4096, description="Actor/critic second hidden layer.")
    lr_actor: float = Field(1e-4, gt=0, le=1.0, description="Adam step of the actor.")
    lr_critic: float = Field(1e-3, gt=0, le=1.0, description="Adam step of the critic.")
    warmup: int = Field(100, ge=0, le=1_000_000, description="Episodes of random actions.")
    discount: float = Field(1.0, ge=0, le=1.0, description="Discount (reward only at the end).")
    batch_size: int = Field(64, ge=1, le=65536, description="Replay mini-batch.")
    replay_per_layer: int = Field(100, ge=1, le=1_000_000,
                                  description="Replay capacity per episode step.")
    tau: float = Field(0.01, ge=0, le=1.0, description="Soft target-network update rate.")
    init_delta: float = Field(0.5, gt=0, le=10.0, description="Initial exploration sigma.")
    delta_decay: float = Field(0.95, ge=0, le=1.0, description="Sigma decay per episode.")
    moving_alpha: float = Field(0.5, ge=0, le=1.0, description="Reward-baseline step.")
    constrain: bool = Field(True, description="Limit actions so the space's target is met.")
    lbound: float | None = Field(
        0.2, ge=0, lt=1.0,
        description="Least fraction of a layer's channels a prune action keeps (AMC: 0.2); "
        "null: the space's own bound.")
    variant: Literal["paper", "budget"] = Field(
        "budget", description="'paper': AMC's state, layers first to last, actions clipped "
        "(kept for comparison); 'budget': adds each layer's feature-map size h x w, the cost "
        "removed and still to remove as fractions of the target's reduction, the layer's share "
        "of what the remaining layers can remove, and takes the constraint as a penalty.")
    constraint: Literal["clip", "penalty"] | None = Field(
        None, description="How the resource target is kept: 'clip' limits each action as it "
        "is taken (paper); 'penalty' lets actions overshoot, moves the finished policy onto the "
        "target and teaches the agent with reward - penalty x miss. Null: the variant's own.")
    order: Literal["forward", "largest_first"] = Field(
        "forward", description="Layer order of an episode: first to last, or by decreasing "
        "FLOPs (variant 'budget' only).")
    penalty: float = Field(1.0, ge=0, le=1e6, description="Penalty mode: weight of the "
                           "relative target miss, in units of the mean |reward| told.")

    def model_post_init(self, _context: object) -> None:
        if self.variant == "paper" and self.order != "forward":
            raise ValueError(f"order: variant 'paper' walks the layers first to last, got "
                             f"{self.order!r} (use variant 'budget')")


class TargetSpaceOptions(NoOptions):
    """Compression baselines: one fixed policy scaled to just meet the space's target (one
    evaluation is enough: repeats are answered from the cache)."""

    #: Declared for the job check at submit: a compression space with a target is needed.
    requires_target_space: ClassVar[bool] = True


class NetAdaptOptions(TargetSpaceOptions):
    """NetAdapt (Yang et al. 2018): shrink the resource step by step, one layer per step."""

    initial_reduction: float = Field(0.1, gt=0, lt=1, description="First step's reduction, "
                                     "a fraction of the uncompressed resource.")
    decay: float = Field(0.96, gt=0, le=1, description="Reduction factor per step.")
    short_term_finetune: bool = Field(
        False, description="Rank candidates by accuracy after the evaluator's short "
        "fine-tuning (val_acc_after_finetune; needs the compress evaluator's "
        "finetune_epochs > 0), as in the paper.")


AGENTS = Registry(
    "agent",
    [
        Entry("random", "agents.random_search:RandomSearch", RandomOptions,
              "Uniform random search (baseline)."),
        Entry("evolution", "agents.evolution:RegularizedEvolution", EvolutionOptions,
              "Regularized evolution: tournament selection, oldest removed (Real et al. 2019)."),
        Entry("mnas", "agents.mnas_controller:MnasController", MnasOptions,
              "MnasNet RNN controller: LSTM policy trained with PPO (Tan et al. 2019)."),
        Entry("reinforce", "agents.mnas_controller:ReinforceController", ReinforceOptions,
              "The same LSTM controller trained with REINFORCE (NAS-Bench-201 baseline)."),
        Entry("tpe", "agents.optuna_agents:TPEAgent", TPEOptions,
              "Optuna's Tree-structured Parzen Estimator sampler."),
        Entry("nsga2", "agents.optuna_agents:NSGA2Agent", NSGA2Options,
              "Optuna's NSGA-II sampler (multi-objective)."),
        Entry("gp", "agents.optuna_agents:GPAgent", GPOptions,
              "Optuna's GPSampler: Gaussian-process Bayesian optimisation."),
        Entry("smac", "agents.smac_agent:SMACAgent", SMACOptions,
              "SMAC3: random-forest Bayesian optimisation (Lindauer et al. 2022)."),
        Entry("amc", "agents.amc_ddpg:AMCAgent", AMCOptions,
              "AMC: DDPG agent choosing per-layer compression, layer by layer (He et al. 2018)."),
        Entry("uniform", "agents.compression_baselines:UniformAgent", TargetSpaceOptions,
              "Compression baseline: one prune ratio for every layer, just meeting the target."),
        Entry("uniform_fill", "agents.compression_baselines:UniformFillAgent",
              TargetSpaceOptions, "Compression baseline: the uniform rule, with the budget "
              "that whole channels leave unspent given back channel by channel."),
        Entry("shallow_first", "agents.compression_baselines:ShallowFirstAgent",
              TargetSpaceOptions, "Compression baseline: shallow layers pruned most (AMC's "
              "handcrafted rule), scaled to just meet the target."),
        Entry("deep_first", "agents.compression_baselines:DeepFirstAgent", TargetSpaceOptions,
              "Compression baseline: deep layers pruned most, scaled to just meet the target."),
        Entry("netadapt", "agents.compression_baselines:NetAdaptAgent", NetAdaptOptions,
              "NetAdapt: shrink the resource step by step, keeping the candidate that loses "
              "least accuracy per unit saved (Yang et al. 2018)."),
        Entry("rllib", "agents.rllib_agent:RLlibAgent", RLlibOptions,
              "An RLlib algorithm (PPO, APPO, SAC; new API stack) driven by ask/tell."),
    ],
)


def requires_target_space(name: str) -> bool:
    """True for agents that only run on a compression space with a target (declared by
    their options model; torch-free, so the API checks it at submit)."""
    return bool(getattr(AGENTS.get(name).options, "requires_target_space", False))


#: Agents that run on any space (the generic contract suite's parameters).
GENERIC_AGENTS = [n for n in AGENTS.names() if not requires_target_space(n)]
