#!/bin/sh
# Install torch's CPU build into the environment of PYTHON: from PyTorch's CPU wheel index first (plain PyPI's
# torch for Linux x86-64 is the CUDA build, which pulls ~19 nvidia packages, several GB); where that index cannot
# be reached (an offline mirror, a firewall), fall back at once to the plain spec from the configured index.
#   usage: tools/install-torch.sh PYTHON VERSION
#   env:   TORCH_CPU_INDEX (default https://download.pytorch.org/whl/cpu), TORCH_PIP_FLAGS (extra pip flags)
set -u
PY=$1
VERSION=$2
INDEX=${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}
FLAGS=${TORCH_PIP_FLAGS:-}
echo "installing torch $VERSION, CPU build (a 183 MiB download, about 750 MB installed) from $INDEX"
# shellcheck disable=SC2086  # FLAGS is a list of flags
if "$PY" -m pip install -q --timeout 10 --retries 0 --index-url "$INDEX" $FLAGS "torch==$VERSION"; then
    exit 0
fi
echo "$INDEX could not be reached (or has no torch $VERSION for this platform): installing torch==$VERSION from" \
     "the default index instead; on Linux x86-64, PyPI's torch is the CUDA build (about 3 GB with its nvidia packages)"
# shellcheck disable=SC2086
exec "$PY" -m pip install -q $FLAGS "torch==$VERSION"
