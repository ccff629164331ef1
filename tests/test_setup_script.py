"""sqlwright.sh's llama-cpp-python build choice: flags for the CPU it runs on, wheels kept under a key of those
flags, and the portable build when the native one fails to build (with a stand-in for pip)."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "sqlwright.sh"
FUNCTIONS = ("native_cmake_args", "llama_build", "build_args", "llama_wheel_dir", "build_llama_wheel",
             "ensure_llama_wheel", "log")

pytestmark = pytest.mark.skipif(platform.machine() != "x86_64", reason="the flag table is x86-64's")

AVX2_ONLY = "flags\t\t: fpu sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma bmi2 avx2\n"
AVX512 = "flags\t\t: fpu sse sse2 avx f16c fma bmi2 avx2 avx512f avx512bw avx512_vnni avx512_bf16 amx_tile amx_int8\n"


def _run(body: str, tmp_path: Path, cpuinfo: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `body` in bash after loading the script's functions (not its main part)."""
    (tmp_path / "cpuinfo").write_text(cpuinfo)
    source = SCRIPT.read_text()
    functions = source[source.index("log() {"): source.index("ensure_python\ncmd=")]
    script = "set -euo pipefail\n" + functions + "\n" + body
    environ = {**os.environ, "SQLWRIGHT_CPUINFO": str(tmp_path / "cpuinfo"), "WHEELS": str(tmp_path / "wheels"),
               "VENV": str(tmp_path / "venv"), "LLAMA_VERSION": "9.9.9", **env}
    environ.pop("CMAKE_ARGS", None)
    environ.pop("SQLWRIGHT_LLAMA_BUILD", None)
    environ.update(env)
    return subprocess.run(["bash", "-c", script], env=environ, capture_output=True, text=True, check=False)


def test_native_flags_follow_the_cpu_and_never_turn_on_amx(tmp_path: Path) -> None:
    small = _run("native_cmake_args", tmp_path, AVX2_ONLY).stdout
    big = _run("native_cmake_args", tmp_path, AVX512).stdout
    assert "-DGGML_NATIVE=OFF" in small and "-DGGML_AVX2=ON" in small and "-DGGML_AVX512=OFF" in small
    assert "-DGGML_AVX512=ON" in big and "-DGGML_AVX512_VNNI=ON" in big and "-DGGML_AVX512_BF16=ON" in big
    assert "AMX" not in big  # CPUID may report AMX where the kernel or hypervisor does not enable it


def test_wheels_are_keyed_by_the_instructions_they_use(tmp_path: Path) -> None:
    body = 'llama_wheel_dir native; llama_wheel_dir portable'
    small = _run(body, tmp_path, AVX2_ONLY).stdout.split()
    big = _run(body, tmp_path, AVX512).stdout.split()
    assert small[0] != big[0]  # another CPU never gets this CPU's native wheel
    assert small[1] == big[1]  # the portable one is the same everywhere
    assert Path(small[0]).name.startswith("native-") and Path(small[1]).name.startswith("portable-")
    extra = _run(body, tmp_path, AVX512, CMAKE_ARGS="-DGGML_AMX_INT8=ON").stdout.split()
    assert extra[0] != big[0]  # the user's CMAKE_ARGS are part of the key
    bad = _run("build_args fast", tmp_path, AVX512)
    assert bad.returncode == 2 and "native or portable" in bad.stderr


FAKE_PIP = """#!/usr/bin/env bash
# Stands in for pip: "wheel" fails when CMAKE_ARGS asks for AVX-512, else writes an empty wheel.
[ "$1" = wheel ] || exit 0
while [ $# -gt 0 ]; do case "$1" in -w) out=$2; shift 2;; *) shift;; esac; done
case "$CMAKE_ARGS" in *AVX512=ON*) echo "cc: error: unsupported instruction" >&2; exit 1;; esac
touch "$out/llama_cpp_python-9.9.9-py3-none-linux_x86_64.whl"
"""


def _fake_venv(tmp_path: Path) -> None:
    pip = tmp_path / "venv" / "bin" / "pip"
    pip.parent.mkdir(parents=True)
    pip.write_text(FAKE_PIP)
    pip.chmod(0o755)


def test_a_native_build_that_fails_falls_back_to_the_portable_one(tmp_path: Path) -> None:
    _fake_venv(tmp_path)
    done = _run("ensure_llama_wheel", tmp_path, AVX512)
    assert done.returncode == 0, done.stderr
    wheel = Path(done.stdout.strip())
    assert wheel.parent.name.startswith("portable-") and wheel.is_file()
    assert "native build failed" in done.stderr
    native_dir = Path(_run("llama_wheel_dir native", tmp_path, AVX512).stdout.strip())
    assert not native_dir.exists() and not Path(f"{native_dir}.tmp").exists()  # nothing partial left
    # Where the native build works, it is the one used, and the next call reuses it without building.
    ok = _run("ensure_llama_wheel", tmp_path, AVX2_ONLY)
    assert Path(ok.stdout.strip()).parent.name.startswith("native-")
    again = _run("ensure_llama_wheel", tmp_path, AVX2_ONLY)
    assert again.stdout == ok.stdout and "building" not in again.stderr


def test_portable_build_can_be_chosen(tmp_path: Path) -> None:
    _fake_venv(tmp_path)
    done = _run("ensure_llama_wheel", tmp_path, AVX2_ONLY, SQLWRIGHT_LLAMA_BUILD="portable")
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).parent.name.startswith("portable-")
