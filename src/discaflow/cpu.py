"""What the CPU can do, read without importing TensorFlow (bench machine records use it too)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

# CPU flags of bfloat16 arithmetic: x86 AVX512_BF16 and AMX-BF16 (Linux "flags"), Arm BF16 ("Features").
BFLOAT16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


def cpu_has_native_bfloat16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU has bfloat16 arithmetic instructions (from ``/proc/cpuinfo``; False where it
    cannot be read, e.g. macOS). Without them TensorFlow emulates bfloat16 and mixed_bfloat16 is far
    slower than float32 (the reference YOPO on an AVX2-only CPU: 0.3 against 5.3 subtomograms/s)."""
    if cpuinfo is None:
        cpuinfo = _proc_cpuinfo()
    flags = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return bool(flags & BFLOAT16_CPU_FLAGS)


@lru_cache(maxsize=1)
def _proc_cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def prefer_onednn() -> None:
    """Ask TensorFlow for its oneDNN CPU kernels (``TF_ENABLE_ONEDNN_OPTS=1``) unless the environment
    already says either way; takes effect only before TensorFlow is imported.

    Why: TensorFlow turns them on by default only on CPUs with AVX512_VNNI, AVX512_BF16, AVX_VNNI or AMX,
    and elsewhere its Conv3D gradients are several times slower (narrow YOPO training on an AVX2-only CPU:
    11.7 → 30.4 subtomograms/s). Deterministic runs turn them off (disca.mstep.configure_tensorflow)."""
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
