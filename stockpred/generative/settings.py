"""The `generative` section of config.json (kept here so the generative code owns it)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from stockpred.settings_base import Section


class VAESettings(Section):
    section: ClassVar[str] = "generative.vae"
    window: int = Field(20, gt=1)
    latent_dim: int = Field(2, gt=0)
    units: int = Field(32, gt=0)  # GRU width of the encoder and of the decoder
    features: list[str] = Field(default_factory=list)  # empty: the model features
    epochs: int = Field(40, gt=0)
    batch_size: int = Field(64, gt=0)
    learning_rate: float = Field(1e-3, gt=0)
    kl_warmup_epochs: int = Field(10, ge=0)

    def quick_sizes(self) -> "VAESettings":
        """Tiny sizes and two epochs: a smoke run."""
        return self.model_copy(update={"window": min(self.window, 10), "units": 8, "epochs": 2,
                                       "batch_size": 128, "kl_warmup_epochs": 1})


class WGANSettings(Section):
    section: ClassVar[str] = "generative.wgan"
    window: int = Field(20, gt=1)
    horizon: int = Field(5, gt=0)
    features: list[str] = Field(default_factory=list)  # extra conditioning features
    noise_dim: int = Field(8, gt=0)
    generator_units: int = Field(32, gt=0)
    critic_filters: int = Field(32, gt=0)
    gp_weight: float = Field(10.0, ge=0)
    critic_steps: int = Field(5, gt=0)
    generator_learning_rate: float = Field(1e-4, gt=0)
    critic_learning_rate: float = Field(1e-4, gt=0)
    epochs: int = Field(30, gt=0)
    batch_size: int = Field(64, gt=0)
    samples: int = Field(200, gt=1)
    fan_origins: int = Field(4, gt=0)  # test days drawn as fan charts
    # wgan+news: the day's mean article vector projected on this many principal directions
    # of the vectors of the days handed to fit
    news_dims: int = Field(3, gt=0)

    def quick_sizes(self) -> "WGANSettings":
        """Tiny sizes, two epochs, few samples: a smoke run. One critic step per generator
        step and big batches: the steps, not the tiny networks, cost a smoke run its time."""
        return self.model_copy(update={
            "window": min(self.window, 10), "horizon": min(self.horizon, 3),
            "generator_units": 8, "critic_filters": 8, "critic_steps": 1, "epochs": 2,
            "batch_size": 256, "samples": 20, "noise_dim": min(self.noise_dim, 4),
            "fan_origins": min(self.fan_origins, 2)})


class MinuteEncoderSettings(Section):
    """The minute-bar day encoder (`stockpred train minutes`)."""

    section: ClassVar[str] = "generative.minutes"
    ts_code: str = "000001.SH"  # whose stored stk_mins are encoded; its codes join every stock
    code_dim: int = Field(4, gt=0)
    units: int = Field(64, gt=0)  # width of the encoder's and the decoder's hidden layer
    epochs: int = Field(200, gt=0)
    batch_size: int = Field(32, gt=0)
    learning_rate: float = Field(1e-3, gt=0)
    patience: int = Field(20, gt=0)

    def quick_sizes(self) -> "MinuteEncoderSettings":
        """Tiny sizes and two epochs: a smoke run."""
        return self.model_copy(update={"code_dim": min(self.code_dim, 2), "units": 8,
                                       "epochs": 2, "patience": 1})


class GenerativeSettings(Section):
    vae: VAESettings = Field(default_factory=VAESettings)
    wgan: WGANSettings = Field(default_factory=WGANSettings)
    minutes: MinuteEncoderSettings = Field(default_factory=MinuteEncoderSettings)

    def quick_sizes(self) -> "GenerativeSettings":
        return self.model_copy(update={"vae": self.vae.quick_sizes(),
                                       "wgan": self.wgan.quick_sizes(),
                                       "minutes": self.minutes.quick_sizes()})
