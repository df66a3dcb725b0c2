#!/usr/bin/env bash
# Training throughput on one GPU (H100/H200/A100 class), under 8 minutes: bf16 autocast + torch.compile steps of
# DiT-XL/2 (diffc's compiled spec vs the hand-written reference in bench/) and EDM2-img512-XS (compiled spec,
# torch.compile vs eager); img/s, peak memory, MFU vs the device's bf16 peak; a summary table at exit.
#
#   bash bench/gpu.sh            # on the GPU machine, from the repository root (python = the venv's)
#   bash bench/gpu.sh --smoke    # CPU dry run of the same entry point with the tiny models (seconds)
#
# Each part runs in its own process under its own timeout, so one failure or slow compile costs only its row.
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
SMOKE=""
PART_TIMEOUT=130          # seconds per compiled part (compile ~1-2 min + 20 steps)
EAGER_TIMEOUT=60
if [[ "${1:-}" == "--smoke" ]]; then
    SMOKE="--smoke --steps 2 --warmup 1"
    PART_TIMEOUT=300
    EAGER_TIMEOUT=300
fi
OUT="$(mktemp -d)/gpu_bench.jsonl"
: > "$OUT"
FAILED=()

summary() {
    "$PYTHON" - "$OUT" <<'EOF'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
print()
print(f"{'model':16} {'implementation':16} {'batch':>5} {'img/s':>9} {'step ms':>9} {'peak GiB':>9} {'TFLOP/s':>8} {'MFU':>6}")
for r in rows:
    mem = f"{r['peak_mem_gib']:.1f}" if r["peak_mem_gib"] is not None else "-"
    mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "-"
    print(f"{r['model']:16} {r['impl']:16} {r['batch']:5d} {r['img_s']:9.1f} {r['step_ms']:9.1f} {mem:>9} "
          f"{r['tflops']:8.2f} {mfu:>6}")
if rows:
    print(f"device: {rows[0]['device']}")
EOF
    if ((${#FAILED[@]})); then
        echo "failed or timed out: ${FAILED[*]}"
    fi
}
trap summary EXIT

part() {   # part LABEL TIMEOUT ARGS...
    local label="$1" limit="$2"
    shift 2
    echo "== $label (timeout ${limit}s)"
    if ! timeout --kill-after=10 "$limit" "$PYTHON" bench/gpu_train.py "$@" $SMOKE --out "$OUT"; then
        FAILED+=("$label")
    fi
}

"$PYTHON" -c "import torch; print('torch', torch.__version__, '| cuda', torch.cuda.is_available())"
part "DiT-XL/2 spec compiled"   "$PART_TIMEOUT" --model dit_xl2 --impl spec --compile
part "DiT-XL/2 hand compiled"   "$PART_TIMEOUT" --model dit_xl2 --impl hand --compile
part "EDM2-XS spec compiled"    "$PART_TIMEOUT" --model edm2_xs --impl spec --compile
part "EDM2-XS spec eager"       "$EAGER_TIMEOUT" --model edm2_xs --impl spec
((${#FAILED[@]} == 0))
