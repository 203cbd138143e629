#!/usr/bin/env bash
# The GPU machine's benchmark run (issue 11, "GPU"): arl from src/ (no install), the
# packages that machine lacks installed from the wheels in .whl/ (carry .whl; see
# docs/benchmarks.md), then
#   (a) the inference-batching benchmark: arl's DQN muscle (hidden 256,256) acting greedily
#       for 1 to 14 workers: one agent process (today's default) and central inference
#       on cuda and on cpu, with the stored arl/inference_* metrics (batch size, latency);
#   (b) the scaling benchmark (1 ms of CPU a step, and the dummy environment) with
#       1, 2, 4, 8, 14 workers, both variants.
# Everything goes to $OUT/bench.txt (and stdout); each part is cut off at its time limit
# (100 + 55 + 165 s), so the whole ends within 6 minutes.
#
# On this machine (no GPU, no wheels for its Python), to check the commands:
#   DEVICE=cpu PYTHON=.venv/bin/python WHEELS=none WORKERS_A=1,2 WORKERS_B=1,2 RUN_SECONDS=1 \
#     bash tests/benchmarks/device.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)  # absolute: the runs start in folders of their own

PYTHON=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}          # the central variant's inference device in (a)
WHEELS=${WHEELS:-.whl}          # "none": install nothing
WORKERS_A=${WORKERS_A:-1,4,14}
ENVS=${ENVS:-16}                 # environment copies a worker in (a)
WORKERS_B=${WORKERS_B:-1,2,4,8,14}
RUN_SECONDS=${RUN_SECONDS:-2}    # of each run's phase
OUT=${OUT:-/tmp/arl-device-out}
mkdir -p "$OUT"
REPORT="$OUT/bench.txt"
: >"$REPORT"
: >"$OUT/stderr.txt"

say() { echo "$*" | tee -a "$REPORT"; }

if [ "$WHEELS" != none ]; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site "$WHEELS"/*.whl 2>&1 | tail -3 || { say "installing the wheels failed"; exit 1; }
    export PYTHONPATH=/tmp/site:$ROOT/src${PYTHONPATH:+:$PYTHONPATH}
else
    export PYTHONPATH=$ROOT/src${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1

say "== $(date -u +%FT%TZ) $(uname -m), $(nproc) cores; python: $("$PYTHON" --version 2>&1)"
"$PYTHON" - 2>&1 <<'EOF' | tee -a "$REPORT"
import arl, torch, zmq, sqlalchemy, pydantic, gymnasium
print(f"arl from {arl.__file__}; torch {torch.__version__}, cuda {torch.cuda.is_available()}"
      + (f" ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "")
      + f"; pyzmq {zmq.__version__}, sqlalchemy {sqlalchemy.__version__}, pydantic {pydantic.__version__}")
EOF
[ "${PIPESTATUS[0]}" -eq 0 ] || { say "arl or its dependencies do not import: stopping"; exit 1; }

bench() {  # a part of the bench, cut off after $1 seconds so the whole stays inside its limit
    local limit=$1; shift
    timeout --kill-after=10 "$limit" "$PYTHON" tests/benchmarks/bench_scaling.py "$@" 2>>"$OUT/stderr.txt" \
        | tee -a "$REPORT"
    local code=${PIPESTATUS[0]}
    [ "$code" -eq 0 ] || say "(that part stopped with exit code $code; stderr in $OUT/stderr.txt)"
}

say "== (a) inference batching: arl's DQN muscle, central inference on $DEVICE, then on cpu"
#     16 environment copies a worker and one inference server: batches of up to 16 x workers.
bench 100 --envs dqn --workers "$WORKERS_A" --variants default,central --device "$DEVICE" \
    --hidden 256,256 --seconds "$RUN_SECONDS" --envs-per-worker "$ENVS" --servers 1
if [ "$DEVICE" != cpu ]; then
    bench 55 --envs dqn --workers "$WORKERS_A" --variants central --device cpu \
        --hidden 256,256 --seconds "$RUN_SECONDS" --envs-per-worker "$ENVS" --servers 1
fi
say "== (b) scaling: 1 ms of CPU a step, and the dummy environment"
bench 165 --envs burn,dummy --workers "$WORKERS_B" --seconds "$RUN_SECONDS"
say "== done $(date -u +%FT%TZ)"
