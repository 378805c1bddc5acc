#!/usr/bin/env bash
# What a session with a lent GPU runs, one phase per device call (each well inside 10 minutes).
# Every phase writes its logs and results under $OUT (the device tool brings them back).
#
#   bash tools/gpu_session.sh check        # versions; all of tests/kernels natively (incl. -m cuda)
#   bash tools/gpu_session.sh warmcheck    # check, with the bench's warm-up beside it (16 cores: 8 + 8)
#   bash tools/gpu_session.sh bench [I/N] [bench_kernels options...]
#       compiles every variant first in 8 parallel processes (--warm-only: fills Triton's and
#       Inductor's on-disk caches, times nothing), then times the (I-th of N slices of the)
#       layer list in one process. If a call is cut off, its JSON keeps the rows measured; run
#       the other slices with `bench 2/2` etc. and join them, on any machine, with
#   python3 tools/bench_kernels.py --merge <JSON files> --out benchmarks/raw
#   bash tools/gpu_session.sh ab [ab_kernels options...]
#       tools/ab_kernels.py: rows vs taps forward, flipped vs gather input gradient, per-tap vs
#       tap-block vs tuned weight gradient, tap-major vs as-is filter, timed side by side in one process
#       (each a kernel policy; `--forward POLICY...` / `--training POLICY...` time others)
#   bash tools/gpu_session.sh measure [--dry-run] [gpu_measure options...]
#       issue 14's one run, at most 8 minutes: compiles everything first in 8 parallel processes
#       (--warm-only, at most WARM_LIMIT=150 s), then tools/gpu_measure.py times, alone on the GPU and
#       within what is left of 450 s: the dispatch measurement per shape class (which fills
#       cnnc/kernels/dispatch_tables/: $OUT/dispatch_<device>.json), whole models (eager, CUDA-graphed,
#       torch.compile default and max-autotune), per-kernel profiles of five layers. Writes measure.json
#       and measure.md after every measurement; prints a short table last. Needs lark, as `models` does
#       (carry .whl). --dry-run: no GPU; prints the commands and writes the plan's empty outputs.
#   bash tools/gpu_session.sh models [bench_models options...]
#       tools/bench_models.py: torchvision eager / torch.compile against cnnc's modules. It needs
#       lark (the cnnc front end), which the device image lacks: before the call, here,
#       mkdir -p .whl && echo /.whl/ >> .git/info/exclude && python3 -m pip download --no-deps -d .whl lark==1.3.1
#       and name .whl in the call's carry.
#
# The device image has torch, triton, pytest, pytest-xdist and hypothesis; the kernel tests and
# the benchmark need nothing else from this repository's dependencies (no lark, no graphviz).
set -uo pipefail
OUT=${OUT:-/tmp/cnnc_gpu_out}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1

versions() {
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv 2>&1
    python3 -c "import sys, torch, triton; print('python', sys.version.split()[0], 'torch', torch.__version__,
'triton', triton.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version(),
'device', torch.cuda.get_device_name())"
}

warm() {  # warm <I/N> [bench_kernels options...]: 8 parallel --warm-only processes, log in $OUT/warm.log
    local shard=$1; shift
    local i=${shard%/*} n=${shard#*/} t0=$SECONDS
    for w in 1 2 3 4 5 6 7 8; do
        # slice w of 8 of this run's slice i of n is slice (i + n*(w-1)) of 8n; one Inductor
        # compile thread each, so that 8 of them (and a test run beside them) share 16 cores
        TORCHINDUCTOR_COMPILE_THREADS=1 timeout ${WARM_LIMIT:-300} python3 tools/bench_kernels.py --warm-only \
            --shard "$(( i + n * (w - 1) ))/$(( 8 * n ))" "$@" > "/tmp/cnnc_warm_$w.log" 2>&1 &
    done
    wait
    # the device tool brings back at most 8 files: one log for the 8 warm-up processes
    for w in 1 2 3 4 5 6 7 8; do echo "== warm-up process $w"; cat "/tmp/cnnc_warm_$w.log"; done > "$OUT/warm.log"
    echo "warm-up (8 processes): $(( SECONDS - t0 )) s; $(grep -c '^warmed' "$OUT/warm.log") pairs warmed"
    grep -B 2 -A 20 Traceback "$OUT/warm.log" | head -n 40
}

check() {  # all of tests/kernels natively, both tiers (CHECK_MARKS: a marker expression), log and junit in $OUT
    # One autotune config per kernel, nothing timed (the kernel policy autotune=false, the tests'
    # default policy; CHECK_POLICY adds to it): the property tests compile hundreds of
    # specializations, and the benchmark checks every layer with the tuned configs anyway.
    local workers status
    workers=$(python3 -c "import xdist" 2>/dev/null && echo "-n 8")  # pytest-xdist, where installed
    per_test=$(python3 -c "import pytest_timeout" 2>/dev/null && echo "--timeout=150")
    # failures are written as they happen (tests/kernels/conftest.py): a run cut off prints no summary
    CNNC_TEST_FAILURES="$OUT/failures.txt" CNNC_KERNELS_POLICY="autotune=false${CHECK_POLICY:+,$CHECK_POLICY}" \
        timeout ${CHECK_LIMIT:-480} \
        python3 -m pytest tests/kernels -m "${CHECK_MARKS:-}" ${CHECK_ARGS:-} -q -rf $workers $per_test -p no:cacheprovider -p no:benchmark \
        --durations=15 --junitxml="$OUT/pytest_kernels.xml" > "$OUT/pytest_kernels.log" 2>&1
    status=$?
    grep -E "^(FAILED|ERROR)|^=====" "$OUT/pytest_kernels.log" "$OUT/failures.txt" 2>/dev/null | head -n 40
    tail -n 3 "$OUT/pytest_kernels.log"
    return $status
}

need_lark() {  # the cnnc front end's one dependency the device image lacks, from the carried .whl/
    python3 -c "import lark" 2>/dev/null && return 0
    ls .whl/lark-*.whl >/dev/null 2>&1 || { echo "gpu_session: no lark and no .whl/lark-*.whl (see the header)" >&2; exit 2; }
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/cnnc_site .whl/lark-*.whl || exit 2
    export PYTHONPATH=/tmp/cnnc_site${PYTHONPATH:+:$PYTHONPATH}
}

case "${1:-}" in
measure)
    shift
    dry=""
    if [ "${1:-}" = "--dry-run" ]; then dry=1; shift; fi
    budget=${MEASURE_BUDGET:-450} warm_limit=${WARM_LIMIT:-150}
    warm_cmd="TORCHINDUCTOR_COMPILE_THREADS=2 timeout $warm_limit python3 tools/gpu_measure.py --warm-only --shard W/8 --out /tmp/cnnc_warm_W $*"
    timed_cmd="timeout \$(( $budget + 20 - elapsed )) python3 tools/gpu_measure.py --out \$OUT --budget \$(( $budget - elapsed )) $*"
    if [ -n "$dry" ]; then
        echo "gpu_session measure: would run, for W in 1..8 in parallel: $warm_cmd"
        echo "gpu_session measure: then: $timed_cmd"
        python3 tools/gpu_measure.py --dry-run --out "$OUT" --budget "$budget" "$@"
        exit $?
    fi
    need_lark
    versions > "$OUT/versions.txt"
    start=$SECONDS
    for w in 1 2 3 4 5 6 7 8; do
        TORCHINDUCTOR_COMPILE_THREADS=2 timeout "$warm_limit" python3 tools/gpu_measure.py --warm-only --shard "$w/8" \
            --out "/tmp/cnnc_warm_$w" "$@" > "/tmp/cnnc_warm_$w.log" 2>&1 &
    done
    wait
    for w in 1 2 3 4 5 6 7 8; do echo "== warm-up process $w"; cat "/tmp/cnnc_warm_$w.log"; done > "$OUT/warm.log"
    elapsed=$(( SECONDS - start ))
    echo "warm-up (8 processes): $elapsed s; $(grep -c '^warmed' "$OUT/warm.log") tasks compiled"
    timeout $(( budget + 20 - elapsed )) python3 tools/gpu_measure.py --out "$OUT" --budget $(( budget - elapsed )) "$@" 2>&1 \
        | tee "$OUT/measure.log"
    ;;
profile)  # profile [profile_kernels options...], then the kernel tests in what is left of the call
    versions | tee "$OUT/versions.txt"
    shift
    timeout ${PROFILE_LIMIT:-200} python3 tools/profile_kernels.py --out "$OUT" "$@" 2>&1 | tee -a "$OUT/profile.log"
    [ -z "${CHECK_LIMIT:-}" ] || check
    ;;
check)
    versions | tee "$OUT/versions.txt"
    check
    ;;
warmcheck)
    # both only compile (neither times anything), so they can share the machine: the warm-up
    # fills the caches the timed `CNNC_SKIP_WARM=1 bench` calls then find, on the same machine
    versions | tee "$OUT/versions.txt"
    shift
    warm 1/1 "$@" > "$OUT/warm_summary.txt" 2>&1 &
    check; status=$?
    wait
    cat "$OUT/warm_summary.txt"
    exit $status
    ;;
bench)
    shard=${2:-1/1}
    shift $(( $# >= 2 ? 2 : 1 ))
    versions > "$OUT/versions.txt"
    start=$SECONDS
    # the warm-up covers exactly the (batch, layer) pairs the timed run will take
    [ -n "${CNNC_SKIP_WARM:-}" ] || warm "$shard" "$@"
    timeout $(( ${BENCH_LIMIT:-560} - (SECONDS - start) )) python3 tools/bench_kernels.py --shard "$shard" --out "$OUT" "$@" 2>&1 \
        | tee "$OUT/bench.log"
    ;;
ab)  # ab [ab_kernels options...]: the depthwise kernels' alternative paths side by side
    shift
    versions > "$OUT/versions.txt"
    timeout ${AB_LIMIT:-560} python3 tools/ab_kernels.py --out "$OUT" "$@" 2>&1 | tee "$OUT/ab.log"
    ;;
models)
    need_lark
    shift
    versions > "$OUT/versions.txt"
    timeout 560 python3 tools/bench_models.py --out "$OUT" "$@" 2>&1 | tee "$OUT/models.log"
    ;;
*)
    echo "usage: bash tools/gpu_session.sh measure [--dry-run] | check | warmcheck | profile | bench [I/N] | ab | models" >&2
    exit 2
    ;;
esac
