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
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from lowlight_cli.errors import OutputError, UsageError
from lowlight_cli.models.config import ModelConfig
from lowlight_cli.training.trainer import TrainOptions


@dataclass
class TrainRequest:
    """`lowlight train`'s options: the run's own (`run`, as `trainer.train` takes them, but for the device and
    the workers, which `prepare_run` decides) and those that make the model config or set up the machine."""

    run: TrainOptions
    tone: bool
    look: bool
    mean_start: bool
    prior_map_scale: int
    no_diffusion: bool
    base_channels: int
    sam_model: str
    sam_checkpoint: Path | None
    threads: int
    workers: int | None
    device: str

    @classmethod
    def from_options(cls, **values: Any) -> TrainRequest:
        """Sort the command's options into the run's and the rest."""
        own = {item.name for item in fields(TrainOptions)} - {"device", "workers", "config"}
        return cls(
            TrainOptions(**{k: v for k, v in values.items() if k in own}),
            **{k: v for k, v in values.items() if k not in own},
        )

    def validate(self) -> None:
        """Refuse option values the run cannot use, naming the option."""
        run = self.run
        checks = [
            (run.steps >= 1, f"--steps must be at least 1, got {run.steps}"),
            (run.stop_at is None or run.stop_at >= 1, f"--stop-at must be at least 1, got {run.stop_at}"),
            (run.batch_size >= 1, f"--batch-size must be at least 1, got {run.batch_size}"),
            (run.crop >= 16 and run.crop % 8 == 0, f"--crop must be a multiple of 8 and at least 16, got {run.crop}"),
            (run.lr > 0, f"--lr must be positive, got {run.lr}"),
            (run.tone_steps >= 0, f"--tone-steps must be at least 0, got {run.tone_steps}"),
            (run.tone_parts in {"all", "look"}, f"--tone-parts must be all or look, got {run.tone_parts}"),
            (run.tone_parts == "all" or self.look, "--tone-parts look needs the look head (--look)"),
            (self.tone or not run.tone_steps, "--tone-steps needs a tone branch: use --tone-steps 0 with --no-tone"),
            (run.ssim_weight >= 0 and run.colour_weight >= 0, "--ssim-weight and --colour-weight must be at least 0"),
            (run.semantic_weight >= 0, f"--semantic-weight must be at least 0, got {run.semantic_weight}"),
            (0 <= run.final_step_share <= 1, f"--final-step-share must be in [0, 1], got {run.final_step_share}"),
            (
                0 <= run.refine_share <= 1 - run.final_step_share,
                f"--refine-share must be in [0, 1 - --final-step-share], got {run.refine_share}",
            ),
            (
                not (run.refine_share and self.no_diffusion),
                "--refine-share needs a diffusion model (not --no-diffusion)",
            ),
            (0 <= run.native_share <= 1, f"--native-share must be in [0, 1], got {run.native_share}"),
            (run.save_every >= 1, f"--save-every must be at least 1, got {run.save_every}"),
            (self.threads >= 0, f"--threads must be at least 0, got {self.threads}"),
            (self.workers is None or self.workers >= 0, f"--workers must be at least 0, got {self.workers}"),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(message)

    def model_config(self) -> ModelConfig:
        return ModelConfig(
            base_channels=self.base_channels,
            diffusion=not self.no_diffusion,
            use_prior=self.run.prior != "none",
            mean_start=self.mean_start and not self.no_diffusion,
            prior_map_scale=self.prior_map_scale,
            tone_curve=self.tone,
            tone_look=self.tone and self.look,
        )

    @property
    def prior_kind(self) -> str:
        """The prior the data is labelled with: `auto` trains on the built-in one (it never downloads SAM)."""
        return "fallback" if self.run.prior == "auto" else self.run.prior


def resolve_init(request: TrainRequest, config: ModelConfig) -> Path | None:
    """`--init`'s checkpoint, checked against the architecture the options describe.

    A run that resumes its state ignores --init's weights (the trainer says so), but its config still
    tells the trainer how the run began, so it is resolved anyway; checked now, not after minutes of priors.
    """
    from lowlight_cli.checkpoints.locate import resolve_model_path
    from lowlight_cli.models.checkpoint import load_checkpoint
    from lowlight_cli.training.trainer import INIT_REMEDY, check_continuation, state_path

    init = request.run.init
    init_path = None if init is None else resolve_model_path(init, "--init")
    if init_path is not None and not state_path(request.run.out).exists():
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

    from lowlight_cli.priors.factory import make_prior_fn
    from lowlight_cli.runtime.devices import resolve_device
    from lowlight_cli.training.data import TrainingData

    request.validate()
    run = request.run
    try:
        run.out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{run.out.parent}: cannot create the output folder ({exc.strerror or exc})") from None
    config = request.model_config()
    init_path = resolve_init(request, config)
    if request.threads:
        torch.set_num_threads(request.threads)
    device = resolve_device(request.device)
    workers = choose_workers(request.workers, device.type)
    prior_fn = make_prior_fn(
        request.prior_kind,
        config.max_regions,
        request.sam_model,
        request.sam_checkpoint,
        device=str(device),
        notify=log,
    )
    # SAM may sit on the GPU, which forked processes cannot share: its priors are made in this process.
    data = TrainingData(
        run.data,
        prior_fn,
        config.target_brightness,
        run.crop,
        log=log,
        workers=0 if run.prior == "sam" else workers,
        native_share=run.native_share,
    )
    log(repr(data))
    return replace(run, init=init_path, device=str(device), workers=workers, config=config), data
