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
    slower than float32: on an AVX2-only AMD EPYC (2026-12-02) the reference YOPO inferred 0.3
    subtomograms/s in mixed_bfloat16 against 5.3/s in float32, while on the AVX-512 EPYC that the
    2026-11 benchmarks ran on (native bfloat16, judging by its speed) bfloat16 was 1.5× faster."""
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

    Why: TensorFlow turns them on by default only on CPUs with AVX512_VNNI, AVX512_BF16, AVX_VNNI or AMX.
    Measured on an AVX2-only AMD EPYC, 2 idle cores (2026-12-03, batch 64, float32): the narrow YOPO of
    the Table 1 cpu preset trained 11.7 → 30.4 subtomograms/s and inferred 44.5 → 99.3/s, the reference
    YOPO 2.2 → 3.2/s and 8.1 → 10.5/s; mostly the Conv3D gradients (the narrow network's input and filter
    gradients 3.2 + 3.3 s → 1.1 + 1.3 s per batch, beside a DISCA run). A Table 1 cpu-preset DISCA
    iteration: 1.5× faster (bench/README.md). Deterministic runs turn them off (disca.mstep.configure_tensorflow)."""
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
