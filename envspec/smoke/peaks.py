"""Dense fp16/bf16 tensor-core peaks of known GPUs, to say what share of the chip a run used.

Source: NVIDIA's datasheets, which quote tensor throughput *with sparsity*; the dense figure is
half of it. Values in TFLOP/s, fp16 or bf16 inputs with fp32 accumulation (what torch uses):
  H200 SXM 1979 sparse -> 989.5;  H200 NVL 1671 -> 835.5
  H100 SXM 1979 -> 989.5;  H100 NVL 1671 -> 835.5;  H100 PCIe 1513 -> 756.5
  A100 (SXM and PCIe) 624 -> 312;  L40S 733 -> 366.5;  L4 242 -> 121;  A10 250 -> 125
  RTX 4090 (fp32 accumulate) 330.3 -> 165.2;  RTX 3090 (fp32 accumulate) 142 -> 71;  T4 65 (dense, no sparsity)
  V100 SXM2 125 (dense).
envspec's domain notes quote "~790 TFLOP/s" for the H200: that is what an 8192^3 bf16 matmul
*achieves* on the lent H200/H100 machines (788-798 measured), not the datasheet peak (989.5).
The share reported is of the datasheet peak; ~80% of it is the practical ceiling for large GEMMs.
First match wins, so specific names come before general ones.
"""

from __future__ import annotations

from typing import Final

PEAK_TFLOPS_FP16: Final[tuple[tuple[tuple[str, ...], float], ...]] = (
    (("H200", "NVL"), 835.5),
    (("H200",), 989.5),
    (("H100", "NVL"), 835.5),
    (("H100", "PCIE"), 756.5),
    (("H100",), 989.5),
    (("A100",), 312.0),
    (("L40S",), 366.5),
    (("L4",), 121.0),
    (("A10",), 125.0),
    (("4090",), 165.2),
    (("3090",), 71.0),
    (("T4",), 65.0),
    (("V100",), 125.0),
)


def peak_tflops(device_name: str, dtype: str) -> float | None:
    """Dense peak for fp16/bf16 on a known GPU; None for other dtypes or unknown chips."""
    if dtype not in ("float16", "bfloat16"):
        return None
    words = set(device_name.upper().replace("-", " ").replace("_", " ").split())
    for needles, peak in PEAK_TFLOPS_FP16:
        if all(needle in words for needle in needles):
            return peak
    return None
