"""What the CPU offers int8 inference, read from /proc/cpuinfo.

Why it matters: XNNPACK's int8 kernels only beat float ones when the CPU has an int8 dot-product
instruction (x86 AVX-512 VNNI or AVX-VNNI; ARMv8.2 ``asimddp``, as on the Pi 5's Cortex-A76).
Without one the gain shrinks: on x86 with AVX2 only it is gone (measured: int8 SFace 8.2 ms vs
OpenCV's fp32 9.4 ms; the int8 BlazeFace slower than the float one); the Pi 4's Cortex-A72 keeps
some of it through 16-bit multiply-accumulate. Benchmarks print this line so figures from different machines are compared
knowingly, and the agent logs it at start so a slow device explains itself.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

# Feature flags naming an int8 dot-product instruction, best first.
INT8_DOT_PRODUCT_FLAGS = ("avx512_vnni", "avx_vnni", "asimddp")
SIMD_FLAGS = ("avx512f", "avx2", "avx", "asimd", "neon")
ARM_CORES = {"0xd03": "Cortex-A53", "0xd08": "Cortex-A72", "0xd0b": "Cortex-A76", "0xd05": "Cortex-A55"}


@dataclass(frozen=True)
class CpuProfile:
    machine: str
    model: str
    features: frozenset[str]
    cores: int

    @property
    def int8_dot_product(self) -> str | None:
        return next((flag for flag in INT8_DOT_PRODUCT_FLAGS if flag in self.features), None)

    @property
    def widest_simd(self) -> str | None:
        return next((flag for flag in SIMD_FLAGS if flag in self.features), None)

    def summary(self) -> str:
        simd = (self.widest_simd or "no SIMD flags").upper()
        dot = self.int8_dot_product
        int8 = f"int8 dot product: {dot.upper()}" if dot else "no int8 dot-product instruction (int8 gains little or nothing over float)"
        return f"{self.machine} {self.model}, {self.cores} cores, {simd}, {int8}"


def parse_cpuinfo(text: str, machine: str) -> CpuProfile:
    """Parses the first processor block of /proc/cpuinfo (x86 ``flags``/``model name``; ARM
    ``Features``/``CPU part``, plus the board ``Model`` line Raspberry Pi kernels add)."""
    fields: dict[str, str] = {}
    cores = 0
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key == "processor":
            cores += 1
        fields.setdefault(key, value)
    features = frozenset((fields.get("flags") or fields.get("Features") or "").split())
    model = fields.get("model name") or fields.get("Model") or ARM_CORES.get(fields.get("CPU part", ""), "") or "unknown CPU"
    if "Model" in fields and fields.get("CPU part") in ARM_CORES:
        model = f"{fields['Model']} ({ARM_CORES[fields['CPU part']]})"
    return CpuProfile(machine, model, features, max(cores, 1))


def read_cpu_profile(cpuinfo: Path = Path("/proc/cpuinfo")) -> CpuProfile:
    """This machine's profile; an unreadable cpuinfo (non-Linux) gives an empty feature set."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        text = ""
    return parse_cpuinfo(text, platform.machine())
