"""What the CPU can do, read without importing TensorFlow (bench machine records use it too)."""

from __future__ import annotations

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
