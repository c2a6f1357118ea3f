"""The training loop behind `lowlight train`.

Resumable by design: every `save_every` steps it writes the EMA model as a
shippable fp16 checkpoint (`--out`) and the full training state (weights,
EMA, Adam moments, step) to `<out>.state.safetensors`, both atomically, so a
killed run loses at most `save_every` steps and never a usable model.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from lowlight_cli.diffusion.ddim import DDIMScheduler
from lowlight_cli.diffusion.sampling import start_of_sampling
from lowlight_cli.errors import Setting, UsageError
from lowlight_cli.io.atomic import atomic_path
from lowlight_cli.models.checkpoint import (
    load_checkpoint,
    read_config,
    read_metadata,
    read_provenance,
    save_checkpoint,
)
from lowlight_cli.models.condition import Conditioning, develop
from lowlight_cli.models.config import ModelConfig
from lowlight_cli.models.denoiser import PriorGuidedDenoiser
from lowlight_cli.models.tone import ToneEstimator, apply_tone, gain_loss, target_gains, with_gains
from lowlight_cli.settings import TrainSettings
from lowlight_cli.training.data import TrainingData
from lowlight_cli.training.losses import diffusion_loss, semantic_context_loss, structure_and_colour

DEFAULTS = TrainSettings()


@dataclass
class TrainOptions:
    """One run as `train` takes it: the recipe's settings resolved (the device, the data workers, `--init`'s
    file and the `ModelConfig`). Made by `training.setup.prepare_run` (`run_options`), or directly by tests and
    benchmarks; the defaults are `TrainSettings`' own."""

    data: list[Path]
    out: Path
    steps: int = DEFAULTS.steps
    batch_size: int = DEFAULTS.batch_size
    crop: int = DEFAULTS.crop
    lr: float = DEFAULTS.lr
    ema_decay: float = DEFAULTS.ema_decay
    semantic_weight: float = DEFAULTS.semantic_weight
    final_step_share: float = DEFAULTS.final_step_share  # share of diffusion samples at the 1-step sampler's timestep
    refine_share: float = DEFAULTS.refine_share  # share at the 2-step sampler's second timestep, around its estimate
    prior: str = DEFAULTS.prior  # fallback | sam | none
    seed: int = DEFAULTS.seed
    save_every: int = DEFAULTS.save_every
    stop_at: int | None = DEFAULTS.stop_at  # end this run early; the LR schedule still follows `steps`
    device: str = "cpu"  # resolved: a torch device
    workers: int = 0  # resolved: forked batch-making processes (0: one background thread)
    resume: bool = True
    init: Path | None = DEFAULTS.init  # start a new run from this checkpoint's weights (fine-tuning)
    # Phase 1 (models with a tone branch): the global tone branch alone, on whole frames.
    tone_steps: int = DEFAULTS.tone_steps
    tone_batch_size: int = DEFAULTS.tone_batch_size
    tone_lr: float = DEFAULTS.tone_lr
    # "look": the tone phase trains the look head alone (black point, local exposure) on a finished branch,
    # whose exposure, white balance and curve stay as they are; "all": the whole branch.
    tone_parts: str = DEFAULTS.tone_parts
    # Structure and colour terms beside L1, in both phases (training/losses.py).
    ssim_weight: float = DEFAULTS.ssim_weight
    colour_weight: float = DEFAULTS.colour_weight
    # Develop at the target's exposure and white balance, and regress those gains apart (models/tone.py).
    teacher_gains: bool = DEFAULTS.teacher_gains
    # Share of denoiser crops cut at the photo's own pixels, with all their noise (training/data.py).
    native_share: float = DEFAULTS.native_share
    config: ModelConfig = field(default_factory=ModelConfig)


def run_options(
    settings: TrainSettings, out: Path, init: Path | None, device: str, workers: int, config: ModelConfig
) -> TrainOptions:
    """The run `settings` describe, with what `prepare_run` resolved."""
    own = {item.name for item in fields(TrainOptions)} - {"data", "out", "init", "device", "workers", "config"}
    values = {name: getattr(settings, name) for name in own if hasattr(settings, name)}
    return TrainOptions(list(settings.data), out, init=init, device=device, workers=workers, config=config, **values)


def state_path(out: Path) -> Path:
    return out.with_name(out.name + ".state.safetensors")


def two_step_sampler(config: ModelConfig) -> DDIMScheduler:
    """The schedule of 2-step sampling, whose second query `refine_share` trains."""
    scheduler = DDIMScheduler(config.num_train_timesteps)
    scheduler.set_timesteps(2)
    return scheduler


def make_model_inputs(
    batch: dict[str, torch.Tensor],
    config: ModelConfig,
    scheduler: DDIMScheduler,
    generator: torch.Generator,
    final_step_share: float = 0.0,
    refine_share: float = 0.0,
    estimate: Callable[[dict[str, Any]], torch.Tensor] | None = None,
    tone: ToneEstimator | None = None,
    teacher_gains: bool = False,
) -> tuple[dict[str, Any], torch.Tensor, torch.Tensor]:
    """Noisy model inputs for a batch (x_t, timesteps, cond), the x_0 target, and the brightened base.

    Timesteps are uniform, except that `final_step_share` of the samples sit at
    the last timestep, where the default 1-step sampler queries the model: with
    uniform sampling only ~1/1000 of the training signal would land there.

    `refine_share` of the samples sit at the 2-step sampler's second timestep
    and, like there, are noised around the model's own first estimate (from
    `estimate`, the model without gradient) rather than around the target: the
    second step then learns to correct the first instead of trusting it.

    With `teacher_gains`, the base is developed at the whole target's exposure
    and white balance, as the tone branch's curve was trained: the denoiser
    learns to render and clean, not to second-guess the exposure.
    """
    with torch.no_grad():  # the tone branch is trained in its own phase, on whole frames
        base, log_gain = develop(
            batch["low"],
            tone,
            config.target_brightness,
            thumb=batch.get("thumb"),
            target_thumb=batch.get("thumb_high") if teacher_gains else None,
            roll_off=False,
        )
    x0 = (batch["high"] - base) * config.residual_scale
    size = x0.shape[0]
    sampler = None  # the 2-step schedule, only when this batch has refine samples
    if config.diffusion:
        # Drawn on the CPU generator (the same draws on any device), then moved to the batch's device.
        last = config.num_train_timesteps - 1
        timesteps = torch.randint(0, config.num_train_timesteps, (size,), generator=generator)
        draw = torch.rand(size, generator=generator)
        final = draw < final_step_share
        refine = (draw >= final_step_share) & (draw < final_step_share + refine_share)
        timesteps = torch.where(final, torch.full_like(timesteps, last), timesteps)
        sampler = two_step_sampler(config) if refine.any() else None
        if sampler is not None:
            timesteps = torch.where(refine, torch.full_like(timesteps, int(sampler.timesteps[1])), timesteps)
        timesteps = timesteps.to(x0.device)
        noise = torch.randn(x0.shape, generator=generator).to(x0.device)
        x_t = scheduler.add_noise(x0, noise, timesteps)
        if config.mean_start:  # the sampler queries the last timestep with zeros
            x_t = torch.where((timesteps == last).view(-1, 1, 1, 1), 0.0, x_t)
    else:  # the regression baseline: same network, no noise, one fixed timestep
        timesteps = torch.zeros(size, dtype=torch.long, device=x0.device)
        x_t = torch.zeros_like(x0)
    cond = Conditioning(base, log_gain, batch["labels"], batch["scores"], batch["boundary"])
    inputs = dict(x_t=x_t, timesteps=timesteps, cond=cond)
    if sampler is not None:
        if estimate is None:
            raise ValueError("refine_share needs `estimate`, the model's own first estimate")
        rows = refine.to(x0.device)
        x_t[rows] = first_transition(
            dict(x_t=x_t[rows], timesteps=timesteps[rows], cond=cond.rows(rows)),
            noise[rows],
            config.mean_start,
            sampler,
            estimate,
        )
    return inputs, x0, base


def first_transition(
    inputs: dict[str, Any],
    noise: torch.Tensor,
    mean_start: bool,
    sampler: DDIMScheduler,
    estimate: Callable[[dict[str, Any]], torch.Tensor],
) -> torch.Tensor:
    """x at the 2-step sampler's second timestep, exactly as `sample_residual` reaches it from `noise`."""
    start = int(sampler.timesteps[0])
    x_start, eps = start_of_sampling(noise, mean_start)
    with torch.no_grad():
        first = estimate({**inputs, "x_t": x_start, "timesteps": torch.full_like(inputs["timesteps"], start)})
    return sampler.step(first, start, x_start, eps=eps)


def save_state(
    path: Path,
    model: torch.nn.Module,
    ema: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    options: TrainOptions,
) -> None:
    """Full training state as safetensors (no pickles, even for our own files)."""
    tensors = {f"model.{k}": v.detach().clone() for k, v in model.state_dict().items()}
    tensors.update({f"ema.{k}": v.detach().clone() for k, v in ema.state_dict().items()})
    for index, state in optimizer.state_dict()["state"].items():
        for name, value in state.items():
            tensors[f"opt.{index}.{name}"] = (
                torch.as_tensor(value).detach().clone().reshape(-1) if name == "step" else value.detach().clone()
            )
    meta = {"step": str(step), "config": options.config.to_json()}
    with atomic_path(path, suffix=".tmp", fsync=False) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


# Config fields that set tensor shapes: a state with other values cannot be continued.
ARCHITECTURE_FIELDS = ("base_channels", "channel_mults", "token_dim", "attn_heads", "max_regions")


def check_continuation(
    stored: ModelConfig, config: ModelConfig, path: Path, notify: Callable[[str], None], remedy: tuple[str, ...]
) -> None:
    """Refuse weights of another architecture (the message ends with `remedy`'s parts); say which options change."""
    stored_fields, current = asdict(stored), asdict(config)
    changed = [key for key in current if stored_fields[key] != current[key]]
    shape = [key for key in changed if key in ARCHITECTURE_FIELDS]
    if shape:
        raise UsageError(f"{path} is a model of another architecture ({', '.join(shape)} differ): ", *remedy)
    if changed:
        notify(
            f"continuing {path.name} with changed options: "
            + ", ".join(f"{key} {stored_fields[key]} → {current[key]}" for key in changed)
        )


INIT_REMEDY = (
    Setting("init"),
    " needs a checkpoint of the architecture the settings describe (",
    Setting("base_channels"),
    ")",
)


def load_state(
    path: Path,
    model: torch.nn.Module,
    ema: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    config: ModelConfig,
    notify: Callable[[str], None] = print,
) -> int:
    """Restore a run from its state file; returns its step.

    The architecture must match. Recipe options (mean start, prior map scale,
    diffusion or regression, ...) may change: continuing a state under a new
    recipe is how a second training phase is made, so that is said, not refused.
    """
    meta = read_metadata(path)
    check_continuation(
        ModelConfig.from_json(meta.get("config", "{}")),
        config,
        path,
        notify,
        ("resume with the same settings, or write to another ", Setting("out")),
    )
    tensors = load_file(str(path))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
    state = optimizer.state_dict()
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, index, name = key.split(".", 2)
            state["state"].setdefault(int(index), {})[name] = value.reshape(()) if name == "step" else value
    optimizer.load_state_dict(state)
    return int(meta["step"])


def learning_rate(step: int, options: TrainOptions) -> float:
    """Per phase: linear warm-up, then cosine decay to 10% (the tone phase first, with its own rate)."""
    if step < options.tone_steps:
        peak, length = options.tone_lr, options.tone_steps
    else:
        peak, length, step = options.lr, options.steps, step - options.tone_steps
    warmup = min(200, length // 10)
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, length - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def tone_loss(tone: ToneEstimator, batch: dict[str, torch.Tensor], options: TrainOptions) -> torch.Tensor:
    """The tone branch developing whole frames, against their targets.

    With `teacher_gains`, the curve and saturation develop each frame at its
    target's exposure and white balance, and the heads that predict those
    gains learn them by regression (see `models/tone.py` for why).
    """
    low, high = batch["low"], batch["high"]
    if not options.teacher_gains:
        developed = develop(low, tone, options.config.target_brightness, roll_off=False)[0]
        penalty = developed.new_zeros(())
    else:
        params = tone(low)
        gains = target_gains(low, high, params.black.detach())
        developed = apply_tone(low, with_gains(params, gains))
        penalty = gain_loss(params, gains)
    return (
        F.l1_loss(developed, high)
        + structure_and_colour(developed, high, options.ssim_weight, options.colour_weight)
        + penalty
    )


def new_model(options: TrainOptions) -> tuple[PriorGuidedDenoiser, PriorGuidedDenoiser, torch.optim.Optimizer]:
    """A freshly initialised model (from torch's seeded generator), its EMA copy and its optimiser."""
    model = PriorGuidedDenoiser(options.config).to(options.device)
    ema = copy.deepcopy(model).eval()
    for param in ema.parameters():
        param.requires_grad_(False)
    return model, ema, torch.optim.AdamW(model.parameters(), lr=options.lr, weight_decay=1e-4)


def start_run(
    options: TrainOptions,
    model: PriorGuidedDenoiser,
    ema: PriorGuidedDenoiser,
    optimizer: torch.optim.Optimizer,
    notify: Callable[[str], None],
) -> int:
    """Resume from the state file, or start from `--init`'s weights, or from scratch; returns the first step."""
    config, state_file, step = options.config, state_path(options.out), 0
    if options.resume and state_file.exists():
        step = load_state(state_file, model, ema, optimizer, config, notify)
    elif options.init is not None:  # fine-tuning: the weights of a finished model, a fresh optimiser and schedule
        start_from = load_checkpoint(options.init)
        check_continuation(start_from.config, config, options.init, notify, INIT_REMEDY)
        # A part the init lacks (a first release's tone branch, v8's look head) starts from its fresh weights.
        weights = {**model.state_dict(), **start_from.state_dict()}
        model.load_state_dict(weights)
        ema.load_state_dict(weights)
    if options.init is not None and step > 0:
        notify(f"resuming {state_file.name} at step {step}: --init applies to a new run only")
    return step


def warms_up_ema(options: TrainOptions) -> bool:
    """Whether the denoiser's EMA warms up (a short average at first) or averages from the start.

    The EMA of a fine-tune starts from trained weights: averaging in from the start keeps them, where the
    warm-up of a run from scratch would let the first noisy steps replace them. Not so when the fine-tune
    gives the denoiser a new base (a tone branch its init lacked, or teacher-forced gains switched on or
    off): those weights answer another question, and a slow average would ship a blend of the old and new
    denoiser for most of the run.
    """
    return options.init is None or not trained_on_same_base(options.init, options)


def trained_on_same_base(init: Path, options: TrainOptions) -> bool:
    """Whether checkpoint `init` was trained on the base this run develops for its denoiser.

    Runs from before the `teacher_gains` option were trained without it.
    """
    if read_config(init).tone_curve != options.config.tone_curve:
        return False
    trained = read_provenance(init).get("options", {}).get("teacher_gains", False)
    return not options.config.tone_curve or trained == options.teacher_gains


def phase_loss(
    step: int,
    model: PriorGuidedDenoiser,
    ema: PriorGuidedDenoiser,
    batch: dict[str, torch.Tensor],
    scheduler: DDIMScheduler,
    generator: torch.Generator,
    options: TrainOptions,
    warm_up_ema: bool,
):
    """This step's loss, the parameters it trains, the (EMA, live) pairs to average, and the EMA decay."""
    if step < options.tone_steps:
        loss = tone_loss(cast(ToneEstimator, model.tone), batch, options)  # tone steps need a tone branch
        pairs = [
            (e, p)
            for (name, e), p in zip(
                cast(ToneEstimator, ema.tone).named_parameters(),
                cast(ToneEstimator, model.tone).parameters(),
                strict=True,
            )
            if p.requires_grad
        ]
        return loss, [p for _, p in pairs], pairs, min(options.ema_decay, (1 + step) / (10 + step))
    loss = denoiser_loss(model, batch, options.config, scheduler, generator, options)
    trained = [p for name, p in model.named_parameters() if not name.startswith("tone.")]
    averaged = (
        (e, p)
        for (name, e), p in zip(ema.named_parameters(), model.parameters(), strict=True)
        if not name.startswith("tone.")
    )
    phase_step = step - options.tone_steps
    decay = min(options.ema_decay, (1 + phase_step) / (10 + phase_step)) if warm_up_ema else options.ema_decay
    return loss, trained, averaged, decay


def train(
    options: TrainOptions,
    data: TrainingData,
    on_step: Callable[[int, float, float], None] | None = None,
    notify: Callable[[str], None] = print,
) -> Path:
    """Train until `options.tone_steps + options.steps` (or `stop_at`), resuming from the state file if present.

    A model with a tone branch trains in two phases: the branch alone on whole
    frames (`tone_steps`), then the denoiser on crops, its base developed by
    the finished branch from each crop's whole photo. Returns the checkpoint path.
    """
    torch.manual_seed(options.seed)
    if options.device.startswith("cuda"):  # fixed crop size: let cuDNN pick its fastest kernels once
        torch.backends.cudnn.benchmark = True
    config = options.config
    if options.tone_steps and not config.tone_curve:
        raise UsageError("tone steps need a model with a tone branch (tone_curve)")
    model, ema, optimizer = new_model(options)
    scheduler = DDIMScheduler(config.num_train_timesteps)
    step = first_step = start_run(options, model, ema, optimizer, notify)
    warm_up_ema = warms_up_ema(options)
    generator = torch.Generator().manual_seed(options.seed + step)
    started = time.time()
    provenance: dict[str, Any] = {
        "command": "lowlight train",
        "options": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items() if k not in {"config", "data"}
        },
        "data": [str(p) for p in options.data],
        "data_summary": repr(data),
    }
    total = options.tone_steps + options.steps
    end = total if options.stop_at is None else min(total, options.stop_at)
    batches = None
    model.train()
    while step < end:
        tone_phase = step < options.tone_steps
        if batches is None or step == options.tone_steps:  # a stream per phase: frames, then crops
            if not tone_phase and model.tone is not None:  # the denoiser learns on the branch that ships
                model.tone.load_state_dict(cast(ToneEstimator, ema.tone).state_dict())  # ema is model's copy
            elif tone_phase and options.tone_parts == "look":
                for name, param in cast(ToneEstimator, model.tone).named_parameters():
                    param.requires_grad_(name.startswith("look."))
            batches = data.batches(
                options.tone_batch_size if tone_phase else options.batch_size,
                config.max_regions,
                seed=options.seed + step,
                workers=options.workers,
                pin_memory=options.device.startswith("cuda"),
                frames=tone_phase,
            )
        batch = {k: v.to(options.device, non_blocking=True) for k, v in next(batches).items()}
        loss, trained, averaged, decay = phase_loss(step, model, ema, batch, scheduler, generator, options, warm_up_ema)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, options)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        optimizer.step()
        with torch.no_grad():
            for e, p in averaged:
                e.lerp_(p, 1 - decay)
        step += 1
        if on_step:
            on_step(step, loss.item(), (time.time() - started) / (step - first_step))
        if step % options.save_every == 0 or step == end or step == options.tone_steps:
            provenance.update(steps=step, train_seconds_this_run=round(time.time() - started, 1))
            save_checkpoint(ema, options.out, provenance={**provenance, "prior": options.prior})
            save_state(state_path(options.out), model, ema, optimizer, step, options)
    return options.out


def denoiser_loss(
    model: PriorGuidedDenoiser,
    batch: dict[str, torch.Tensor],
    config: ModelConfig,
    scheduler: DDIMScheduler,
    generator: torch.Generator,
    options: TrainOptions,
) -> torch.Tensor:
    """x_0 L1, plus the semantic-context, structure and colour terms on the predicted clean crop."""
    inputs, x0, base = make_model_inputs(
        batch,
        config,
        scheduler,
        generator,
        options.final_step_share,
        options.refine_share,
        estimate=lambda kwargs: model(**kwargs),
        tone=model.tone,
        teacher_gains=options.teacher_gains,
    )
    x0_pred = model(**inputs)
    loss = diffusion_loss(x0_pred, x0)
    pred_image = base + x0_pred / config.residual_scale
    if options.semantic_weight > 0 and bool((batch["labels"] > 0).any()):
        loss = loss + options.semantic_weight * semantic_context_loss(
            pred_image, batch["high"], batch["labels"], config.max_regions + 1
        )
    return loss + structure_and_colour(pred_image, batch["high"], options.ssim_weight, options.colour_weight)
