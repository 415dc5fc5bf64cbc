#!/bin/sh
# The rsn GPU check: runs the fixture checks, the organism's logits (webgpu vs wasm), the forward
# benchmark and PyTorch's peer numbers on this machine's GPU through WebGPU (Dawn over Vulkan).
#   ./rsn-gpu-check/run.sh > gpu-check.json      (one JSON object on stdout; progress on stderr)
# Exit 0: every check passed; 1: a check failed; 2: no usable WebGPU adapter.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
say() { printf '[run.sh] %s\n' "$*" >&2; }

export GPU_CHECK_ROOT="$HERE"

# glibc: dawn.node needs >= 2.34.
GLIBC=$(ldd --version 2>/dev/null | head -n 1 | sed 's/.* //')
export GPU_CHECK_GLIBC="${GLIBC:-unknown}"
say "glibc ${GPU_CHECK_GLIBC} (dawn.node needs >= 2.34)"

# The Vulkan loader: the system's if it has one, else the bundled copy.
LDCONFIG=$(command -v ldconfig 2>/dev/null || echo /sbin/ldconfig)
if [ "${GPU_CHECK_FORCE_BUNDLED_LOADER:-0}" != 1 ] && "$LDCONFIG" -p 2>/dev/null | grep -q 'libvulkan\.so\.1'; then
  export GPU_CHECK_VULKAN_LOADER="system: $("$LDCONFIG" -p | grep 'libvulkan\.so\.1' | head -n 1 | sed 's/.*=> //')"
elif [ -f "$HERE/vulkan/libvulkan.so.1" ]; then
  export LD_LIBRARY_PATH="$HERE/vulkan${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export GPU_CHECK_VULKAN_LOADER="bundled: $HERE/vulkan/libvulkan.so.1"
else
  export GPU_CHECK_VULKAN_LOADER="none"
fi
say "vulkan loader: $GPU_CHECK_VULKAN_LOADER"

# The Vulkan drivers (ICDs) the loader will see (NVIDIA: nvidia_icd.json).
ICDS=""
OVERRIDE="${VK_DRIVER_FILES:-${VK_ICD_FILENAMES:-}}"
export GPU_CHECK_ICD_OVERRIDE="$OVERRIDE"
[ -n "$OVERRIDE" ] && say "VK_DRIVER_FILES/VK_ICD_FILENAMES set: the loader reads only $OVERRIDE"
for f in $(printf '%s' "${VK_DRIVER_FILES:-${VK_ICD_FILENAMES:-}}" | tr ':' ' '); do [ -e "$f" ] && ICDS="$ICDS $f"; done
for d in /etc/vulkan/icd.d /usr/share/vulkan/icd.d /usr/local/share/vulkan/icd.d /usr/local/etc/vulkan/icd.d; do
  for f in "$d"/*.json; do [ -e "$f" ] && ICDS="$ICDS $f"; done
done
export GPU_CHECK_ICDS="$ICDS"
if [ -n "$ICDS" ]; then
  for f in $ICDS; do say "vulkan ICD: $f ($(grep -o '"library_path"[^,}]*' "$f" 2>/dev/null | head -n 1))"; done
else
  say "no Vulkan ICD json found (NVIDIA: /usr/share/vulkan/icd.d/nvidia_icd.json or /etc/vulkan/icd.d/; set VK_ICD_FILENAMES)"
fi
case "$ICDS" in *nvidia*) ;; *) say "warning: no NVIDIA ICD among them" ;; esac

exec "$HERE/node/bin/node" "$HERE/app/check.mjs" "$@"
