"""From `lowlight train`'s settings to a ready run: the model config, `--init`, threads, workers, the prior.

`prepare_run` takes validated `settings.TrainSettings` (from the command
line, a recipe file, or both), builds the `ModelConfig`, checks `--init`
against it (before minutes of priors), sets the torch threads and the data
workers, makes the prior producer and loads the data, and returns what
`trainer.train` takes. The CLI only parses and shows progress.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from pathlib import Path
from typing import cast

from lowlight_cli.errors import OutputError
from lowlight_cli.models.config import ModelConfig
from lowlight_cli.settings import SettingError, TrainSettings
from lowlight_cli.training.data import TrainingData
from lowlight_cli.training.trainer import TrainOptions, run_options


def resolve_init(settings: TrainSettings, config: ModelConfig) -> Path | None:
    """`--init`'s checkpoint, checked against the architecture the options describe.

    A run that resumes its state ignores --init's weights (the trainer says so), but its config still
    tells the trainer how the run began, so it is resolved anyway; checked now, not after minutes of priors.
    """
    from lowlight_cli.checkpoints.locate import resolve_model_path
    from lowlight_cli.models.checkpoint import load_checkpoint
    from lowlight_cli.training.trainer import INIT_REMEDY, check_continuation, state_path

    init, out = settings.init, settings.out
    init_path = None if init is None else resolve_model_path(init, "init")
    if init_path is not None and out is not None and not state_path(out).exists():
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
        raise SettingError("workers", "needs processes started by fork, which this platform lacks: use 0")
    return workers


def prepare_run(settings: TrainSettings, log: Callable[[str], None]) -> tuple[TrainOptions, TrainingData]:
    """(TrainOptions, TrainingData) for `trainer.train`, or a one-line error before any data is loaded."""
    import torch

    from lowlight_cli.priors.factory import make_prior_fn
    from lowlight_cli.runtime.devices import resolve_device

    settings.check_ready()
    out = cast(Path, settings.out)  # check_ready: set
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{out.parent}: cannot create the output folder ({exc.strerror or exc})") from None
    config = ModelConfig(**settings.model_config_fields())
    init_path = resolve_init(settings, config)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    device = resolve_device(settings.device)
    workers = choose_workers(settings.workers, device.type)
    prior_fn = make_prior_fn(
        settings.prior_kind,
        config.max_regions,
        settings.sam_model,
        settings.sam_checkpoint,
        device=str(device),
        notify=log,
    )
    # SAM may sit on the GPU, which forked processes cannot share: its priors are made in this process.
    data = TrainingData(
        list(settings.data),
        prior_fn,
        config.target_brightness,
        settings.crop,
        log=log,
        workers=0 if settings.prior == "sam" else workers,
        native_share=settings.native_share,
    )
    log(repr(data))
    return run_options(settings, out, init_path, str(device), workers, config), data
