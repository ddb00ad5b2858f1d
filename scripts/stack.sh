#!/usr/bin/env bash
# The whole stack on loopback: Kafka, S3, and the four services.
#
#   stack.sh up      start what is not running, return once every service answers /readyz
#   stack.sh down    stop the services, then Kafka and S3 (data stays in $CM_STATE_DIR)
#   stack.sh status  one line per process
#   stack.sh kafka-env  prints `export CM_KAFKA_...` for the operator's Kafka principal:
#                       eval "$(scripts/stack.sh kafka-env)" before `contentmatch platform add`
#
# Ports and everything else come from the CM_* variables in the README. Without CM_ADMIN_KEY a
# development operator key is generated once into $CM_STATE_DIR/keys/admin.key.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=infra/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/infra/common.sh"
init_state_dir

SERVICES=(ingest fingerprint match report delivery)
VENV="$CM_REPO_ROOT/.venv"

port_of() {
    case "$1" in
    ingest) echo "${CM_INGEST_PORT:-8081}" ;;
    fingerprint) echo "${CM_FINGERPRINT_PORT:-8082}" ;;
    match) echo "${CM_MATCH_PORT:-8083}" ;;
    report) echo "${CM_REPORT_PORT:-8084}" ;;
    delivery) echo "${CM_DELIVERY_PORT:-8085}" ;;
    esac
}

# Prints the pid if the service runs from this state dir (guards against recycled pids).
service_pid() {
    local pf="$CM_STATE_DIR/run/$1.pid" pid
    [[ -s "$pf" ]] || return 1
    pid="$(<"$pf")"
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "serve $1" || return 1
    echo "$pid"
}

admin_key() {
    if [[ -n "${CM_ADMIN_KEY:-}" ]]; then
        echo "$CM_ADMIN_KEY"
        return
    fi
    local f="$CM_STATE_DIR/keys/admin.key"
    if [[ ! -s "$f" ]]; then
        mkdir -p "$(dirname "$f")"
        (umask 077 && python3 -c 'import secrets; print("cm_admin_" + secrets.token_urlsafe(24))' >"$f")
    fi
    cat "$f"
}

# VAR=value lines: SASL/SCRAM as `principal` (kafka.sh generated its password), unless
# CM_KAFKA_USERNAME is set (a Kafka of your own).
kafka_vars() { # principal
    [[ -n "${CM_KAFKA_USERNAME:-}" ]] && return
    printf '%s\n' "CM_KAFKA_BOOTSTRAP=${CM_KAFKA_BOOTSTRAP:-127.0.0.1:$CM_KAFKA_PORT}" \
        CM_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT CM_KAFKA_SASL_MECHANISM=SCRAM-SHA-512 \
        "CM_KAFKA_USERNAME=$1" "CM_KAFKA_PASSWORD_FILE=$(kafka_users_dir)/$1.password"
}

service_env() {
    export CM_KAFKA_BOOTSTRAP="${CM_KAFKA_BOOTSTRAP:-127.0.0.1:$CM_KAFKA_PORT}"
    export CM_S3_ENDPOINT="${CM_S3_ENDPOINT:-127.0.0.1:$CM_S3_PORT}"
    export CM_S3_ACCESS_KEY CM_S3_SECRET_KEY
    export CM_REPORT_SIGNING_KEY_FILE="${CM_REPORT_SIGNING_KEY_FILE:-$CM_STATE_DIR/keys/report-signing.key}"
    export CM_UPLOAD_TOKEN_SECRET_FILE="${CM_UPLOAD_TOKEN_SECRET_FILE:-$CM_STATE_DIR/keys/upload-token.key}"
    CM_ADMIN_KEY="$(admin_key)"
    export CM_ADMIN_KEY
    # Webhook receivers on this machine (loopback) are fine for a development stack only.
    if [[ "${CM_ENVIRONMENT:-development}" != production ]]; then
        export CM_WEBHOOK_ALLOW_PRIVATE_URLS="${CM_WEBHOOK_ALLOW_PRIVATE_URLS:-true}"
    fi
}

wait_ready() {
    local svc="$1" port start=$SECONDS
    port="$(port_of "$svc")"
    until curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null; do
        if ! service_pid "$svc" >/dev/null; then
            log "$svc exited; last lines of its log:"
            tail -n 30 "$CM_STATE_DIR/logs/$svc.log" >&2
            return 1
        fi
        if ((SECONDS - start > 120)); then
            log "$svc not ready after 120s:"
            curl -sS "http://127.0.0.1:$port/readyz" >&2 || true
            tail -n 30 "$CM_STATE_DIR/logs/$svc.log" >&2
            return 1
        fi
        sleep 0.3
    done
    log "$svc: ready on http://127.0.0.1:$port"
}

up() {
    bash "$CM_INFRA_DIR/stack.sh" start
    service_env
    # The operator's principal creates the topics and the services' ACLs (idempotent).
    local svc vars
    mapfile -t vars < <(kafka_vars admin)
    # --scram-users: principals added after this Kafka's storage was formatted (a new service).
    env "${vars[@]}" "$VENV/bin/contentmatch" kafka bootstrap --scram-users "$(kafka_users_dir)"
    for svc in "${SERVICES[@]}"; do
        if service_pid "$svc" >/dev/null; then
            log "$svc: already running"
            continue
        fi
        if port_open "$(port_of "$svc")"; then
            die "$svc: port $(port_of "$svc") is taken by another process: $(port_holder "$(port_of "$svc")")"
        fi
        mapfile -t vars < <(kafka_vars "svc-$svc")
        # spawn returns once the pid file is written: before that, wait_ready would take the
        # service for exited (what made `make up` right after `make down` fail now and then).
        spawn "$svc" "$CM_STATE_DIR/logs/$svc.log" \
            env "${vars[@]}" "$VENV/bin/contentmatch" serve "$svc"
    done
    for svc in "${SERVICES[@]}"; do wait_ready "$svc"; done
}

# What listens on a TCP port, for the error message (empty when ss cannot tell).
port_holder() { # port
    ss -ltnpH "sport = :$1" 2>/dev/null | grep -o 'users:.*' || true
}

# Every process of a service: its process group (the service is a session leader, see spawn)
# and every descendant, in case one left the group.
process_tree() { # pid
    ps -e -o pid=,ppid=,pgid= | awk -v root="$1" '
        { parent[$1] = $2; group[$1] = $3 }
        END {
            mine[root] = 1
            for (grew = 1; grew;) {
                grew = 0
                for (p in parent)
                    if (!(p in mine) && (group[p] == root || (parent[p] in mine))) {
                        mine[p] = 1
                        grew = 1
                    }
            }
            for (p in mine) print p
        }'
}

alive() { # pids...
    local p out=()
    for p in "$@"; do
        # A zombie is dead already (its parent has not reaped it yet).
        if kill -0 "$p" 2>/dev/null && [[ "$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null)" != Z* ]]; then
            out+=("$p")
        fi
    done
    echo "${out[*]}"
}

# SIGTERM to the service (uvicorn drains, consumers commit, the pool shuts down), up to
# CM_SERVICE_STOP_TIMEOUT seconds; then SIGKILL to whatever is left of its whole tree (a hung
# ffmpeg, a pool worker), and wait until nothing of it is left.
stop_service_tree() { # name pid
    local svc="$1" pid="$2" tree left i
    tree="$(process_tree "$pid")"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < ${CM_SERVICE_STOP_TIMEOUT:-40} * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    # Children of the leader's group found now too: started after the first look.
    # shellcheck disable=SC2046 # word splitting of pid lists is the point
    tree="$(echo $tree $(process_tree "$pid") | tr ' ' '\n' | sort -u)"
    # shellcheck disable=SC2086
    left="$(alive $tree)"
    if [[ -n "$left" ]]; then
        if kill -0 "$pid" 2>/dev/null; then
            log "$svc: still running after ${CM_SERVICE_STOP_TIMEOUT:-40}s, killing it"
        else
            log "$svc: killing what it left behind: $left"
        fi
        kill -KILL -- "-$pid" 2>/dev/null || true
        # shellcheck disable=SC2086
        kill -KILL $left 2>/dev/null || true
    fi
    for ((i = 0; i < 100; i++)); do
        # shellcheck disable=SC2086
        left="$(alive $tree)"
        [[ -z "$left" ]] && break
        sleep 0.1
    done
    if [[ -n "$left" ]]; then
        log "$svc: processes survived SIGKILL: $left"
        return 1
    fi
    log "$svc: stopped"
}

down() {
    local svc pid rc=0
    for svc in "${SERVICES[@]}"; do
        if pid="$(service_pid "$svc")"; then
            stop_service_tree "$svc" "$pid" || rc=1
        fi
        rm -f "$CM_STATE_DIR/run/$svc.pid"
    done
    bash "$CM_INFRA_DIR/stack.sh" stop
    return $rc
}

status() {
    local svc pid rc=0
    bash "$CM_INFRA_DIR/stack.sh" status || rc=3
    for svc in "${SERVICES[@]}"; do
        if pid="$(service_pid "$svc")"; then
            echo "$svc: running (pid $pid, http://127.0.0.1:$(port_of "$svc"))"
        else
            echo "$svc: stopped"
            rc=3
        fi
    done
    return $rc
}

case "${1:-}" in
up) up ;;
down) down ;;
status) status ;;
admin-key) admin_key ;;
kafka-env) kafka_vars admin | sed 's/^/export /' ;;
*)
    echo "usage: $0 up|down|status|admin-key|kafka-env" >&2
    exit 2
    ;;
esac
