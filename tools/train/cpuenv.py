"""tools/train/cpuenv.py — CPU settings the factory needs before PyTorch loads (import first).

OpenBLAS picks its kernels from the CPU model it reads with CPUID when the library loads. In
virtual machines that report no known model it falls back to "Prescott" (SSE3) kernels:
on this project's 2-core AVX-512 VM, a 1024x1024 fp32 matmul ran at 69 GFLOP/s that way and
at 315 GFLOP/s with OPENBLAS_CORETYPE=SkylakeX (Haswell: 176). So unless the user set it,
name the core from the CPU's flags: SkylakeX with AVX-512 (F, VL, BW, DQ), Haswell with
AVX2 + FMA. OMP_WAIT_POLICY=PASSIVE keeps idle OpenMP threads from spinning, which matters
when builds and tests share the cores with a training run.
"""
import os


def _flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def openblas_core(flags):
    """The OPENBLAS_CORETYPE for a set of /proc/cpuinfo flags, or None."""
    if {"avx512f", "avx512vl", "avx512bw", "avx512dq"} <= flags:
        return "SkylakeX"
    if {"avx2", "fma"} <= flags:
        return "Haswell"
    return None


FLAGS = _flags()
if "OPENBLAS_CORETYPE" not in os.environ and openblas_core(FLAGS):
    os.environ["OPENBLAS_CORETYPE"] = openblas_core(FLAGS)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def has_bf16():
    """True where the CPU multiplies bf16 natively (AVX512_BF16 or AMX): bf16 autocast pays."""
    return "avx512_bf16" in FLAGS or "amx_bf16" in FLAGS
