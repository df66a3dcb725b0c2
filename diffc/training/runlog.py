"""What the user sees: a tqdm bar (loss, images/s, ETA), one line per event, stats.jsonl, TensorBoard, the loss curve.

On resume the rows of stats.jsonl past the checkpoint are dropped and TensorBoard purges its events past it, so
the logged curve never runs backwards. `loss` is the loss being optimised (weighted terms summed); `loss/<term>`
are its parts, unweighted.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from tqdm import tqdm

from diffc.files import atomic_write, json_text

_SCALES = ((1024 ** 3, "Gi"), (1024 ** 2, "Mi"), (1024, "Ki"), (1000 ** 2, "M"), (1000, "k"))


def count_formatter(duration, batch: int):
    """n images -> text in the units the recipe's duration is written in: '12.5Ki', '1.2M', '400 steps'."""
    if duration.unit == "steps":
        return lambda n: f"{n // batch} steps"
    total = duration.value
    for scale, suffix in _SCALES:
        if total >= scale and total % scale == 0:
            return lambda n, scale=scale, suffix=suffix: f"{n / scale:.1f}".removesuffix(".0") + suffix
    return str


class _DurationBar(tqdm):
    """tqdm counting images, showing done/total in the recipe's own units (128Ki, not 131k)."""

    def __init__(self, *args, count_text, **kwargs):
        self.count_text = count_text
        super().__init__(*args, **kwargs)

    @property
    def format_dict(self):
        values = super().format_dict
        values.update(done=self.count_text(values["n"]), goal=self.count_text(values["total"]))
        return values


def drop_rows_after(stats_path: Path, nimg: int) -> int:
    """Remove the rows of stats.jsonl logged after image `nimg` (a checkpoint being resumed); returns how many."""
    if not stats_path.is_file():
        return 0
    lines = [line for line in stats_path.read_text().splitlines() if line.strip()]
    keep = []
    for line in lines:
        try:
            if json.loads(line)["nimg"] <= nimg:
                keep.append(line)
        except (ValueError, KeyError, TypeError):
            continue                               # a row cut short by a kill
    if len(keep) != len(lines):
        atomic_write(stats_path, "".join(line + "\n" for line in keep))
    return len(lines) - len(keep)


class RunLog:
    def __init__(self, run_dir: Path, is_main: bool, tensorboard: bool, progress: bool, total: int, nimg: int,
                 count_text=str):
        self.run_dir, self.is_main, self.count_text = Path(run_dir), is_main, count_text
        self.sums, self.count, self.rate = {}, 0, 0.0
        self.bar = self.writer = None
        if not is_main:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        dropped = drop_rows_after(self.run_dir / "stats.jsonl", nimg)
        if dropped:
            self.say(f"dropped {dropped} stats.jsonl row(s) logged after {self.amount(nimg)} (past the checkpoint)")
        self.stats = open(self.run_dir / "stats.jsonl", "a")
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter
            folder = self.run_dir / "tensorboard"
            self.writer = SummaryWriter(str(folder), purge_step=nimg + 1 if folder.is_dir() else None)
        if progress:
            self.bar = _DurationBar(total=total, initial=nimg, unit="img", dynamic_ncols=True, count_text=count_text,
                                    bar_format="{l_bar}{bar}| {done}/{goal} [{elapsed}<{remaining}{postfix}]")

    def amount(self, nimg: int) -> str:
        """'16Ki images', '50000 images' or '48 images, 6 steps': a count for messages."""
        text = self.count_text(nimg)
        return f"{nimg} images, {text}" if text.endswith("steps") else f"{text} images"

    def say(self, message: str) -> None:
        """One line for the user, above the progress bar."""
        if self.is_main:
            tqdm.write(message, file=sys.stdout)

    def write_text(self, name: str, text: str) -> None:
        """Write a small text file atomically."""
        atomic_write(self.run_dir / name, text)

    def step(self, nimg: int, losses: dict, extra: dict, images_per_s: float, flush: bool) -> None:
        """Accumulate one step; on `flush` write the means since the last flush."""
        if not self.is_main:
            return
        for key, value in losses.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
        self.count += 1
        self.rate = images_per_s if not self.rate else 0.9 * self.rate + 0.1 * images_per_s
        if self.bar is not None:
            self.bar.update(nimg - self.bar.n)
            self.bar.set_postfix(loss=f"{losses['loss']:.4f}", img_s=f"{self.rate:.0f}", refresh=False)
        if not flush:
            return
        record = {"nimg": nimg, "time": time.time(), "img_per_s": self.rate, **extra}
        record.update({k: v / self.count for k, v in self.sums.items()})
        self.stats.write(json_text(record) + "\n")
        self.stats.flush()
        if self.writer is not None:
            for key, value in record.items():
                if key not in ("nimg", "time"):
                    self.writer.add_scalar(key, value, nimg)
        self.sums, self.count = {}, 0

    def close(self) -> None:
        if not self.is_main:
            return
        if self.bar is not None:
            self.bar.close()
        self.stats.close()
        if self.writer is not None:
            self.writer.close()
        if (self.run_dir / "stats.jsonl").stat().st_size:
            from diffc.training.preview import plot_loss_curve
            plot_loss_curve(self.run_dir / "stats.jsonl", self.run_dir / "loss.png")
