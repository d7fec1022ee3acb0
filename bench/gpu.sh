#!/usr/bin/env bash
# The GPU benchmark, one short script: on a machine with a CUDA device, from the project
# root, after `make venv TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"`
# (or with any .venv whose torch sees the GPU). Ten minutes at most; writes
# bench/results/gpu_<device>.json, which `python bench/report.py` puts on the
# performance page. Run it alone on the machine.
#
#   bash bench/gpu.sh            # everything (bench/gpu.py)
#   bash bench/gpu.sh --quick    # a check that the script runs, two short epochs a part
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
[ -x "$python" ] || python=python3

if ! "$python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "bench/gpu.sh: error: torch sees no CUDA device here; run it on a machine with a GPU (nvidia-smi lists it)" >&2
    exit 2
fi
"$python" -c "import torch; print('device:', torch.cuda.get_device_name(0), '| torch', torch.__version__, '| devices:', torch.cuda.device_count())"
export VAELAB_OFFLINE=${VAELAB_OFFLINE:-1} WANDB_MODE=${WANDB_MODE:-offline}
# Ten minutes for the whole script, leaving the caller's timer a margin.
timeout 560 "$python" bench/gpu.py "$@"
"$python" bench/report.py
