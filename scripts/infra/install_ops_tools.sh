#!/usr/bin/env bash
# Installs the tools the ops tests need besides Debian's prometheus/promtool (install.sh):
# a pinned kustomize, built from the Go module proxy into $CM_CACHE_DIR/bin (outside the clone).
# Idempotent: a second run only asks the cached binary for its version.
#
# First build: about 1.5 min on 2 cores (downloads included); later runs: well under a second.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# kustomize v5.7.1 (kustomize/api v0.20.1) builds with the Go on the machine; the
# tests render deploy/k8s/overlays/* with exactly this version.
KUSTOMIZE_VERSION=v5.7.1

BIN_DIR="$CM_CACHE_DIR/bin"
KUSTOMIZE="$BIN_DIR/kustomize"

install_kustomize() {
    if [[ -x "$KUSTOMIZE" ]] && [[ "$("$KUSTOMIZE" version 2>/dev/null)" == "$KUSTOMIZE_VERSION" ]]; then
        log "kustomize $KUSTOMIZE_VERSION: present"
        return
    fi
    command -v go >/dev/null || die "go is required to build kustomize (the Go toolchain)"
    log "kustomize $KUSTOMIZE_VERSION: building from the Go module proxy into $BIN_DIR"
    mkdir -p "$BIN_DIR"
    local start=$SECONDS
    GOBIN="$BIN_DIR" GOFLAGS=-buildvcs=false CGO_ENABLED=0 \
        go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
    [[ "$("$KUSTOMIZE" version)" == "$KUSTOMIZE_VERSION" ]] \
        || die "kustomize reports $("$KUSTOMIZE" version), expected $KUSTOMIZE_VERSION"
    log "kustomize $KUSTOMIZE_VERSION: built in $((SECONDS - start))s"
}

check_promtool() {
    if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
        die "prometheus/promtool missing: run scripts/infra/install.sh (Debian package prometheus)"
    fi
    log "prometheus: $(prometheus --version 2>&1 | head -n1)"
}

install_kustomize
check_promtool
