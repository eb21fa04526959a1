#!/usr/bin/env bash
# Install this repository's cnnreg library into the rule environment. Snakemake runs this from
# its working directory, which is the repository root when run as the README shows.
set -euo pipefail
python -m pip install --quiet --no-deps .
