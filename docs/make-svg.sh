#!/usr/bin/env bash
# Regenerate the README's picture of `rnn-cli torch --layers 2 --bidirectional`: the human
# output as an 80-column colour terminal shows it, recorded by rich (--export-svg).
#
#   docs/make-svg.sh             writes docs/torch-layers2-bidirectional.svg
#   docs/make-svg.sh OUT.svg     writes OUT.svg instead (the tests use this)
#   PYTHON=.venv/bin/python docs/make-svg.sh
#
# Colour is forced (TTY_COMPATIBLE=1, truecolor) so the SVG carries the heatmap even when this
# runs in CI or through a pipe; NO_COLOR and FORCE_COLOR are cleared for the same reason.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/docs/torch-layers2-bidirectional.svg}"
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac  # relative to where it was run

cd "$root"  # python -m rnn_cli runs this checkout's code
env -u NO_COLOR -u FORCE_COLOR COLUMNS=80 TTY_COMPATIBLE=1 COLORTERM=truecolor TERM=xterm-256color \
    "${PYTHON:-python3}" -m rnn_cli torch --layers 2 --bidirectional --export-svg "$out" >"$(mktemp)"  # only the SVG is wanted; no write to a system path
echo "wrote $out"
