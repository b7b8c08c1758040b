"""Joins Nsight Compute's CSV (ncu_raw.csv: one row per kernel and metric, in
launch order) with the bench's list of profiled configurations
(ncu_configs.csv) into one row per configuration: L2 sector hit rate, kernel
time (at ncu's locked base clocks), DRAM bytes read and their ratio to the
minimum (A and B read once).

    python3 gemm_ncu_table.py ncu_raw.csv ncu_configs.csv OUT.csv
"""
import csv
import io
import sys
from collections import defaultdict

raw, cfgs, out = sys.argv[1:4]
rows = [l for l in open(raw) if l.startswith('"')]
metrics = defaultdict(dict)
for r in csv.DictReader(io.StringIO("".join(rows))):
    metrics[int(r["ID"])][r["Metric Name"]] = float(r["Metric Value"].replace(",", ""))
with open(out, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["shape", "m", "n", "k", "tile", "schedule", "l2_hit_pct", "kernel_ms", "dram_read_bytes", "dram_over_min"])
    for c in csv.DictReader(open(cfgs)):
        m = metrics[int(c["id"])]
        least = (int(c["m"]) + int(c["n"])) * int(c["k"])
        w.writerow([c["shape"], c["m"], c["n"], c["k"], c["tile"], c["schedule"],
                    f'{m["lts__t_sector_hit_rate.pct"]:.2f}', f'{m["gpu__time_duration.sum"] / 1e6:.4f}',
                    int(m["dram__bytes_read.sum"]), f'{m["dram__bytes_read.sum"] / least:.3f}'])
print(open(out).read())
