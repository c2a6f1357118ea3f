"""From `lowlight train`'s options to a ready run: validation, the model config, `--init`, workers, the prior.

`TrainRequest` holds the options as given; `prepare_run` checks them, builds
the `ModelConfig`, checks `--init` against it (before minutes of priors),
sets the torch threads and the data workers, makes the prior producer and
loads the data, and returns what `trainer.train` takes. The CLI only parses
and shows progress.
"""

from __future__ import annotations

import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from lowlight_cli.errors import OutputError, UsageError
from lowlight_cli.models.config import ModelConfig


@dataclass
class TrainRequest:
    """`lowlight train`'s options (the CLI's defaults are `trainer.TrainOptions`' and `ModelConfig`'s recipe)."""

    data: list[Path]
    out: Path
    steps: int = 8000
    tone_steps: int = 2500
    tone: bool = True
    ssim_weight: float = 0.2
    colour_weight: float = 0.1
    teacher_gains: bool = True
    stop_at: int | None = None
    batch_size: int = 16
    crop: int = 128
    lr: float = 2e-4
    prior: str = "fallback"
    sam_model: str = "vit_b"
    sam_checkpoint: Path | None = None
    semantic_weight: float = 0.5
    final_step_share: float = 0.5
    refine_share: float = 0.0
    mean_start: bool = True
    prior_map_scale: int = 8
    no_diffusion: bool = False
    base_channels: int = 24
    seed: int = 0
    init: Path | None = None
    save_every: int = 200
    threads: int = 0
    workers: int | None = None
    device: str = "auto"

    def validate(self) -> None:
        """Refuse option values the run cannot use, naming the option."""
        checks = [(self.steps >= 1, f"--steps must be at least 1, got {self.steps}"),
                  (self.stop_at is None or self.stop_at >= 1, f"--stop-at must be at least 1, got {self.stop_at}"),
                  (self.batch_size >= 1, f"--batch-size must be at least 1, got {self.batch_size}"),
                  (self.crop >= 16 and self.crop % 8 == 0,
                   f"--crop must be a multiple of 8 and at least 16, got {self.crop}"),
                  (self.lr > 0, f"--lr must be positive, got {self.lr}"),
                  (self.tone_steps >= 0, f"--tone-steps must be at least 0, got {self.tone_steps}"),
                  (self.tone or not self.tone_steps, "--tone-steps needs a tone branch: use --tone-steps 0 with --no-tone"),
                  (self.ssim_weight >= 0 and self.colour_weight >= 0,
                   "--ssim-weight and --colour-weight must be at least 0"),
                  (self.semantic_weight >= 0, f"--semantic-weight must be at least 0, got {self.semantic_weight}"),
                  (0 <= self.final_step_share <= 1,
                   f"--final-step-share must be in [0, 1], got {self.final_step_share}"),
                  (0 <= self.refine_share <= 1 - self.final_step_share,
                   f"--refine-share must be in [0, 1 - --final-step-share], got {self.refine_share}"),
                  (not (self.refine_share and self.no_diffusion),
                   "--refine-share needs a diffusion model (not --no-diffusion)"),
                  (self.save_every >= 1, f"--save-every must be at least 1, got {self.save_every}"),
                  (self.threads >= 0, f"--threads must be at least 0, got {self.threads}"),
                  (self.workers is None or self.workers >= 0, f"--workers must be at least 0, got {self.workers}")]
        for ok, message in checks:
            if not ok:
                raise UsageError(message)

    def model_config(self) -> ModelConfig:
        return ModelConfig(base_channels=self.base_channels, diffusion=not self.no_diffusion,
                           use_prior=self.prior != "none", mean_start=self.mean_start and not self.no_diffusion,
                           prior_map_scale=self.prior_map_scale, tone_curve=self.tone)

    @property
    def prior_kind(self) -> str:
        """The prior the data is labelled with: `auto` trains on the built-in one (it never downloads SAM)."""
        return "fallback" if self.prior == "auto" else self.prior


def resolve_init(request: TrainRequest, config: ModelConfig) -> Path | None:
    """`--init`'s checkpoint, checked against the architecture the options describe.

    A run that resumes its state ignores --init's weights (the trainer says so), but its config still
    tells the trainer how the run began, so it is resolved anyway; checked now, not after minutes of priors.
    """
    from lowlight_cli.checkpoint import load_checkpoint
    from lowlight_cli.locate import resolve_model_path
    from lowlight_cli.training.trainer import INIT_REMEDY, check_continuation, state_path

    init_path = None if request.init is None else resolve_model_path(request.init, "--init")
    if init_path is not None and not state_path(request.out).exists():
        check_continuation(load_checkpoint(init_path).config, config, init_path, lambda message: None, INIT_REMEDY)
    return init_path


def choose_workers(workers: int | None, device_type: str) -> int:
    """Data workers: as asked, else up to 8 on CUDA (numpy synthesis sets the pace there), else 0 (on a CPU
    they would take the model's cores). Workers are forked: refused where fork is not available."""
    can_fork = "fork" in multiprocessing.get_all_start_methods()
    if workers is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        workers = min(8, max(0, cores - 1)) if device_type == "cuda" and can_fork else 0
    if workers and not can_fork:
        raise UsageError("--workers needs processes started by fork, which this platform lacks: use --workers 0")
    return workers


def prepare_run(request: TrainRequest, log: Callable[[str], None]):
    """(TrainOptions, TrainingData) for `trainer.train`, or a one-line error before any data is loaded."""
    import torch

    from lowlight_cli.devices import resolve_device
    from lowlight_cli.priors.factory import make_prior_fn
    from lowlight_cli.training.data import TrainingData
    from lowlight_cli.training.trainer import TrainOptions

    request.validate()
    try:
        request.out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{request.out.parent}: cannot create the output folder ({exc.strerror or exc})") from None
    config = request.model_config()
    init_path = resolve_init(request, config)
    if request.threads:
        torch.set_num_threads(request.threads)
    device = resolve_device(request.device)
    workers = choose_workers(request.workers, device.type)
    prior_fn = make_prior_fn(request.prior_kind, config.max_regions, request.sam_model, request.sam_checkpoint,
                             device=str(device), notify=log)
    # SAM may sit on the GPU, which forked processes cannot share: its priors are made in this process.
    data = TrainingData(request.data, prior_fn, config.target_brightness, request.crop, log=log,
                        workers=0 if request.prior == "sam" else workers)
    log(repr(data))
    options = TrainOptions(
        data=request.data, out=request.out, steps=request.steps, batch_size=request.batch_size, crop=request.crop,
        lr=request.lr, semantic_weight=request.semantic_weight, final_step_share=request.final_step_share,
        refine_share=request.refine_share, prior=request.prior, init=init_path, seed=request.seed,
        save_every=request.save_every, stop_at=request.stop_at, tone_steps=request.tone_steps,
        ssim_weight=request.ssim_weight, colour_weight=request.colour_weight, teacher_gains=request.teacher_gains,
        device=str(device), workers=workers, config=config)
    return options, data
