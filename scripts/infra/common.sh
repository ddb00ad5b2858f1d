# shellcheck shell=bash
# Shared settings and helpers for the infra scripts. Sourced, never run.
#
# Every path an instance writes to lives under CM_STATE_DIR, so two instances
# (a dev stack on the default ports and the test suite's own on other ports
# with CM_STATE_DIR=.state/test) never touch each other's files.

CM_INFRA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CM_REPO_ROOT="$(cd "$CM_INFRA_DIR/../.." && pwd)"

CM_CACHE_DIR="${CM_CACHE_DIR:-$HOME/.cache/contentmatch}"
CM_STATE_DIR="${CM_STATE_DIR:-$CM_REPO_ROOT/.state}"
CM_KAFKA_PORT="${CM_KAFKA_PORT:-9092}"
CM_KAFKA_CONTROLLER_PORT="${CM_KAFKA_CONTROLLER_PORT:-9093}"
CM_S3_PORT="${CM_S3_PORT:-9000}"
CM_S3_ACCESS_KEY="${CM_S3_ACCESS_KEY:-contentmatch}"
CM_S3_SECRET_KEY="${CM_S3_SECRET_KEY:-contentmatch-dev-secret}"
# How long `wait` blocks before giving up.
CM_WAIT_TIMEOUT="${CM_WAIT_TIMEOUT:-90}"
# How long `stop` waits after SIGTERM before SIGKILL.
CM_STOP_TIMEOUT="${CM_STOP_TIMEOUT:-30}"

# The Kafka principals the infra creates: the operator's super user and one per service.
KAFKA_SCRAM_USERS=(admin svc-ingest svc-fingerprint svc-match svc-report svc-delivery)
kafka_users_dir() { printf '%s/kafka/users' "$CM_STATE_DIR"; }

log() { printf '[infra] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Absolute paths: the JVMs get them in config files and may run from another cwd.
abspath_dir() { mkdir -p "$1" && (cd "$1" && pwd); }

init_state_dir() {
    CM_STATE_DIR="$(abspath_dir "$CM_STATE_DIR")"
    mkdir -p "$CM_STATE_DIR/run" "$CM_STATE_DIR/logs" "$CM_STATE_DIR/conf"
}

require_lib() { # name
    local lib="$CM_CACHE_DIR/$1/lib"
    compgen -G "$lib/*.jar" >/dev/null \
        || die "$1 is not installed in $lib: run scripts/infra/install.sh"
}

pid_file() { printf '%s/run/%s.pid' "$CM_STATE_DIR" "$1"; }

# Prints the pid if the service is alive. The JVM's command line carries
# -Dcontentmatch.state=<dir>, which guards against a recycled pid.
running_pid() { # name
    local pf pid
    pf="$(pid_file "$1")"
    [[ -s "$pf" ]] || return 1
    pid="$(<"$pf")"
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null \
        | grep -qF -- "-Dcontentmatch.state=$CM_STATE_DIR " || return 1
    printf '%s\n' "$pid"
}

# Runs "$@" detached (own session, no stdin, output to a file) so it survives
# the calling shell; the pid written is the JVM's own since bash execs it.
spawn() { # name outfile cmd...
    local name="$1" out="$2"
    shift 2
    # A stale pid file would be mistaken for the new process's.
    rm -f "$(pid_file "$name")"
    # shellcheck disable=SC2016 # $$ and $0 belong to the child shell
    setsid bash -c 'echo $$ >"$0"; exec "$@"' "$(pid_file "$name")" "$@" \
        </dev/null >>"$out" 2>&1 &
    # The pid file is written by the child: give it a moment to appear.
    local i
    for i in $(seq 50); do
        [[ -s "$(pid_file "$name")" ]] && return 0
        sleep 0.1
    done
    die "$name: no pid file after spawn"
}

port_open() { # port
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

stop_service() { # name
    local name="$1" pid i
    if ! pid="$(running_pid "$name")"; then
        log "$name: not running"
        rm -f "$(pid_file "$name")"
        return 0
    fi
    log "$name: stopping pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < CM_STOP_TIMEOUT * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name: still alive after ${CM_STOP_TIMEOUT}s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    rm -f "$(pid_file "$name")"
    log "$name: stopped"
}

# LSB-style: exit 0 when running, 3 when stopped.
status_service() { # name port
    local pid
    if pid="$(running_pid "$1")"; then
        printf '%s: running (pid %s, 127.0.0.1:%s, state %s)\n' "$1" "$pid" "$2" "$CM_STATE_DIR"
        return 0
    fi
    printf '%s: stopped (state %s)\n' "$1" "$CM_STATE_DIR"
    return 3
}

# Polls `check` until it succeeds; fails early if the process died and prints
# the log tail either way so CI output shows why.
wait_service() { # name check-function logfiles...
    local name="$1" check="$2" start=$SECONDS
    shift 2
    while ! "$check"; do
        if ! running_pid "$name" >/dev/null; then
            log "$name: process is not running"
            tail_logs "$@"
            return 1
        fi
        if ((SECONDS - start >= CM_WAIT_TIMEOUT)); then
            log "$name: not ready after ${CM_WAIT_TIMEOUT}s"
            tail_logs "$@"
            return 1
        fi
        sleep 0.2
    done
    log "$name: ready after $((SECONDS - start))s"
}

tail_logs() { # files...
    local f
    for f in "$@"; do
        [[ -f "$f" ]] || continue
        log "--- last lines of $f ---"
        tail -n 40 "$f" >&2
    done
}

# Keep the previous run's log aside so `wait` only sees this run's lines.
rotate_log() { # file
    if [[ -f "$1" ]]; then mv -f "$1" "$1.prev"; fi
}

# The commands of a local server script, which defines cmd_start and a ready check.
server_main() { # name port logfile outfile command
    local name="$1" port="$2" log_file="$3" out_file="$4"
    case "${5:-}" in
        start) cmd_start ;;
        stop) stop_service "$name" ;;
        restart) stop_service "$name" && cmd_start ;;
        status) status_service "$name" "$port" ;;
        wait) wait_service "$name" ready "$log_file" "$out_file" ;;
        *)
            echo "usage: $0 start|stop|status|wait|restart" >&2
            exit 2
            ;;
    esac
}
