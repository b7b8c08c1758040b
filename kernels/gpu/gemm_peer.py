"""cuBLAS peers of gemm_w8a8 through PyTorch, on the shapes of benches/gemm_gpu.rs:
int8 x int8 -> int32 (torch._int_mm, cuBLAS's IMMA path; it needs M > 16, so
M <= 16 is timed padded to M = 17 and marked), bf16 and f16 matmul, and the
card's measured peaks (the largest square products). CUDA events, inputs rotated
over copies exceeding 160 MB, median over repeats with min/max.

    python3 gemm_peer.py OUT.csv
"""
import sys

import torch

WEIGHTS = [
    ("Llama-3.2-1B", "q_o", 2048, 2048), ("Llama-3.2-1B", "k_v", 512, 2048),
    ("Llama-3.2-1B", "gate_up", 8192, 2048), ("Llama-3.2-1B", "down", 2048, 8192),
    ("Qwen3-0.6B", "q", 2048, 1024), ("Qwen3-0.6B", "k_v", 1024, 1024),
    ("Qwen3-0.6B", "o", 1024, 2048), ("Qwen3-0.6B", "gate_up", 3072, 1024),
    ("Qwen3-0.6B", "down", 1024, 3072), ("Llama-2-7B", "q_k_v_o", 4096, 4096),
    ("Llama-2-7B", "gate_up", 11008, 4096), ("Llama-2-7B", "down", 4096, 11008),
]
MS = [1, 2, 4, 8, 16, 128, 512, 1024, 2048, 4096]
SQUARES = [1024, 2048, 4096, 8192, 16384]
ROTATE = 160 << 20
REPS = 9


def bench(fn, copies):
    for i in range(3):
        fn(i % copies)
    torch.cuda.synchronize()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record(); fn(0); e.record(); torch.cuda.synchronize()
    iters = max(3, min(400, int(3.0 / max(s.elapsed_time(e), 1e-4)) + 1))
    per, i = [], 0
    for _ in range(REPS):
        s.record()
        for _ in range(iters):
            fn(i % copies); i += 1
        e.record(); torch.cuda.synchronize()
        per.append(s.elapsed_time(e) / iters)
    per.sort()
    return per[REPS // 2], per[0], per[-1]


def run(kind, m, n, k):
    dev = "cuda"
    mm = max(m, 17) if kind == "cublas_int8" else m
    esize = 1 if kind == "cublas_int8" else 2
    copies = max(1, min(32, ROTATE // (esize * (mm * k + n * k))))
    if kind == "cublas_int8":
        a = [torch.randint(-128, 128, (mm, k), dtype=torch.int8, device=dev) for _ in range(copies)]
        # [N, K] storage used as the K x N column-major operand (cuBLAS "TN").
        w = [torch.randint(-128, 128, (n, k), dtype=torch.int8, device=dev) for _ in range(copies)]
        fn = lambda j: torch._int_mm(a[j], w[j].t())
    else:
        dt = torch.bfloat16 if kind == "torch_bf16" else torch.float16
        a = [torch.randn(m, k, dtype=dt, device=dev) for _ in range(copies)]
        w = [torch.randn(n, k, dtype=dt, device=dev) for _ in range(copies)]
        fn = lambda j: torch.matmul(a[j], w[j].t())
    med, lo, hi = bench(fn, copies)
    return mm, med, lo, hi


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "gemm_peer.csv"
    rows = ["set,model,proj,m,n,k,kernel,m_run,median_ms,min_ms,max_ms,tops"]
    cases = [("model", mo, p, m, n, k) for (mo, p, n, k) in WEIGHTS for m in MS]
    cases += [("square", "-", "-", s, s, s) for s in SQUARES]
    for (st, mo, p, m, n, k) in cases:
        for kind in ("cublas_int8", "torch_bf16", "torch_f16"):
            try:
                mm, med, lo, hi = run(kind, m, n, k)
            except Exception as e:  # noqa: BLE001 - report and go on
                print(f"{kind} {m}x{n}x{k}: {e}", file=sys.stderr)
                continue
            tops = 2 * mm * n * k / (med * 1e-3) / 1e12
            line = f"{st},{mo},{p},{m},{n},{k},{kind},{mm},{med:.5f},{lo:.5f},{hi:.5f},{tops:.2f}"
            rows.append(line)
            print(line, flush=True)
        torch.cuda.empty_cache()
    with open(out, "w") as f:
        f.write("\n".join(rows) + "\n")
    sq = [r.split(",") for r in rows[1:] if r.startswith("square")]
    for kind in ("cublas_int8", "torch_bf16", "torch_f16"):
        best = max((float(r[11]) for r in sq if r[6] == kind), default=float("nan"))
        print(f"peak {kind}: {best:.1f} TOP/s (best square)")


if __name__ == "__main__":
    main()
