#!/usr/bin/env bash
# Kafka and S3Proxy together, with the same environment as kafka.sh / s3.sh.
#
#   stack.sh start|stop|status|wait|restart
#
# `start` also waits: both JVMs boot in parallel, then each is awaited.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

KAFKA="$CM_INFRA_DIR/kafka.sh"
S3="$CM_INFRA_DIR/s3.sh"

case "${1:-}" in
    start)
        "$KAFKA" start
        "$S3" start
        "$S3" wait
        "$KAFKA" wait
        ;;
    wait)
        "$S3" wait
        "$KAFKA" wait
        ;;
    stop)
        # Both in parallel: each may take a few seconds to shut down cleanly.
        "$KAFKA" stop &
        kafka_stop=$!
        "$S3" stop
        wait "$kafka_stop"
        ;;
    restart)
        "$0" stop
        "$0" start
        ;;
    status)
        # 0 when both run, 3 (LSB "not running") when either is down.
        rc=0
        "$KAFKA" status || rc=3
        "$S3" status || rc=3
        exit "$rc"
        ;;
    *)
        echo "usage: $0 start|stop|status|wait|restart" >&2
        exit 2
        ;;
esac
