#!/usr/bin/env bash
# One entry point for set-up and every project job. The first run creates .venv and installs
# everything (CPU-only torch pinned by requirements/constraints.txt); later runs reuse it.
#
#   ./dev.sh demo    run the example performance suite on the CPU against examples/baseline.json
#                    (on a machine it has no results for: against this machine's own baseline,
#                    recorded on the first run), then one example paired against HEAD
#   ./dev.sh test    run the plugin's own tests (they also build the docs, warnings as errors)
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
        exec "$VENV/bin/python" -m pytest tests -p no:cacheprovider "$@" ;;
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
        sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
        [[ $job == help ]] || exit 2 ;;
esac
