"""Options of the ``rllib`` agent, validated without importing ray or torch (the API process
checks a job at submit). ``config`` holds RLlib ``training(...)`` settings: each algorithm
accepts its own keys, so a key the chosen algorithm does not know is refused here (422 naming
``config``'s key) rather than failing on the worker.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from spaces.registry import NoOptions


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lr: float | None = Field(None, gt=0, le=1.0, description="Adam step size.")
    gamma: float | None = Field(None, ge=0, le=1.0, description="Discount (reward at the end).")
    grad_clip: float | None = Field(None, gt=0, description="Gradient clipping.")
    num_epochs: int | None = Field(None, ge=1, le=100, description="Passes over each batch.")
    minibatch_size: int | None = Field(None, ge=1, le=1_000_000,
                                       description="SGD minibatch (steps).")


class _PolicyGradient(_Settings):
    lambda_: float | None = Field(None, ge=0, le=1.0, description="GAE lambda.")
    clip_param: float | None = Field(None, gt=0, le=10.0, description="Clip epsilon.")
    use_kl_loss: bool | None = None
    kl_coeff: float | None = Field(None, ge=0)
    kl_target: float | None = Field(None, gt=0)
    vf_loss_coeff: float | None = Field(None, ge=0)
    entropy_coeff: float | None = Field(None, ge=0)


class PPOSettings(_PolicyGradient):
    """``PPOConfig.training`` keys accepted by the adapter."""

    use_gae: bool | None = None
    vf_clip_param: float | None = Field(None, gt=0)


class APPOSettings(_PolicyGradient):
    """``APPOConfig.training`` keys accepted by the adapter."""

    vtrace: bool | None = None
    tau: float | None = Field(None, ge=0, le=1.0, description="Target network update rate.")
    target_network_update_freq: int | None = Field(None, ge=0)


class SACSettings(_Settings):
    """``SACConfig.training`` keys accepted by the adapter."""

    twin_q: bool | None = None
    tau: float | None = Field(None, ge=0, le=1.0, description="Target network update rate.")
    initial_alpha: float | None = Field(None, gt=0)
    target_entropy: float | Literal["auto"] | None = None
    actor_lr: float | None = Field(None, gt=0, le=1.0)
    critic_lr: float | None = Field(None, gt=0, le=1.0)
    alpha_lr: float | None = Field(None, gt=0, le=1.0)


SETTINGS: dict[str, type[_Settings]] = {"PPO": PPOSettings, "APPO": APPOSettings,
                                        "SAC": SACSettings}


class ModelSettings(BaseModel):
    """``DefaultModelConfig`` fields accepted by the adapter (the RLModule's networks)."""

    model_config = ConfigDict(extra="forbid")

    fcnet_hiddens: list[int] | None = Field(None, max_length=8)
    fcnet_activation: Literal["tanh", "relu", "swish", "linear"] | None = None
    head_fcnet_hiddens: list[int] | None = Field(None, max_length=8)
    vf_share_layers: bool | None = None
    use_lstm: bool | None = Field(None, description="An LSTM encoder (MnasNet's controller).")
    lstm_cell_size: int | None = Field(None, ge=1, le=4096)
    max_seq_len: int | None = Field(None, ge=1, le=10_000)


class RLlibOptions(NoOptions):
    """An RLlib algorithm (new API stack) driven as an ask/tell agent: one episode per
    proposal, the Learner updated on told results (see agents/rllib_agent.py)."""

    algorithm: Literal["PPO", "APPO", "SAC"] = Field(
        "PPO", description="PPO/APPO: discrete actions on categorical spaces (Box on spaces "
        "with continuous decisions); SAC: the continuous (AMC) environment.")
    config: dict[str, Any] = Field(default_factory=dict,
                                   description="RLlib training() settings of the algorithm.")
    model: ModelSettings = Field(default_factory=ModelSettings)
    environment: Literal["auto", "architecture", "compression"] = Field(
        "auto", description="'architecture': one Discrete action per decision (categorical "
        "spaces); 'compression': AMC's layer walk with Box actions; 'auto': compression for "
        "SAC or spaces with continuous decisions.")
    lbound: float | None = Field(
        0.2, ge=0, lt=1.0,
        description="Compression environment: least fraction of a layer's channels a prune "
        "action keeps (AMC's lbound, the amc agent's default 0.2); null: the space's own "
        "bound. Another value is refused with environment 'architecture'.")
    episodes_per_update: int = Field(
        8, ge=1, le=10_000, description="PPO/APPO: told episodes per Learner update.")
    normalize_rewards: bool = Field(
        True, description="Standardize rewards by the running mean/std of told rewards.")
    warmup_episodes: int = Field(
        10, ge=0, le=1_000_000, description="SAC: episodes of uniform random actions first.")
    replay_episodes: int = Field(
        1000, ge=1, le=1_000_000, description="SAC: episodes kept for replay.")
    batch_episodes: int = Field(
        16, ge=1, le=10_000, description="SAC: episodes per update, drawn from replay.")
    updates_per_episode: int = Field(
        1, ge=0, le=1000, description="SAC: Learner updates per told episode.")
    fresh_tries: int = Field(
        64, ge=0, le=10_000, description="Samples drawn per ask to find an architecture not "
        "proposed before (0: plain sampling); only the proposed one becomes an episode.")

    @field_validator("lbound")
    @classmethod
    def _check_lbound(cls, value: float | None, info: ValidationInfo) -> float | None:
        # The default passes: a job's options are validated again on the worker from their
        # full dump (spaces.registry), where an unset lbound arrives as the default.
        default = cls.model_fields["lbound"].default
        if value not in (None, default) and info.data.get("environment") == "architecture":
            raise ValueError(f"applies to the compression environment only (the architecture "
                             f"environment has no prune actions); leave it out, null or "
                             f"{default}")
        return value

    @field_validator("config")
    @classmethod
    def _check_config(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        algorithm = info.data.get("algorithm", "PPO")
        try:
            parsed = SETTINGS[algorithm].model_validate(value)
        except ValidationError as err:
            where = "; ".join(
                f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in err.errors())
            raise ValueError(f"not a valid {algorithm} setting: {where}") from None
        return parsed.model_dump(exclude_unset=True)
