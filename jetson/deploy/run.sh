#!/usr/bin/env bash
# Run skyinspect-edge in its container on the Jetson. Mounts only the data folder (incoming frames, queue, results,
# TensorRT caches) and the models folder. S3 settings come from an env file (never on the command line).
#
#   DATA_DIR=/srv/skyinspect MODELS_DIR=/srv/skyinspect/models ./run.sh run --source /data/incoming --model current
set -euo pipefail

IMAGE="${IMAGE:-skyinspect-edge:latest}"
DATA_DIR="${DATA_DIR:-/srv/skyinspect}"
MODELS_DIR="${MODELS_DIR:-${DATA_DIR}/models}"
ENV_FILE="${ENV_FILE:-/etc/skyinspect/edge.env}"
NAME="${NAME:-skyinspect-edge}"

mkdir -p "${DATA_DIR}/incoming" "${MODELS_DIR}"
env_args=()
if [[ -f "${ENV_FILE}" ]]; then
    env_args=(--env-file "${ENV_FILE}")
fi
if [[ $# -eq 0 ]]; then
    set -- run --source /data/incoming --model current
fi

exec docker run --rm --name "${NAME}" \
    --runtime nvidia --network host \
    --stop-timeout 30 \
    "${env_args[@]}" \
    -e SKYINSPECT_DATA_DIR=/data \
    -e SKYINSPECT_EDGE_CONFIG=/data/edge.yaml \
    -v "${DATA_DIR}:/data" \
    -v "${MODELS_DIR}:/models" \
    "${IMAGE}" "$@"
