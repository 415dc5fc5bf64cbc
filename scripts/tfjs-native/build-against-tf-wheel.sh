#!/usr/bin/env bash
# Builds the native addon of @tensorflow/tfjs-node(-gpu) 4.22 (tfjs_binding.node) against the
# TensorFlow C API shipped in a current TensorFlow *pip wheel* (libtensorflow_cc.so.2 +
# libtensorflow_framework.so.2 + tensorflow/include/tensorflow/c/*.h), instead of the
# libtensorflow 2.9.1 tarball (CUDA 11.2 / cuDNN 8.1, no Hopper code) that the package's own
# install script downloads. For the GPU package the CUDA libraries come from the
# nvidia-*-cu12 wheels that `tensorflow[and-cuda]` depends on.
#
# See docs/gpu-cuda.md for when to use this, and what has / has not been tested.
#
# Usage: scripts/tfjs-native/build-against-tf-wheel.sh [options]
#   TensorFlow source (one of):
#     --wheel FILE            a tensorflow-*.whl (tensorflow, or tensorflow_cpu for a CPU build)
#     --tf-version X          pip download tensorflow==X (needs PyPI access)
#     --site-packages DIR     a site-packages dir where `pip install 'tensorflow[and-cuda]'` was run
#                             (uses DIR/tensorflow and DIR/nvidia/*/lib as they are)
#   --package tfjs-node|tfjs-node-gpu      which package to build (default tfjs-node-gpu)
#   --package-dir DIR       the package to build in (default: <repo>/node_modules/@tensorflow/<package>)
#   --npm-pack              if --package-dir does not exist, fetch the package there with `npm pack`
#   --prefix DIR            where the wheel is unpacked (default ~/.cache/rsn/tfjs-native/<wheel name>)
#   --cuda-site DIR         site-packages dir holding nvidia/*/lib (GPU; default: pip-install the
#                           wheel's `and-cuda` requirements into <prefix>/site with --no-deps)
#   --jobs N                parallel compile jobs (default 1)
#   --no-verify             skip the node verification at the end
#   -h | --help
set -euo pipefail

say() { printf '[tfjs-native] %s\n' "$*" >&2; }
die() { printf '[tfjs-native] ERROR: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)

WHEEL=''
TF_VERSION=''
SITE=''
PACKAGE='tfjs-node-gpu'
PKG_DIR=''
NPM_PACK=0
PREFIX=''
CUDA_SITE=''
JOBS=1
VERIFY=1
TFJS_VERSION='4.22.0'

while [[ $# -gt 0 ]]; do
  case "$1" in
    --wheel) WHEEL=${2:?--wheel needs a file}; shift 2 ;;
    --tf-version) TF_VERSION=${2:?--tf-version needs a version}; shift 2 ;;
    --site-packages) SITE=${2:?--site-packages needs a directory}; shift 2 ;;
    --package) PACKAGE=${2:?--package needs tfjs-node or tfjs-node-gpu}; shift 2 ;;
    --package-dir) PKG_DIR=${2:?--package-dir needs a directory}; shift 2 ;;
    --npm-pack) NPM_PACK=1; shift ;;
    --prefix) PREFIX=${2:?--prefix needs a directory}; shift 2 ;;
    --cuda-site) CUDA_SITE=${2:?--cuda-site needs a directory}; shift 2 ;;
    --jobs) JOBS=${2:?--jobs needs a number}; shift 2 ;;
    --no-verify) VERIFY=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

case "$PACKAGE" in
  tfjs-node|@tensorflow/tfjs-node) PACKAGE=tfjs-node; GPU=0 ;;
  tfjs-node-gpu|@tensorflow/tfjs-node-gpu) PACKAGE=tfjs-node-gpu; GPU=1 ;;
  *) die "--package must be tfjs-node or tfjs-node-gpu, not '$PACKAGE'" ;;
esac
sources=0
[[ -n $WHEEL ]] && sources=$((sources + 1))
[[ -n $TF_VERSION ]] && sources=$((sources + 1))
[[ -n $SITE ]] && sources=$((sources + 1))
[[ $sources -eq 1 ]] || die "give exactly one of --wheel FILE, --tf-version X, --site-packages DIR (see --help)"
[[ $(uname -s) == Linux ]] || die "only Linux is supported (the wheel layout and binding.gyp's -ltensorflow are Linux-specific)"
[[ $JOBS =~ ^[0-9]+$ && $JOBS -ge 1 ]] || die "--jobs must be a positive integer"

for tool in node npm g++ make python3; do
  command -v "$tool" >/dev/null || die "'$tool' is not on PATH (needed to build a native Node addon)"
done
PYTHON=python3

# ---------------------------------------------------------------- 1. TensorFlow (headers + libs)
abspath() { (cd "$(dirname "$1")" && printf '%s/%s\n' "$(pwd)" "$(basename "$1")"); }

if [[ -n $TF_VERSION ]]; then
  dl="${PREFIX:-$HOME/.cache/rsn/tfjs-native}/download"
  mkdir -p "$dl"
  # The `tensorflow` wheel on Linux x86-64 is the CUDA-enabled one; tensorflow-cpu is CPU-only.
  want=tensorflow
  [[ $GPU -eq 0 ]] && want=tensorflow-cpu
  say "pip download --no-deps $want==$TF_VERSION → $dl"
  "$PYTHON" -m pip download --no-deps --only-binary=:all: -d "$dl" "$want==$TF_VERSION" >&2 ||
    die "pip download $want==$TF_VERSION failed (no PyPI access? then pass --wheel FILE)"
  WHEEL=$(ls -t "$dl"/"${want//-/_}"-"$TF_VERSION"-*.whl 2>/dev/null | head -n1)
  [[ -n $WHEEL ]] || die "pip download succeeded but no ${want//-/_}-$TF_VERSION-*.whl is in $dl"
fi

if [[ -n $WHEEL ]]; then
  [[ -f $WHEEL ]] || die "wheel not found: $WHEEL"
  WHEEL=$(abspath "$WHEEL")
  wname=$(basename "$WHEEL" .whl)
  [[ $wname == tensorflow* ]] || die "$WHEEL does not look like a TensorFlow wheel"
  PREFIX=${PREFIX:-$HOME/.cache/rsn/tfjs-native/$wname}
  if [[ -f $PREFIX/.unpacked && $(cat "$PREFIX/.unpacked") == "$WHEEL" ]]; then
    say "wheel already unpacked in $PREFIX"
  else
    say "unpacking the C API headers and libtensorflow*.so.2 of $(basename "$WHEEL") → $PREFIX"
    mkdir -p "$PREFIX"
    rm -rf "$PREFIX/tensorflow"
    # Only what the addon needs: ~1 GB of the wheel's libraries and headers, not the Python part.
    "$PYTHON" - "$WHEEL" "$PREFIX" <<'PY'
import sys, zipfile
whl, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    names = [n for n in z.namelist()
             if n.startswith('tensorflow/include/') or
             (n.startswith('tensorflow/libtensorflow') and '.so' in n) or
             (n.endswith('/METADATA') and '.dist-info/' in n)]
    for n in names:
        z.extract(n, dest)
print(f'{len(names)} files', file=sys.stderr)
PY
    printf '%s\n' "$WHEEL" > "$PREFIX/.unpacked"
  fi
  TF_DIR=$PREFIX/tensorflow
  METADATA=$(ls "$PREFIX"/*.dist-info/METADATA 2>/dev/null | head -n1 || true)
  case "$wname" in tensorflow_cpu*|tensorflow-cpu*)
    [[ $GPU -eq 1 ]] && say "WARNING: $(basename "$WHEEL") is a CPU-only build: tfjs-node-gpu built against it runs on the CPU" ;;
  esac
else
  [[ -d $SITE/tensorflow ]] || die "$SITE/tensorflow does not exist: --site-packages must be the dir where pip installed tensorflow"
  SITE=$(cd "$SITE" && pwd)
  TF_DIR=$SITE/tensorflow
  METADATA=$(ls "$SITE"/tensorflow-*.dist-info/METADATA "$SITE"/tensorflow_cpu-*.dist-info/METADATA 2>/dev/null | head -n1 || true)
  [[ -z $CUDA_SITE && -d $SITE/nvidia ]] && CUDA_SITE=$SITE
fi

TF_CC=$TF_DIR/libtensorflow_cc.so.2
TF_FW=$TF_DIR/libtensorflow_framework.so.2
TF_INC=$TF_DIR/include
[[ -f $TF_CC ]] || die "$TF_CC is missing (this wheel does not ship the C/C++ library)"
[[ -f $TF_FW ]] || die "$TF_FW is missing"
[[ -f $TF_INC/tensorflow/c/c_api.h && -f $TF_INC/tensorflow/c/eager/c_api.h ]] ||
  die "the C API headers are not under $TF_INC/tensorflow/c/ (c_api.h, eager/c_api.h)"
TF_WHEEL_VERSION=$(sed -n 's/^Version: //p' "${METADATA:-/dev/null}" 2>/dev/null | head -n1 || true)
say "TensorFlow ${TF_WHEEL_VERSION:-(version unknown)}: $TF_DIR"

# ---------------------------------------------------------------- 2. CUDA libraries (GPU only)
NVIDIA_LIBS=()
if [[ $GPU -eq 1 ]]; then
  if [[ -z $CUDA_SITE ]]; then
    CUDA_SITE=$PREFIX/site
    if ! compgen -G "$CUDA_SITE/nvidia/*/lib" >/dev/null; then
      [[ -n ${METADATA:-} ]] || die "cannot read the wheel's METADATA to find its and-cuda requirements; pass --cuda-site DIR"
      mapfile -t cuda_reqs < <(sed -n 's/^Requires-Dist: \(nvidia-[^;]*\);.*extra == "and-cuda".*/\1/p' "$METADATA" | tr -d ' ()')
      [[ ${#cuda_reqs[@]} -gt 0 ]] ||
        die "the wheel lists no nvidia-* requirements for the and-cuda extra (a CPU-only wheel?); pass --cuda-site DIR or use the 'tensorflow' wheel"
      say "pip install --no-deps --target $CUDA_SITE ${cuda_reqs[*]}"
      "$PYTHON" -m pip install --no-deps --only-binary=:all: --target "$CUDA_SITE" "${cuda_reqs[@]}" >&2 ||
        die "installing the nvidia-*-cu12 wheels failed (no PyPI access? install 'tensorflow[and-cuda]' elsewhere and pass --cuda-site <its site-packages>)"
    fi
  fi
  for d in "$CUDA_SITE"/nvidia/*/lib; do
    [[ -d $d ]] && NVIDIA_LIBS+=("$d")
  done
  [[ ${#NVIDIA_LIBS[@]} -gt 0 ]] || die "no nvidia/*/lib directories under $CUDA_SITE"
  compgen -G "$CUDA_SITE/nvidia/cudnn/lib/libcudnn.so*" >/dev/null || say "WARNING: no libcudnn under $CUDA_SITE/nvidia/cudnn/lib"
  say "CUDA libraries: ${#NVIDIA_LIBS[@]} nvidia/*/lib dirs under $CUDA_SITE"
fi

# ---------------------------------------------------------------- 3. the package
PKG_DIR=${PKG_DIR:-$REPO_ROOT/node_modules/@tensorflow/$PACKAGE}
if [[ ! -f $PKG_DIR/binding.gyp ]]; then
  if [[ $NPM_PACK -eq 1 ]]; then
    say "fetching @tensorflow/$PACKAGE@$TFJS_VERSION into $PKG_DIR (npm pack)"
    tmp=$(mktemp -d)
    (cd "$tmp" && npm pack --silent "@tensorflow/$PACKAGE@$TFJS_VERSION" >/dev/null) || die "npm pack @tensorflow/$PACKAGE@$TFJS_VERSION failed"
    mkdir -p "$PKG_DIR"
    tar xzf "$tmp"/*.tgz -C "$PKG_DIR" --strip-components=1
    rm -rf "$tmp"
    say "note: its runtime dependencies are not installed; see docs/gpu-cuda.md for loading it from there"
  else
    die "$PKG_DIR/binding.gyp not found. It is an optional dependency of this project: run
  'npm install --include=optional' (its install script need not run), or pass --package-dir DIR [--npm-pack]"
  fi
fi
PKG_DIR=$(cd "$PKG_DIR" && pwd)
pkg_version=$(node -p "require('$PKG_DIR/package.json').version")
pkg_name=$(node -p "require('$PKG_DIR/package.json').name")
[[ $pkg_name == "@tensorflow/$PACKAGE" ]] || die "$PKG_DIR holds $pkg_name, not @tensorflow/$PACKAGE"
[[ $pkg_version == 4.* ]] || say "WARNING: tested with $TFJS_VERSION; $PKG_DIR is $pkg_version"
say "package: $pkg_name@$pkg_version in $PKG_DIR"

# Every TF_*/TFE_* function the binding calls must be exported by the two libraries (the
# TF_TString_* helpers are inline functions from the headers).
if command -v nm >/dev/null; then
  mapfile -t needed < <(grep -ohE '\bTFE?_[A-Za-z0-9_]+[[:space:]]*\(' "$PKG_DIR"/binding/*.cc "$PKG_DIR"/binding/*.h |
    sed 's/[[:space:]]*($//' | grep -vE '^(TF_AutoStatus|TF_AutoTensor|TFE_AutoOp|TF_TString_[A-Za-z]+)$' | sort -u)
  exported=$( { nm -D --defined-only "$TF_CC"; nm -D --defined-only "$TF_FW"; } | awk '{sub(/@.*/, "", $3); print $3}' | grep -E '^TFE?_' | sort -u)
  missing=$(comm -23 <(printf '%s\n' "${needed[@]}") <(printf '%s\n' "$exported"))
  [[ -z $missing ]] || die "the binding calls C API functions these libraries do not export: $(echo $missing)"
  say "C API check: all ${#needed[@]} TF_*/TFE_* functions the binding calls are exported"
else
  say "WARNING: nm (binutils) not found; skipping the C API symbol check"
fi

# ---------------------------------------------------------------- 4. deps/ as binding.gyp expects
# binding.gyp: include_dirs <pkg>/deps/include; links -ltensorflow -ltensorflow_framework from
# <pkg>/deps/lib with rpath $ORIGIN/../../deps/lib (the addon lands in <pkg>/lib/napi-vN/).
# The wheel's C API library is libtensorflow_cc.so.2 (SONAME libtensorflow_cc.so.2), so the
# addon records that name; both the link-time names and the SONAMEs live in deps/lib.
DEPS=$PKG_DIR/deps
if [[ -e $DEPS && ! -f $DEPS/.from-tf-wheel ]]; then
  aside=$PKG_DIR/deps.orig-$(date +%Y%m%d%H%M%S)
  say "moving the existing $DEPS aside to $aside"
  mv "$DEPS" "$aside"
fi
rm -rf "$DEPS"
mkdir -p "$DEPS/lib"
ln -s "$TF_INC" "$DEPS/include"
ln -s "$TF_CC" "$DEPS/lib/libtensorflow_cc.so.2"
ln -s "$TF_FW" "$DEPS/lib/libtensorflow_framework.so.2"
ln -s libtensorflow_cc.so.2 "$DEPS/lib/libtensorflow.so"
ln -s libtensorflow_framework.so.2 "$DEPS/lib/libtensorflow_framework.so"
{
  echo "built by scripts/tfjs-native/build-against-tf-wheel.sh on $(date -u +%FT%TZ)"
  echo "tensorflow=${TF_WHEEL_VERSION:-unknown}"
  echo "tf_dir=$TF_DIR"
  echo "wheel=${WHEEL:-}"
} > "$DEPS/.from-tf-wheel"

# ---------------------------------------------------------------- 5. node-gyp rebuild
NODE_GYP=''
if command -v node-gyp >/dev/null; then
  NODE_GYP=$(command -v node-gyp)
else
  npm_cli=$(readlink -f "$(command -v npm)")
  for cand in "$(dirname "$npm_cli")/../node_modules/node-gyp/bin/node-gyp.js" \
              "$(dirname "$npm_cli")/../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js"; do
    [[ -f $cand ]] && { NODE_GYP=$cand; break; }
  done
fi
[[ -n $NODE_GYP ]] || die "node-gyp not found (npm install -g node-gyp)"

# The addon goes where node-pre-gyp's find() looks: binary.module_path with the highest N-API
# version that both the package and this Node support (lib/napi-v8 for 4.22 on Node >= 20).
read -r MODULE_NAME NAPI_VERSION MODULE_PATH < <(node -e '
  const p = require(process.argv[1] + "/package.json").binary;
  const node = Number(process.versions.napi);
  const v = Math.max(...p.napi_versions.filter((x) => x <= node));
  console.log(p.module_name, v, p.module_path.replace("{napi_build_version}", v));
' "$PKG_DIR")
[[ $NAPI_VERSION =~ ^[0-9]+$ ]] || die "no N-API version of the package is supported by this Node ($(node -p process.versions.napi))"

gyp_args=(rebuild --jobs "$JOBS" "--module_name=$MODULE_NAME" "--module_path=$MODULE_PATH" "--napi_build_version=$NAPI_VERSION")
nodedir=${npm_config_nodedir:-$(npm config get nodedir 2>/dev/null || true)}
if [[ -n $nodedir && $nodedir != undefined && $nodedir != null ]]; then gyp_args+=("--nodedir=$nodedir"); fi
say "node-gyp ${gyp_args[*]}  (in $PKG_DIR)"
(cd "$PKG_DIR" && node "$NODE_GYP" "${gyp_args[@]}" >&2) || die "node-gyp rebuild failed (see the compiler output above)"

ADDON=$PKG_DIR/${MODULE_PATH#./}/$MODULE_NAME.node
[[ -f $ADDON ]] || { mkdir -p "$(dirname "$ADDON")"; cp "$PKG_DIR/build/Release/$MODULE_NAME.node" "$ADDON"; }
say "built $ADDON"

# ---------------------------------------------------------------- 6. environment
LDPATH=''
if [[ $GPU -eq 1 ]]; then
  LDPATH=$(IFS=:; echo "${NVIDIA_LIBS[*]}"):$TF_DIR
fi
{
  echo "# source this before running node with $pkg_name built against TensorFlow ${TF_WHEEL_VERSION:-?}"
  if [[ -n $LDPATH ]]; then echo "export LD_LIBRARY_PATH=\"$LDPATH\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}\""; fi
  echo "export TF_CPP_MIN_LOG_LEVEL=\"\${TF_CPP_MIN_LOG_LEVEL:-1}\""
} > "$DEPS/env.sh"

if ldd_out=$(LD_LIBRARY_PATH="$LDPATH${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ldd "$ADDON" 2>&1) && grep -q 'not found' <<<"$ldd_out"; then
  grep 'not found' <<<"$ldd_out" >&2
  die "the addon has unresolved libraries (above)"
fi

# ---------------------------------------------------------------- 7. verification
if [[ $VERIFY -eq 1 ]]; then
  say "verifying: require('$PKG_DIR'), matMul, backend, TF version"
  # Runs from the package dir so its own dependencies (@tensorflow/tfjs, @mapbox/node-pre-gyp,
  # google-protobuf) resolve as they would for the project.
  if ! (cd "$PKG_DIR" && LD_LIBRARY_PATH="$LDPATH${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-1} node -e '
    const tf = require(process.argv[1]);
    const a = tf.tensor2d([[1, 2], [3, 4]]), b = tf.tensor2d([[5, 6], [7, 8]]);
    const got = Array.from(tf.matMul(a, b).dataSync());
    const want = [19, 22, 43, 50];
    const be = tf.backend();
    console.log(`backend: ${tf.getBackend()}`);
    console.log(`TF_Version: ${be.binding.TF_Version}`);
    console.log(`isUsingGpuDevice: ${be.isUsingGpuDevice}`);
    console.log(`matMul: ${JSON.stringify(got)} (expected ${JSON.stringify(want)})`);
    if (tf.getBackend() !== "tensorflow") throw new Error("backend is not tensorflow");
    if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error("matMul gave wrong values");
  ' "$PKG_DIR"); then
    die "verification failed (if it could not find @tensorflow/tfjs or @mapbox/node-pre-gyp, the package's dependencies are not installed next to it: see docs/gpu-cuda.md)"
  fi
  if [[ $GPU -eq 1 ]]; then
    say "GPU package: isUsingGpuDevice must be true on a machine with an NVIDIA GPU (TF's log lists the GPU device)"
  fi
fi

say "done."
if [[ -n $LDPATH ]]; then
  say "before running node, set (also written to $DEPS/env.sh):"
  printf 'export LD_LIBRARY_PATH="%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"\n' "$LDPATH"
else
  say "no LD_LIBRARY_PATH needed: the addon finds libtensorflow through its rpath ($DEPS/lib → $TF_DIR)"
fi
say "do not run 'npm rebuild' / the package's install script afterwards: it would fetch libtensorflow 2.9.1 again."
