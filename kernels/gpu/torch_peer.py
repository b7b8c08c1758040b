"""PyTorch peers for the GPU benchmark, timed in the same run: the
device-to-device copy and Gumbel-max sampling as
argmax(logits / T - log(-log(rand))) for [64, 131072] float32.

Prints one JSON line per measurement (median of 7 batches of 10 calls, CUDA
events around each batch), bytes counted as in benches/gpu.rs.
"""
import json

import torch


def median_ms(fn, iters=10, reps=7):
    fn()
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / iters)
    times.sort()
    return times[len(times) // 2]


def main():
    dev = torch.device("cuda")
    src = torch.rand(256 << 18, device=dev)  # 256 MiB of f32
    copy_ms = median_ms(lambda: src.clone())
    copy = 2 * src.numel() * 4 / (copy_ms * 1e-3) / 1e9
    print(json.dumps({"peer": "torch", "op": "copy", "mib": 256, "ms": round(copy_ms, 4), "gb_per_s": round(copy, 1)}))
    logits = torch.rand(64, 131072, device=dev) * 8 - 4
    t = 0.8

    def gumbel():
        u = torch.rand_like(logits)
        return torch.argmax(logits / t - torch.log(-torch.log(u)), dim=-1)

    ms = median_ms(gumbel)
    gbs = logits.numel() * 4 / (ms * 1e-3) / 1e9
    print(json.dumps({"peer": "torch", "op": "gumbel_sample", "batch": 64, "vocab": 131072, "ms": round(ms, 4),
                      "gb_per_s": round(gbs, 1), "vs_copy": round(gbs / copy, 3), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
