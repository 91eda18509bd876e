#!/usr/bin/env bash
# The GPU benchmark in one call (under 8 minutes on an H100/H200): the GPU tests, then
# benchmarks/gpu_bench.py (epoch time of SASRec / BERT4Rec / eSASRec on ML-1M in fp32, bf16 and
# bf16 + torch.compile, recommend time for all users, peak GPU memory, SASRec trained to
# convergence with its test NDCG@10), RecTools 0.19 side by side when its wheels are in .whl/.
#
#   benchmarks/gpu.sh --smoke            # every step, tiny, on CPU (CI runs this)
#   benchmarks/gpu.sh                    # on the GPU machine, with ML-1M in .data/ml-1m/
#
# The data does not travel with the checkout: copy ML-1M (ml-1m.txt and items.csv, see the data
# README) into the git-ignored .data/ml-1m/ and carry .data; for RecTools, fetch its wheels into .whl/
# and carry that too.
#
# Results: gpu_results.json / gpu_results.md and the logs in $OUT (default benchmarks/results/gpu).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${OUT:-benchmarks/results/gpu}"
PY="${PYTHON:-python3}"
mkdir -p "$OUT_DIR"
if ls .whl/*.whl > /dev/null 2>&1; then
  # RecTools 0.19 and what it needs, carried as wheels (see the project's GPU notes)
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"

status=0
timeout 100 "$PY" -m pytest -q -p no:cacheprovider tests/test_gpu.py 2>&1 | tee "$OUT_DIR/gpu_tests.log" || status=1
timeout 370 "$PY" benchmarks/gpu_bench.py --out "$OUT_DIR" "$@" 2>&1 | tee "$OUT_DIR/gpu_bench.log" || status=1
exit $status
