"""Does the benchmarks' cache flush leave the inputs cached? Times F.linear on a weight the size of
the last-level cache after no flush, after the suite's flush, and after stronger ones; a flush
that is strong enough matches the strongest. (Why the suite reads its buffer twice: bench/README.md.)

    python bench/check_cache_flush.py [--dtype bf16] [--rounds 30]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import _last_level_cache_bytes  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "fp32"])
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args()
    torch.set_num_threads(2)
    llc = _last_level_cache_bytes()
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    side = int((llc // dtype.itemsize) ** 0.5)
    w, x = torch.randn(side, side).to(dtype), torch.randn(1, side).to(dtype)
    buf2, buf4 = torch.ones(2 * llc // 4), torch.ones(4 * llc // 4)
    flushes = {
        "none": lambda: None,
        "2x LLC read once": lambda: buf2.sum(),
        "2x LLC read twice (the suite)": lambda: (buf2.sum(), buf2.sum()),
        "4x LLC read once": lambda: buf4.sum(),
        "4x LLC read twice": lambda: (buf4.sum(), buf4.sum()),
    }
    print(f"F.linear {args.dtype} {side}x{side} T=1, weight {w.nbytes >> 20} MiB, LLC {llc >> 20} MiB")
    for name, flush in flushes.items():
        times = []
        for _ in range(args.rounds):
            flush()
            t0 = time.perf_counter()
            torch.nn.functional.linear(x, w)
            times.append(time.perf_counter() - t0)
        times.sort()
        print(f"  {name:32s} min {times[0] * 1e3:7.3f} ms  median {times[len(times) // 2] * 1e3:7.3f} ms"
              f"  ({w.nbytes / times[0] / 1e9:5.1f} GB/s at the min)")


if __name__ == "__main__":
    main()
