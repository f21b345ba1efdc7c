#!/usr/bin/env bash
# The example suite as a newcomer's demo (`./dev.sh demo` runs it once its set-up is done;
# every argument goes to each pytest run, e.g. -k or --neuronperf-duration=1).
#
# 1. Gate every example against examples/baseline.json. That file was recorded on the CI
#    machine class; on a machine it has no results for, every configuration would be NEW, so
#    the demo says so, records this machine's own baseline first (once, beside the examples)
#    and gates against that.
# 2. Gate one example of ~10 ms calls (one configuration, no absolute budget: only the paired
#    comparison decides) in paired mode against the checkout's own HEAD: both sides measured
#    interleaved on the same cores, no baseline needed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
say() { echo "demo: $*" >&2; }

status=0
baseline=examples/baseline.json
if ! found=$("$PYTHON" -m pytest_neuronperf machine --baseline "$baseline"); then
    sed 's/^/demo: /' <<< "$found" >&2
    baseline=examples/.neuronperf-cache/demo-baseline.json
    if "$PYTHON" -m pytest_neuronperf machine --baseline "$baseline" > /dev/null; then
        say "so it gates against this machine's own baseline, $baseline, recorded by an" \
            "earlier demo (delete it to record again)"
    else
        say "so it records this machine's own baseline first, in $baseline (once: every" \
            "configuration is measured twice, a few minutes), then gates against it"
        mkdir -p "$(dirname "$baseline")"
        "$PYTHON" -m pytest examples -p no:cacheprovider -q \
            --neuronperf-baseline="$baseline" --neuronperf-save-baseline "$@" || status=$?
        say "recorded; now the gate"
    fi
fi
"$PYTHON" -m pytest examples -p no:cacheprovider --neuronperf-baseline="$baseline" "$@" \
    || status=$?

# paired: unchanged code passes at the default paired tolerances; local edits to the model
# are what it measures
if git rev-parse --verify --quiet HEAD > /dev/null 2>&1; then
    say "paired mode: the TinyResNet example with pre- and post-processing, working tree" \
        "against HEAD"
    "$PYTHON" -m pytest examples/test_serving_pipeline.py -p no:cacheprovider \
        -k pre_and_post_processing --neuronperf-against=HEAD "$@" || status=$?
else
    say "not a git checkout: the paired part is skipped"
fi
exit $status
