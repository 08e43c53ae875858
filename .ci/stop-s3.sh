#!/usr/bin/env bash
# Stop the server started by .ci/start-s3.sh and delete its state directory.
# Usage: bash .ci/stop-s3.sh            (reads S3_PID and S3_STATE_DIR from the env)
#        bash .ci/stop-s3.sh PID DIR
set -euo pipefail
exec bash "$(dirname "$0")/stop-service.sh" s3 "${1:-${S3_PID:-}}" "${2:-${S3_STATE_DIR:-}}" 's3s-fs' .kairo-s3-state
