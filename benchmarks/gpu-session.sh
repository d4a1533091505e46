#!/usr/bin/env bash
# Everything rnn-cli checks on a CUDA machine, in one go; results land under $OUT.
#   OUT=/tmp/gpu bash benchmarks/gpu-session.sh
# 1. the CUDA-marked tests, then the whole suite with CUDA present (-> tests.log)
# 2. compare against the float64 reference over cells x sizes, TF32 on/off (-> cuda-compare.md)
# 3. rnn-cli bench on CUDA, human and JSON, and torch on CUDA (-> bench-cuda.txt)
# 4. the benchmark matrix with cuDNN timings (-> RESULTS-cuda.md)
# typer 0.28 travels as a wheel in .whl/ when the machine's typer is another version.
set -uo pipefail
OUT="${OUT:-/tmp/rnn-cli-gpu}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:$PWD"
else
    export PYTHONPATH="$PWD"
fi
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 || true
command -v rnn-cli >/dev/null || rnn-cli() { python3 -m rnn_cli "$@"; }

{
    nvidia-smi -L
    python3 -c "import torch, numpy, typer, rich; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version(), '| numpy', numpy.__version__, '| typer', typer.__version__)"
    echo "== CUDA-marked tests"
    timeout 120 python3 -m pytest -q -m cuda -p no:cacheprovider -s tests/test_cuda.py tests/test_compare.py 2>&1 | tail -90
    echo "== whole suite with CUDA present"
    CI=1 timeout 200 python3 -m pytest -q -p no:cacheprovider -n 8 tests 2>&1 | tail -15 \
        || CI=1 timeout 200 python3 -m pytest -q -p no:cacheprovider tests 2>&1 | tail -15
} >"$OUT/tests.log" 2>&1

timeout 150 python3 benchmarks/cuda_compare.py >"$OUT/cuda-compare.md" 2>&1

{
    echo '$ rnn-cli bench --cell lstm --hidden-size 512 --seq-len 200 --batch 64 --device cuda'
    COLUMNS=80 timeout 60 rnn-cli bench --cell lstm --hidden-size 512 --seq-len 200 --batch 64 --device cuda --repeat 10
    echo '$ rnn-cli bench --cell lstm --hidden-size 512 --seq-len 200 --batch 64 --device cuda --no-tf32 --json'
    timeout 60 rnn-cli bench --cell lstm --hidden-size 512 --seq-len 200 --batch 64 --device cuda --no-tf32 --repeat 10 --json
    echo '$ rnn-cli torch --layers 2 --bidirectional --device cuda --no-values'
    COLUMNS=80 timeout 30 rnn-cli torch --layers 2 --bidirectional --device cuda --no-values
    echo '$ rnn-cli compare --device cuda --cell gru --layers 2 --bidirectional --lengths 10,7,3 --batch 3 --no-diagram'
    COLUMNS=80 timeout 30 rnn-cli compare --device cuda --cell gru --layers 2 --bidirectional --lengths 10,7,3 --batch 3 --no-diagram
    echo "exit $?"
    echo '$ rnn-cli torch --device cuda:7'
    timeout 30 rnn-cli torch --device cuda:7
    echo "exit $?"
} >"$OUT/bench-cuda.txt" 2>&1

timeout 150 python3 benchmarks/run.py --quick --cuda --only matrix --budget 0.3 --output "$OUT/RESULTS-cuda.md" >"$OUT/run.log" 2>&1
echo "done: $(ls "$OUT")"
