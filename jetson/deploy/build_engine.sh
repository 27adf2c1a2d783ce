#!/usr/bin/env bash
# Build, inspect and evaluate a TensorRT engine from a skyinspect ONNX model ON the Jetson that will run it
# (engines are specific to the GPU, TensorRT version and JetPack; never copy them between devices).
#
#   ./build_engine.sh MODEL.onnx [OUT_DIR] [--int8]
#
# skyinspect-edge itself runs the ONNX through onnxruntime's TensorRT provider, which builds and caches its own
# engine (<data_dir>/edge/trt-cache). This script is for checking that TensorRT takes the model, what precision
# each layer got, and the model's pure latency on this device; the plain .engine it writes also serves
# DeepStream / trtexec. INT8 only for a QDQ model or with a calibration cache next to the model (calibration.cache).
set -euo pipefail

if [[ $# -lt 1 ]]; then
    echo "usage: $0 MODEL.onnx [OUT_DIR] [--int8]" >&2
    exit 2
fi
MODEL="$1"
OUT_DIR="${2:-$(dirname "${MODEL}")}"
INT8="${3:-}"
TRTEXEC="${TRTEXEC:-/usr/src/tensorrt/bin/trtexec}"
WORKSPACE_MB="${WORKSPACE_MB:-2048}"

if [[ ! -f "${MODEL}" ]]; then
    echo "no such model: ${MODEL}" >&2
    exit 1
fi
if [[ ! -x "${TRTEXEC}" ]]; then
    echo "trtexec not found at ${TRTEXEC} (set TRTEXEC=...)" >&2
    exit 1
fi
mkdir -p "${OUT_DIR}"
STEM="$(basename "${MODEL}" .onnx)"
PRECISION="fp16"
precision_args=(--fp16)
if [[ "${INT8}" == "--int8" ]]; then
    PRECISION="int8"
    precision_args=(--fp16 --int8)
    CALIB="$(dirname "${MODEL}")/calibration.cache"
    if [[ -f "${CALIB}" ]]; then
        precision_args+=(--calib="${CALIB}")
    fi
fi
ENGINE="${OUT_DIR}/${STEM}.${PRECISION}.engine"
TIMING_CACHE="${OUT_DIR}/timing.cache"

echo "== build ${ENGINE}"
"${TRTEXEC}" --onnx="${MODEL}" --saveEngine="${ENGINE}" "${precision_args[@]}" \
    --buildOnly --timingCacheFile="${TIMING_CACHE}" \
    --memPoolSize=workspace:"${WORKSPACE_MB}" \
    --profilingVerbosity=detailed \
    2>&1 | tee "${OUT_DIR}/${STEM}.${PRECISION}.build.log"

echo "== inspect (layers and their precision) -> ${OUT_DIR}/${STEM}.${PRECISION}.layers.json"
"${TRTEXEC}" --loadEngine="${ENGINE}" --dumpLayerInfo --profilingVerbosity=detailed \
    --exportLayerInfo="${OUT_DIR}/${STEM}.${PRECISION}.layers.json" --iterations=1 --warmUp=0 --duration=0 \
    > /dev/null

echo "== evaluate (latency on this device) -> ${OUT_DIR}/${STEM}.${PRECISION}.times.json"
"${TRTEXEC}" --loadEngine="${ENGINE}" --warmUp=500 --duration=10 --useSpinWait \
    --exportTimes="${OUT_DIR}/${STEM}.${PRECISION}.times.json" \
    2>&1 | grep -E "Throughput|Latency|GPU Compute Time" || true

echo "engine: ${ENGINE}"
echo "next: compare detections with the ONNX on real frames: skyinspect-edge bench --model ${MODEL} --images DIR"
