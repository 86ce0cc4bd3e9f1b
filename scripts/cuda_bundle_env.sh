# scripts/cuda_bundle_env.sh: sourced by the GPU-machine scripts (cuda_check.sh, cuda_profile_decode.sh,
# tp_check.sh) to run binaries of a bundle made by scripts/cuda_bundle.sh:
#
#   use_cuda_bundle BUNDLE SRC
#
# puts the bundle's lib/ first on LD_LIBRARY_PATH, then the CUDA libraries the bundle leaves out (cuBLAS, the
# runtime, NCCL: from /usr/local/cuda or the nvidia pip packages beside PyTorch), and links the source folder the
# tests were compiled with (source_dir.txt, where they read their fixtures) to the checkout SRC when it is absent.
use_cuda_bundle() {
  local bundle=$1 src=$2 cuda_libs="" d
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
           $(python3 -c 'import nvidia, os; print(" ".join(os.path.join(p, s, "lib") for p in nvidia.__path__ for s in ("cublas", "cu13", "cuda_runtime", "nccl")))' 2>/dev/null); do
    [ -d "$d" ] && cuda_libs="$cuda_libs:$d"
  done
  export LD_LIBRARY_PATH="$bundle/lib$cuda_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  if [ -f "$bundle/source_dir.txt" ]; then
    local compiled_src
    compiled_src=$(cat "$bundle/source_dir.txt")
    if [ "$compiled_src" != "$src" ] && [ ! -e "$compiled_src" ]; then
      mkdir -p "$(dirname "$compiled_src")" && ln -s "$src" "$compiled_src"
    fi
  fi
}
