#!/usr/bin/env bash
# Build the Ansible collection nspawn_fast.nspawn from this checkout: collection/ (its metadata),
# LICENSE and the package's plugin and module files (ansible_nspawn_fast/plugins/*/: connection,
# strategy, inventory, modules), copied unchanged to the collection's plugins/*/.
#   scripts/build-collection.sh [--out DIR]    writes DIR/nspawn_fast-nspawn-VERSION.tar.gz (default dist/)
# Uses .venv (scripts/setup.sh) when it is there, else python3 with ansible-core installed.
set -euo pipefail
cd "$(dirname "$0")/.."
python=python3
[ ! -x .venv/bin/python ] || python=.venv/bin/python
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" exec "$python" -m nspawn_fast_dev.collection build "$@"
