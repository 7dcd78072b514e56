"""prune_rows (selection + compact build) time per weight shape, bf16, T = 256 norms, for the
mumoe_ext this interpreter imports: best of 5 batches, ms. To compare two builds on a noisy
machine, alternate runs with PYTHONPATH at each checkout (each built in place) and take medians:

    for r in 1 2 3 4 5; do for t in /tmp/old /work/main; do
      (cd /tmp && PYTHONPATH=$t python3 /work/main/tools/prune_rows_timing.py); done; done
"""
import time

import torch

import mumoe_ext

SHAPES = ((5632, 2048), (2048, 5632), (2048, 2048), (1536, 576), (576, 576))


def main() -> None:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    out = []
    for d_out, d_in in SHAPES:
        w = torch.randn(d_out, d_in).to(torch.bfloat16)
        n = mumoe_ext.col_norms(torch.randn(256, d_in).to(torch.bfloat16))
        for _ in range(3):
            mumoe_ext.prune_rows(w, n, 0.5)
        reps = max(10, int(2e9 / (d_out * d_in * 40)))
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(reps):
                mumoe_ext.prune_rows(w, n, 0.5)
            best = min(best, (time.perf_counter() - t0) / reps * 1e3)
        out.append(f"{d_out}x{d_in}: {best:.3f}")
    print(" | ".join(out))


if __name__ == "__main__":
    main()
