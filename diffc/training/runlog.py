"""What the user sees: a tqdm bar (loss, images/s, ETA), stats.jsonl, TensorBoard scalars, the loss curve."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path


class RunLog:
    def __init__(self, run_dir: Path, is_main: bool, tensorboard: bool, progress: bool, total: int, nimg: int):
        self.run_dir, self.is_main = Path(run_dir), is_main
        self.sums, self.count, self.rate = {}, 0, 0.0
        self.bar = self.writer = None
        if not is_main:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.stats = open(self.run_dir / "stats.jsonl", "a")
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(str(self.run_dir / "tensorboard"))
        if progress:
            from tqdm import tqdm
            self.bar = tqdm(total=total, initial=nimg, unit="img", unit_scale=True, dynamic_ncols=True)

    def write_text(self, name: str, text: str) -> None:
        """Write a small text file atomically."""
        tmp = self.run_dir / f".{name}.tmp-{os.getpid()}"
        tmp.write_text(text)
        os.replace(tmp, self.run_dir / name)

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
            total = sum(v for k, v in losses.items() if k.startswith("loss/"))
            self.bar.set_postfix(loss=f"{total:.4f}", img_s=f"{self.rate:.0f}", refresh=False)
        if not flush:
            return
        record = {"nimg": nimg, "time": time.time(), "img_per_s": self.rate, **extra}
        record.update({k: v / self.count for k, v in self.sums.items()})
        record["loss"] = sum(v for k, v in record.items() if k.startswith("loss/"))
        self.stats.write(json.dumps(record) + "\n")
        self.stats.flush()
        if self.writer is not None:
            for key, value in record.items():
                if key not in ("nimg", "time"):
                    self.writer.add_scalar(key, value, nimg)
        self.sums, self.count = {}, 0

    def close(self, finished: bool) -> None:
        if not self.is_main:
            return
        if self.bar is not None:
            self.bar.close()
        self.stats.close()
        if self.writer is not None:
            self.writer.close()
        if finished and (self.run_dir / "stats.jsonl").stat().st_size:
            from diffc.training.preview import plot_loss_curve
            plot_loss_curve(self.run_dir / "stats.jsonl", self.run_dir / "loss.png")
