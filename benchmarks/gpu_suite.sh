#!/usr/bin/env bash
# The speed/memory table of BENCHMARKS.md in one command on one GPU (H100 or H200):
#   bash benchmarks/gpu_suite.sh OUT_DIR
# Each step writes its own JSON, most important first, and appends its output to suite.log; a step that fails
# or runs out of time leaves the others' results. About 7 minutes on an H100 (steps 1-4
# 4.6 minutes, step 5 1.5 minutes).
set -u
out=${1:?usage: gpu_suite.sh OUT_DIR}
mkdir -p "$out"
log="$out/suite.log"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$log"
step() {  # step NAME SECONDS COMMAND...
    local name=$1 limit=$2
    shift 2
    echo "== $name"
    echo "== $name: $*" >>"$log"
    timeout "$limit" "$@" >>"$log" 2>&1
    echo "rc=$?" | tee -a "$log"
}
# 1. Ours (triton backend, lean memory plan) against the diffusers peer at 161/321/961 frames, the fp32
#    reference at 161, per-module breakdown.
step bench_triton_lean 300 python3 -m sana_wm bench --frames 161,321,961 --repeats 2 --backend triton --memory lean \
    --fp32-reference --breakdown --out "$out/bench_triton_lean.json"
# 2. Kernel parity and cost, op by op, at 41 and 121 latent frames.
step kernels 60 python benchmarks/kernels_gpu.py --out "$out/kernels.json"
# 3. Block streaming from pinned CPU memory, CFG rows one after the other, at 961 frames (the CLI asks the
#    CUDA allocator for expandable segments when offloading, unless PYTORCH_CUDA_ALLOC_CONF is set).
step bench_offload 100 python3 -m sana_wm bench --frames 961 --repeats 1 --backend triton --memory lean-serial \
    --offload group --no-peer --out "$out/bench_offload.json"
# 4. The same without a memory plan (what chunking costs and saves), and the plain PyTorch backend.
step bench_triton_none 60 python3 -m sana_wm bench --frames 321,961 --repeats 1 --backend triton --memory none \
    --no-peer --out "$out/bench_triton_none.json"
step bench_torch_lean 60 python3 -m sana_wm bench --frames 321,961 --repeats 1 --backend torch --memory lean \
    --no-peer --out "$out/bench_torch_lean.json"
# 5. The whole stage-1 pipeline at 961 frames with block streaming: text encoder, VAE encode, 2 steps, tiled
#    VAE decode; per-stage time and peak.
step pipeline_offload 240 python3 -m sana_wm bench --mode pipeline --frames 961 --steps 2 --backend triton \
    --offload group --out "$out/pipe961_group.json"
