#!/usr/bin/env bash
# Smoke test of the infra scripts: starts Kafka and S3Proxy on their own ports
# in a temporary state dir (so it runs beside a dev stack and the test suite's
# instance), checks them with the same clients the services use, restarts both
# to check persistence, and stops them. Needs install.sh to have run.
#
#   CM_SELFTEST_KAFKA_PORT (29092), CM_SELFTEST_KAFKA_CONTROLLER_PORT (29093),
#   CM_SELFTEST_S3_PORT (29000), CM_SELFTEST_KEEP=1 keeps the state dir.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

CM_STATE_DIR="$(mktemp -d "${TMPDIR:-/tmp}/contentmatch-selftest.XXXXXX")"
CM_KAFKA_PORT="${CM_SELFTEST_KAFKA_PORT:-29092}"
CM_KAFKA_CONTROLLER_PORT="${CM_SELFTEST_KAFKA_CONTROLLER_PORT:-29093}"
CM_S3_PORT="${CM_SELFTEST_S3_PORT:-29000}"
export CM_STATE_DIR CM_KAFKA_PORT CM_KAFKA_CONTROLLER_PORT CM_S3_PORT \
    CM_S3_ACCESS_KEY CM_S3_SECRET_KEY CM_CACHE_DIR

STACK="$CM_INFRA_DIR/stack.sh"

cleanup() {
    local rc=$?
    if ((rc != 0)); then
        "$STACK" stop || true
        tail_logs "$CM_STATE_DIR/logs/kafka.log" "$CM_STATE_DIR/logs/s3proxy.log"
        log "selftest FAILED (state kept in $CM_STATE_DIR)"
    elif [[ "${CM_SELFTEST_KEEP:-0}" == 1 ]]; then
        log "state kept in $CM_STATE_DIR"
    else
        rm -rf "$CM_STATE_DIR"
    fi
    exit "$rc"
}
trap cleanup EXIT

# uv keeps the project's venv in sync with uv.lock; the clients come from there.
run_python() {
    (cd "$CM_REPO_ROOT" \
        && PYTHONUNBUFFERED=1 uv run --frozen --quiet python "$CM_INFRA_DIR/selftest.py" "$@")
}

start_both() {
    local t0=$SECONDS
    "$STACK" start
    log "both up in $((SECONDS - t0))s"
    log "resident memory: kafka $(rss kafka), s3proxy $(rss s3proxy)"
}

rss() { # name
    local pid
    pid="$(<"$(pid_file "$1")")"
    awk '/^VmRSS/ {printf "%d MiB", $2 / 1024}' "/proc/$pid/status"
}

main() {
    local t0=$SECONDS
    log "state dir $CM_STATE_DIR; kafka 127.0.0.1:$CM_KAFKA_PORT, s3 127.0.0.1:$CM_S3_PORT"
    start_both
    run_python write

    log "restarting both to check that data persists"
    "$STACK" stop
    local svc rc
    for svc in kafka s3; do
        # status exits 3 when stopped: anything else means it survived.
        rc=0
        "$CM_INFRA_DIR/$svc.sh" status >/dev/null || rc=$?
        ((rc == 3)) || die "$svc still runs after stop"
    done
    start_both
    run_python verify

    "$STACK" stop
    for port in "$CM_KAFKA_PORT" "$CM_KAFKA_CONTROLLER_PORT" "$CM_S3_PORT"; do
        if port_open "$port"; then die "port $port still open after stop"; fi
    done
    log "selftest passed in $((SECONDS - t0))s"
}

main "$@"
