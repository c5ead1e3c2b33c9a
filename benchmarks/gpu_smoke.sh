#!/usr/bin/env bash
# The GPU checks of issue 4, as one script: the smoke test on CUDA, then the SD-1 benchmark eager
# and compiled (fast path). Run from the repository root on a machine with an NVIDIA GPU and a
# CUDA torch (python3 = the one with torch). Results: $OUT/<run>/smoke.json (run: smoke, eager, compiled_<mode>)
# and a summary on stdout. Nothing is downloaded.
#
# If diffusers is missing there (the lent H100/H200 image has torch and transformers but no
# diffusers), carry it as wheels made on a machine with PyPI, from the repo root:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl \
#       diffusers==0.42.1 importlib_metadata
# and name `.whl` in the device tool's `carry`; this script installs .whl/*.whl into /tmp/site.
#
# RUNS picks what runs, in order: "smoke", "eager", and any torch.compile mode (the fast path).
# Default "smoke eager reduce-overhead": about 1 + 1 + 2-4 min (the compile dominates), which fits
# one 10-minute device command. A second call with RUNS="max-autotune-no-cudagraphs" tries the
# autotuned mode (longer compile: several minutes of Triton autotuning).
set -uo pipefail

OUT="${OUT:-outputs/gpu}"
PY="${PYTHON:-python3}"
STEPS="${BENCH_STEPS:-30}"
RUNS="${RUNS:-smoke eager reduce-overhead}"
# EXTRA_ARGS go to every run; e.g. a CPU rehearsal of this script:
#   PYTHON=.venv/bin/python RUNS="smoke eager" EXTRA_ARGS="--allow-cpu --resolution 64 --benchmark-steps 2" \
#   bash benchmarks/gpu_smoke.sh
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1

site=""
if compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "gpu_smoke: cannot install .whl/*.whl" >&2; exit 2; }
    site="/tmp/site"
fi

# Ship only envspec/__init__.py and envspec/smoke/, as `envspec smoke --prefix` does.
ship="$(mktemp -d)"
mkdir -p "$ship/envspec"
cp envspec/__init__.py "$ship/envspec/"
cp -r envspec/smoke "$ship/envspec/smoke"
find "$ship" -name __pycache__ -prune -exec rm -rf {} +
export PYTHONPATH="$ship${site:+:$site}"
export PYTHONSAFEPATH=1  # python -m must not import envspec from the checkout in the cwd

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee "$OUT/gpu.txt"
"$PY" -c "import torch, diffusers, transformers; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'diffusers', diffusers.__version__, 'transformers', transformers.__version__)" 2>&1 | tee -a "$OUT/gpu.txt"

status=0
run() {  # run NAME TIMEOUT ARGS...: one smoke/benchmark run, its verdict line and exit code
    local name="$1" limit="$2"; shift 2
    echo "== $name: $PY -m envspec.smoke $*" >&2
    # shellcheck disable=SC2086  # EXTRA_ARGS is a list of options on purpose
    timeout "$limit" "$PY" -m envspec.smoke --expect cuda --target linux-cuda --out "$OUT/$name" "$@" ${EXTRA_ARGS:-} \
        2> "$OUT/$name.stderr.txt"
    local rc=$?
    tail -n 15 "$OUT/$name.stderr.txt" >&2
    echo "== $name: exit $rc" >&2
    [ "$rc" -eq 0 ] || status=1
}

for what in $RUNS; do
    case "$what" in
        smoke) run smoke 240 ;;                                              # tiny pipeline on cuda, fp16
        eager) run eager 240 --benchmark --benchmark-steps "$STEPS" ;;       # SD-1 full size, 512², batch 2
        *) run "compiled_${what//-/_}" 540 --benchmark --compile --compile-mode "$what" --benchmark-steps "$STEPS" ;;
    esac
done

"$PY" - "$OUT" <<'PYEOF'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
for report in sorted(out.glob("*/smoke.json")):
    data = json.loads(report.read_text())
    bench = data.get("benchmark") or {}
    extra = ""
    if bench:
        extra = (f" | {bench['it_per_s']} it/s, {bench['ms_per_step']} ms/step, {bench['unet_tflops']} TFLOP/s, "
                 f"share {bench['peak_share']}, compile {bench['compile_s']} s")
    print(f"{report.parent.name:>40}: {data['verdict']} on {data['device_name']} {data['dtype']}{extra}")
PYEOF
exit $status
