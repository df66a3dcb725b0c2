"""bench/gpu.sh --smoke: the GPU benchmark's entry point runs end to end on CPU with the tiny models."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_bench_smoke_prints_a_row_per_part():
    env = dict(os.environ, PYTHON=sys.executable)
    proc = subprocess.run(["bash", "bench/gpu.sh", "--smoke"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    table = proc.stdout[proc.stdout.index("implementation"):].splitlines()
    assert [line.split()[:2] for line in table[1:5]] == [["DiT_tiny", "spec+compile"], ["DiT_tiny", "hand+compile"],
                                                          ["edm2_tiny", "spec+compile"], ["edm2_tiny", "spec"]]
    assert "failed" not in proc.stdout
