"""The CPU profile names the int8 dot-product instruction when there is one, on x86 and on Pis."""

from __future__ import annotations

from pathlib import Path

from edge_agent.vision.cpu_profile import parse_cpuinfo, read_cpu_profile

PI5 = """processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41
CPU part\t: 0xd0b

processor\t: 1
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU part\t: 0xd0b

Revision\t: d04170
Model\t\t: Raspberry Pi 5 Model B Rev 1.0
"""

PI4 = """processor\t: 0
Features\t: fp asimd evtstrm crc32 cpuid
CPU part\t: 0xd08
Model\t\t: Raspberry Pi 4 Model B Rev 1.4
"""

X86_VNNI = "processor : 0\nmodel name : Intel(R) Xeon(R) Platinum 8375C\nflags : fpu sse2 avx avx2 fma avx512f avx512bw avx512_vnni\n"
X86_AVX2 = "processor : 0\nmodel name : AMD EPYC\nflags : fpu sse2 avx avx2 fma\nprocessor : 1\nmodel name : AMD EPYC\nflags : fpu sse2 avx avx2 fma\n"


def test_raspberry_pi_5_has_the_arm_dot_product():
    profile = parse_cpuinfo(PI5, "aarch64")
    assert profile.int8_dot_product == "asimddp"
    assert profile.model == "Raspberry Pi 5 Model B Rev 1.0 (Cortex-A76)"
    assert profile.cores == 2
    assert "ASIMDDP" in profile.summary()


def test_raspberry_pi_4_has_none():
    profile = parse_cpuinfo(PI4, "aarch64")
    assert profile.int8_dot_product is None
    assert profile.widest_simd == "asimd"
    assert "Cortex-A72" in profile.model
    assert "gains little" in profile.summary()


def test_x86_with_and_without_vnni():
    assert parse_cpuinfo(X86_VNNI, "x86_64").int8_dot_product == "avx512_vnni"
    assert parse_cpuinfo(X86_VNNI, "x86_64").widest_simd == "avx512f"
    avx2 = parse_cpuinfo(X86_AVX2, "x86_64")
    assert (avx2.int8_dot_product, avx2.widest_simd, avx2.cores) == (None, "avx2", 2)


def test_this_machine_and_an_unreadable_cpuinfo(tmp_path):
    here = read_cpu_profile()
    if Path("/proc/cpuinfo").exists():
        assert here.features and here.model != "unknown CPU"
    absent = read_cpu_profile(tmp_path / "absent")
    assert absent.features == frozenset() and absent.int8_dot_product is None and absent.cores == 1
