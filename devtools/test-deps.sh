#!/usr/bin/env bash
# The system packages the test suite needs, checked before anything is built.
#
# As root with apt-get: installs what is missing (Debian's packages) and stops the servers
# their postinst scripts start, since the tests run their own on free ports; then makes
# Patroni's venv (pinned, from the Python package index) when it is not there.
# Otherwise: prints one line naming the command to run, and fails.
set -euo pipefail

# command to look for -> Debian package that provides it
declare -A need=(
    [mosquitto]=mosquitto                  # the broker of the agent, integration and fault tests
    [mosquitto_pub]=mosquitto-clients      # mosquitto.conf tests (and mosquitto_passwd, below)
    [mosquitto_passwd]=mosquitto
    [systemd-analyze]=systemd              # `systemd-analyze verify` of the units in deploy/
    [nginx]=nginx                          # the hub's TLS front (deploy/nginx.conf)
    [haproxy]=haproxy                      # the balancer of several hub hosts (deploy/haproxy.cfg)
    [chromium]=chromium                    # the console's browser tests, headless
    [initdb]=postgresql                    # the hub's second engine: tests run their own server
    [etcd]=etcd-server                     # Patroni's store in the cluster test (tests/faults)
)

# Where to look: the caller's PATH and the sbin directories a non-root PATH often lacks
# (nginx and mosquitto live there); Debian keeps initdb under /usr/lib/postgresql/VERSION/bin.
# Both can be overridden, which is how tests/deploy/test_test_deps.py pretends a package is absent.
search_path=${TEST_DEPS_PATH:-$PATH:/usr/sbin:/sbin}
pg_lib=${TEST_DEPS_PGLIB:-/usr/lib/postgresql}
# Patroni runs PostgreSQL as the postgres user in the cluster test, so it lives in a venv of
# the system's Python outside root's home, readable by everyone; its versions are pinned.
system_python=${TEST_DEPS_PYTHON:-/usr/bin/python3}
patroni_venv=${TEST_DEPS_PATRONI_VENV:-/opt/factory-edge/patroni}
patroni_pins=("patroni[etcd3]==4.1.5" "psycopg2-binary==2.9.13")

have() {
    if [ "$1" = initdb ]; then
        compgen -G "$pg_lib/*/bin/initdb" >/dev/null
    else
        PATH=$search_path command -v "$1" >/dev/null 2>&1
    fi
}

missing=()
for cmd in "${!need[@]}"; do
    have "$cmd" || missing+=("${need[$cmd]}")
done
need_patroni=false
if [ ! -x "$patroni_venv/bin/patroni" ]; then
    need_patroni=true
    # Debian's python3 makes venvs only with python3-venv (ensurepip) installed.
    "$system_python" -c 'import ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
fi
# One name per package, in a stable order.
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u | sed '/^$/d')

if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "just test needs system packages; run first: sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
    echo "==> installing the tests' system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
    # Their postinst scripts may start system servers on :1883, :80 and :5432; the tests start
    # their own on free ports and never use these.
    for unit in mosquitto nginx haproxy postgresql etcd; do
        systemctl stop "$unit" >/dev/null 2>&1 || true
    done
    for cluster in /etc/postgresql/*/*; do
        [ -d "$cluster" ] || continue
        pg_ctlcluster "$(basename "$(dirname "$cluster")")" "$(basename "$cluster")" stop \
            >/dev/null 2>&1 || true
    done
fi


if $need_patroni; then
    if [ "$(id -u)" != 0 ]; then
        echo "just test needs Patroni in $patroni_venv; run first: sudo bash devtools/test-deps.sh" >&2
        exit 1
    fi
    echo "==> installing Patroni into $patroni_venv"
    "$system_python" -m venv "$patroni_venv"
    "$patroni_venv/bin/pip" install -q "${patroni_pins[@]}"
    chmod -R a+rX "$patroni_venv"
fi
