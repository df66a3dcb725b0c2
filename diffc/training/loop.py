"""The training loop: time in images, reseeded from the image count every step, atomic checkpoints, DDP.

`train(built, recipe, run_dir)` is the whole job; `diffc train` only resolves its arguments. A run resumed from
any checkpoint reproduces the uninterrupted run bit for bit on CPU: data order, noise and dropout are functions
of (seed, image count, micro-batch index), and the checkpoint holds every other piece of state.
"""
from __future__ import annotations

import contextlib
import copy
import signal
import time
from pathlib import Path

import attrs
import torch

from diffc import checkpoints as ckpt
from diffc.errors import Interrupted, UserError, first_line
from diffc.training.conditioning import build_cond
from diffc.training.data import load_batch, sample_indices
from diffc.training.latents import open_decoder
from diffc.training.ema import ClassicEMA
from diffc.training.interrupt import StopSignals
from diffc.training.optim import build_optimizer, learning_rate, prepare_gradients, set_learning_rate
from diffc.training.phema import PowerEMA
from diffc.training.preflight import preflight
from diffc.training.preview import write_preview
from diffc.training.recipe_loader import recipe_to_dict, recipe_to_yaml
from diffc.training.runlog import RunLog, count_formatter
from diffc.training.world import World, init_from_checkpoint

_clock = time.monotonic            # wall clock of the checkpoint interval (tests substitute their own)
UNCHECKED_ON_RESUME = ("duration", "log", "sample", "checkpoint")   # may change between sessions of a run


@attrs.define
class TrainResult:
    nimg: int
    run_dir: Path
    checkpoint: Path | None
    nonfinite_steps: int


def _crossed(before: int, after: int, every: int | None) -> bool:
    return bool(every) and before // every != after // every


def _reached(before: int, after: int, point: int | None) -> bool:
    return point is not None and before < point <= after


def _seed(seed: int, nimg: int, chunk: int) -> int:
    return ((seed * 1_000_003 + nimg) * 4099 + chunk) % (2 ** 63)


def _build_ema(cfg, module):
    if cfg.kind == "classic":
        return ClassicEMA(module, cfg.decay)
    if cfg.kind == "power":
        return PowerEMA(module, cfg.sigma_rel)
    return None


def _check_resume(data: dict, built, recipe_dict: dict, allow_changed: bool, path: Path) -> None:
    """Refuse a changed spec or recipe on resume unless allowed."""
    problems = []
    if data.get("spec_hash") != built.spec_hash:
        problems.append("the spec changed (hash differs)")
    old = {k: v for k, v in data["recipe"].items() if k not in UNCHECKED_ON_RESUME}
    new = {k: v for k, v in recipe_dict.items() if k not in UNCHECKED_ON_RESUME}
    changed = sorted(k for k in set(old) | set(new) if _plain(old.get(k)) != _plain(new.get(k)))
    if changed:
        problems.append("the recipe changed in: " + ", ".join(changed))
    if problems and not allow_changed:
        raise UserError(f"cannot resume from {path.name}: " + "; ".join(problems), file=str(path),
                        help="pass --allow-changed to resume anyway, or --no-resume / a new --run-dir to start afresh")


def _restore(data: dict, path: Path, module, optimizer, weighting, ema) -> None:
    """Load a checkpoint's model, optimizer, weighting, EMA and RNG state; a mismatch is a UserError naming it."""
    ckpt.load_weights(module, data["model"], path)
    try:
        optimizer.load_state_dict(data["optimizer"])
        weighting.load_state_dict(data["weighting"])
        if ema is not None and data.get("ema"):
            ema.load_state_dict(data["ema"])
        torch.set_rng_state(data["rng"]["torch"])
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"cannot resume from this checkpoint: its state does not fit this run ({first_line(exc)})",
                        file=str(path), help="move it aside to resume from the previous checkpoint, or train into "
                                             "another --run-dir") from None


def _plain(value):
    """Tuples and lists compare equal (a checkpoint stores tuples as loaded)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _combine(terms: dict, weighting, aux_weights: dict, sample_scale: float, scalar_scale: float):
    """Total loss for one micro-batch and the per-term means to log."""
    level = terms.pop("noise_level")
    main = weighting.objective.main_term
    total = (weighting.weights(level).to(terms[main].dtype) * terms[main]).sum() * sample_scale
    logs = {}
    for name, value in terms.items():
        if name.startswith("aux."):
            total = total + aux_weights[name[4:]] * value.mean() * scalar_scale
        elif name != main:
            total = total + value.sum() * sample_scale
        logs[f"loss/{name}"] = float(value.detach().float().mean())
    for name, value in weighting.extra_terms().items():
        total = total + value * scalar_scale
        logs[f"loss/{name}"] = float(value.detach())
    return total, logs


def train(built, recipe, run_dir, *, recipe_text: str = "", recipe_name: str = "", base_dir: Path | None = None,
          device: str = "cpu", resume: bool = True, allow_changed: bool = False, init_from: str | None = None,
          bf16: bool = False, compile: bool = False, stop_at: int | None = None, progress: bool = True,
          overrides=()) -> TrainResult:
    """Train `built` (a BuiltModel) with `recipe` into run_dir; returns at the duration (or `stop_at` images)."""
    world = World.from_env(device)
    device = world.device
    run_dir = Path(run_dir)
    interface = built.interface
    world_size = world.size
    total = recipe.duration.images(recipe.batch)
    stop = min(total, stop_at) if stop_at is not None else total
    every = lambda d: None if d is None else d.images(recipe.batch)  # noqa: E731

    module = built.module.to(device).train()
    existing = ckpt.list_checkpoints(run_dir)
    if existing and not resume:
        raise UserError(f"run directory {run_dir} already holds checkpoints; --no-resume would overwrite that run",
                        help="choose another --run-dir, or delete its training-state-*.pt files")
    if init_from and not existing:
        recipe = init_from_checkpoint(module, init_from, recipe, interface)
    recipe_dict = recipe_to_dict(recipe)
    prepared = preflight(built, recipe, base_dir or Path.cwd(), world_size)
    dataset, objective, noise = prepared.dataset, prepared.objective, prepared.noise
    decoder = open_decoder(recipe.autoencoder, dataset, base_dir or Path.cwd(), recipe_name, device)
    weighting = prepared.weighting.to(device)
    batch_gpu, rounds = prepared.batch_per_process, prepared.rounds
    optimizer = build_optimizer(recipe.optimizer, module, weighting, recipe.weighting.lr)
    ema = _build_ema(recipe.ema, module)
    nimg, nonfinite = 0, 0
    if existing:
        data = ckpt.load_checkpoint(existing[-1][1], needs=ckpt.FOR_RESUME)
        _check_resume(data, built, recipe_dict, allow_changed, existing[-1][1])
        _restore(data, existing[-1][1], module, optimizer, weighting, ema)
        nimg, nonfinite = data["nimg"], int(data.get("nonfinite_steps", 0))
    model = world.wrap(module, compile)
    meta = {"spec_text": built.spec_text, "spec_hash": built.spec_hash, "spec_path": str(built.spec_path),
            "model_name": built.model_name, "recipe": recipe_dict, "recipe_text": recipe_text,
            "recipe_name": recipe_name, "recipe_overrides": list(overrides),
            "autoencoder": decoder.info if decoder else None}
    count_text = count_formatter(recipe.duration, recipe.batch)
    log = RunLog(run_dir, world.rank == 0, recipe.log.tensorboard, progress, total, nimg, count_text)
    if existing:
        log.say(f"resuming {run_dir} from {log.amount(nimg)} (checkpoint {existing[-1][1].name})")
    else:
        log.say(f"starting fresh in {run_dir}")
    if world.rank == 0:
        given = "".join(f"# override: {text}\n" for text in overrides)
        log.write_text("recipe.yaml", f"# {recipe_name or 'recipe'}, resolved\n{given}" + recipe_to_yaml(recipe))
    autocast = torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16) if bf16 \
        else contextlib.nullcontext()
    last_path = existing[-1][1] if existing else None
    sample_module = None

    def save_state():
        state = {"model": ckpt.clean_state_dict(module.state_dict()), "ema": ema.state_dict() if ema else {},
                 "optimizer": optimizer.state_dict(), "weighting": weighting.state_dict(),
                 "scheduler": {"kind": recipe.lr.kind, "nimg": nimg}, "rng": {"torch": torch.get_rng_state()},
                 "nimg": nimg, "data_position": nimg, "nonfinite_steps": nonfinite, "world_size": world_size,
                 **meta}
        path = ckpt.save_checkpoint(run_dir, state, recipe.checkpoint.keep)
        log.say(f"checkpoint {path} ({log.amount(nimg)})")
        return path

    minutes, saved_at, stopping = recipe.checkpoint.minutes, _clock(), False
    with StopSignals() as signals:
        while nimg < stop and not stopping:
            tic = time.perf_counter()
            lr = learning_rate(recipe.lr, recipe.optimizer.lr, nimg, recipe.batch, total)
            set_learning_rate(optimizer, lr)
            optimizer.zero_grad(set_to_none=True)
            step_logs = {"loss": 0.0}
            for k in range(rounds):
                chunk = k * world_size + world.rank
                seed = _seed(recipe.seed, nimg, chunk)
                data_gen = torch.Generator().manual_seed(seed)
                noise_gen = torch.Generator(device=device).manual_seed(seed + 1)
                torch.manual_seed(seed + 2)          # any global-RNG use inside the model (dropout) is reproducible too
                index = sample_indices(recipe.seed, nimg + chunk * batch_gpu, batch_gpu, len(dataset))
                batch = load_batch(dataset, recipe.data, index, tuple(interface.sample_shape[1:]), data_gen)
                cond = build_cond(interface, recipe.conditioning, batch, data_gen, device)
                sync = model.no_sync() if world.ddp and k < rounds - 1 else contextlib.nullcontext()
                with sync, autocast:
                    terms = objective.loss_terms(model, batch.images.to(device), cond, noise, noise_gen)
                    loss, logs = _combine(terms, weighting, interface.aux_losses, world_size / recipe.batch,
                                          1 / rounds)
                loss.backward()
                step_logs["loss"] += float(loss.detach())     # the micro-batch losses sum to the optimised loss
                for key, value in logs.items():
                    step_logs[key] = step_logs.get(key, 0.0) + value / rounds
            take, finite, grad_norm = prepare_gradients(optimizer, recipe.optimizer.grad_clip,
                                                        recipe.optimizer.nonfinite)
            nonfinite += not finite
            if take:
                optimizer.step()
            before, nimg = nimg, nimg + recipe.batch
            if ema is not None:
                ema.update(module, nimg, recipe.batch)
            overdue = bool(minutes) and _clock() - saved_at >= minutes * 60
            stopping, overdue = world.agree(signals.requested, overdue)
            flush = _crossed(before, nimg, every(recipe.log.every)) or nimg >= stop or stopping
            log.step(nimg, step_logs, {"lr": lr, "grad_norm": grad_norm, "nonfinite_steps": nonfinite},
                     recipe.batch / (time.perf_counter() - tic), flush=flush)
            if world.rank == 0 and isinstance(ema, PowerEMA) and _crossed(before, nimg, every(recipe.ema.snapshot_every)):
                ema.save_snapshots(run_dir, nimg, meta)
            grid_due = (_crossed(before, nimg, every(recipe.sample.every)) or nimg >= total
                        or _reached(before, nimg, every(recipe.sample.first)))
            if world.rank == 0 and grid_due and not stopping:
                if sample_module is None:
                    sample_module = copy.deepcopy(module)
                log.say(f"grid {_write_samples(sample_module, module, ema, objective, recipe.sample, run_dir, nimg, device)}")
            if _crossed(before, nimg, every(recipe.checkpoint.every)) or nimg >= stop or overdue or stopping:
                if world.rank == 0:
                    last_path = save_state()
                saved_at = _clock()
                world.barrier()
    log.close()
    if stopping and nimg < stop:
        signum = signals.signum or signal.SIGTERM          # other DDP ranks stop because one was signalled
        raise Interrupted(signum, f"stopped by {signal.Signals(signum).name} at {log.amount(nimg)}; "
                                  f"checkpoint {last_path}; run the same command to resume")
    return TrainResult(nimg, run_dir, last_path, nonfinite)


def _write_samples(sample_module, module, ema, objective, cfg, run_dir, nimg, device) -> Path:
    """A PNG grid from the chosen EMA profile (auto: the first; None: raw weights) at RUN/samples/."""
    name = None if cfg.ema is None or ema is None else (next(iter(ema.profiles)) if cfg.ema == "auto" else cfg.ema)
    sample_module.load_state_dict(ema.profiles[name] if name else module.state_dict())
    sample_module.eval()
    path = Path(run_dir) / "samples" / f"samples-{nimg:012d}.png"
    write_preview(sample_module, objective, cfg.n, cfg.steps, cfg.guidance, cfg.seed, path, device,
                  sampler=cfg.sampler)
    return path
