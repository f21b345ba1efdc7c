#!/usr/bin/env bash
# One entry point for set-up and every project job. The first run creates .venv and installs
# everything (CPU-only torch pinned by requirements/constraints.txt); later runs reuse it.
#
#   ./dev.sh demo    run the example performance suite on the CPU against examples/baseline.json
#                    (on a machine it has no results for: against this machine's own baseline,
#                    recorded on the first run), then one example paired against HEAD
#   ./dev.sh test    run the plugin's own tests (they also build the docs, warnings as errors);
#                    as root with apt-get it first installs what some tests need (sshd,
#                    chromium, PostgreSQL); --cov adds the package's coverage, every process
#   ./dev.sh docs    build the documentation (docs/*.md) into HTML and say where it is
#   ./dev.sh bench   run the engine figures and the gate simulation in benchmarks/ (minutes)
#   ./dev.sh lint    ruff + mypy
#   ./dev.sh record  re-record examples/baseline.json on this machine
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.installed

setup() {
    local want
    want=$(cat requirements/dev.txt requirements/constraints.txt setup.cfg | sha256sum | cut -c1-16)
    if [[ -f $STAMP && $(cat "$STAMP") == "$want" ]]; then
        return
    fi
    echo "setting up $VENV (first run only; a few minutes)..." >&2
    [[ -x $VENV/bin/python ]] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -c requirements/constraints.txt -r requirements/dev.txt
    "$VENV/bin/python" -m pip install --quiet --no-deps -e .
    echo "$want" > "$STAMP"
}

# System packages some tests need: tests/test_xdist_ssh.py (sshd), tests/test_html.py's browser
# test (chromium), the history tests on a real PostgreSQL (its server binaries). Installed when
# this runs as root on a machine with apt-get; elsewhere, or offline, those tests skip and the
# summary (-rs) names why.
test_packages() {
    local missing=()
    [[ -x /usr/sbin/sshd ]] || missing+=(openssh-server openssh-client)
    command -v chromium >/dev/null || missing+=(chromium)
    compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null || missing+=(postgresql)
    (( ${#missing[@]} )) || return 0
    if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null; then
        echo "dev.sh test: ${missing[*]} not installed (needs root and apt-get): the tests" \
            "that need them will skip" >&2
        return 0
    fi
    echo "dev.sh test: installing ${missing[*]} with apt-get..." >&2
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        -o DPkg::Lock::Timeout=120 "${missing[@]}"; } >/dev/null 2>&1 \
        || echo "dev.sh test: could not install ${missing[*]}: the tests that need them" \
            "will skip" >&2
}

job=${1:-help}
shift || true
case "$job" in
    demo)
        setup
        PYTHON="$VENV/bin/python" exec examples/demo.sh "$@" ;;
    record)
        setup
        exec "$VENV/bin/python" -m pytest examples -p no:cacheprovider \
            --neuronperf-baseline=examples/baseline.json --neuronperf-save-baseline "$@" ;;
    test)
        setup
        test_packages
        # -rfEs: the summary names every failure, error and skip with its reason; --cov (the
        # package, as pyproject.toml's [tool.coverage] says: pytest's subprocesses and the model
        # and compile processes too) ends with the coverage table and its TOTAL line
        exec "$VENV/bin/python" -m pytest tests -p no:cacheprovider -rfEs "$@" ;;
    docs)
        setup
        "$VENV/bin/python" -m sphinx -W --keep-going -n -q -b html docs docs/_build/html "$@"
        echo "docs: open $PWD/docs/_build/html/index.html" ;;
    bench)
        setup
        # arguments go to the engine figures (e.g. --repeats 5); the simulation runs as it is
        "$VENV/bin/python" benchmarks/engine_figures.py "$@"
        "$VENV/bin/python" benchmarks/gate_study.py ;;
    lint)
        setup
        "$VENV/bin/ruff" check pytest_neuronperf tests examples benchmarks docs
        "$VENV/bin/mypy" ;;
    *)
        sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
        [[ $job == help ]] || exit 2 ;;
esac
