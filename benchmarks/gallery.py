"""Central search at scale: a 1,000,000-template gallery, ours (int8 or int4 scoring + exact float32
re-rank, templates memory-mapped) beside the plain float32 search (every template in RAM, one product).

  python benchmarks/gallery.py                     # 1,000,000 templates, 100 probes
  python benchmarks/gallery.py --templates 200000

Each side runs in its own process so its resident memory is its own. Targets (issue 14): <= 10 ms
per probe, resident memory <= 1.2x the templates' float32 bytes, top-5 identical to exact float32.
The int8 and int4 rows are the two compact indexes (compact_index.py); the gallery picks int4 from
``INT4_FROM`` templates. Measured 2026-12-02 (third session's VM), ms per probe: --threads 2 (the
default) int4 4.58 (p90 4.94, CPU 7.86), int8 5.18, plain float32 55.7, 0.85x the templates' bytes
resident, top 5 identical 100/100; --threads 1 int4 8.70 and 10.31 in two runs (the second VM 13.6:
XNNPACK's qc4w GEMV unpacks nibbles at ~6 GB/s, not the memory's rate).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
KINDS = ("exact", "int8", "int4")
sys.path.insert(0, str(REPO))


def _rss_mb() -> tuple[float, float]:
    """(current, peak) resident set of this process in MB, from /proc/self/status."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def worker(kind: str, data: Path, threads: int) -> dict:
    from edge_agent.watchlist import compact_index, gallery as gallery_module

    templates = np.load(data / "templates.npy", mmap_mode="r")
    refs = (data / "refs.txt").read_text().split("\n")
    probes = np.load(data / "probes.npy")
    base_rss, _ = _rss_mb()
    start = time.perf_counter()
    if kind == "exact":
        gallery_module.COMPACT_FROM = 1 << 62  # the plain search: float32 in RAM, one product per probe
        gallery = gallery_module.Gallery(np.array(templates), refs)
    else:  # the compact search with int8 or int4 scoring, whichever INT4_FROM picks at other sizes
        compact_index.INT4_FROM = 0 if kind == "int4" else 1 << 62
        gallery = gallery_module.Gallery(templates, refs, threads=threads)
    build_s = time.perf_counter() - start
    del refs
    times, results = [], []
    c0 = time.process_time()
    for probe in probes:
        t0 = time.perf_counter()
        top = gallery.search(probe, k=5)
        times.append(time.perf_counter() - t0)
        results.append([c.subject_ref for c in top])
    cpu_ms = (time.process_time() - c0) / len(probes) * 1000
    rss, peak = _rss_mb()
    return {"ms": float(np.median(times) * 1000), "cpu_ms": cpu_ms, "p90_ms": float(np.percentile(times, 90) * 1000), "build_s": build_s,
            "rss_mb": rss, "peak_mb": peak, "base_mb": base_rss, "results": results}


def make_data(folder: Path, n: int, n_probes: int, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    templates = np.lib.format.open_memmap(folder / "templates.npy", mode="w+", dtype=np.float32, shape=(n, 128))
    for start in range(0, n, 100_000):
        block = rng.standard_normal((min(100_000, n - start), 128), dtype=np.float32)
        templates[start : start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    # about two templates per subject; probes: half noisy copies of templates, half strangers
    (folder / "refs.txt").write_text("\n".join(f"s{i // 2:07d}" for i in range(n)))
    near = templates[rng.integers(0, n, n_probes // 2)] + 0.05 * rng.standard_normal((n_probes // 2, 128)).astype(np.float32)
    probes = np.vstack([near, rng.standard_normal((n_probes - n_probes // 2, 128)).astype(np.float32)])
    np.save(folder / "probes.npy", probes / np.linalg.norm(probes, axis=1, keepdims=True))
    templates.flush()
    return templates.nbytes


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--templates", type=int, default=1_000_000)
    p.add_argument("--probes", type=int, default=100)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--worker", choices=KINDS, help=argparse.SUPPRESS)
    p.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.data, args.threads)))
        return 0

    from edge_agent.vision.cpu_profile import read_cpu_profile

    with tempfile.TemporaryDirectory(prefix="gallery-bench-") as tmp:
        data = Path(tmp)
        nbytes = make_data(data, args.templates, args.probes)
        runs = {}
        for kind in KINDS:
            out = subprocess.run([sys.executable, __file__, "--worker", kind, "--data", str(data), "--threads", str(args.threads)],
                                 check=True, capture_output=True, text=True)
            runs[kind] = json.loads(out.stdout.strip().splitlines()[-1])
    same = {kind: sum(a == b for a, b in zip(runs["exact"]["results"], runs[kind]["results"], strict=True)) for kind in KINDS}
    mb = nbytes / 2**20
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"machine: {read_cpu_profile().summary()}; load average {load} (the cores are shared: compare within a run)")
    print(f"{args.templates:,} templates x 128 float32 = {mb:.0f} MB; {args.probes} probes (half near a template, half strangers); top 5 subjects; {args.threads} threads\n")
    print("| search | ms per probe (median) | p90 | CPU ms per probe (mean) | build s | resident MB | x templates' bytes | peak MB | top-5 identical to exact float32 |")
    print("|---|---|---|---|---|---|---|---|---|")
    from edge_agent.watchlist.compact_index import INT4_FROM

    chosen = "int4" if args.templates >= INT4_FROM else "int8"
    names = {"exact": "plain float32 (all in RAM, one product)", "int8": "int8 scoring + exact float32 re-rank (memory-mapped)",
             "int4": "int4 scoring + int8 + exact float32 re-rank (memory-mapped)"}
    names[chosen] += " (chosen at this size)"
    for kind in KINDS:
        r = runs[kind]
        print(f"| {names[kind]} | {r['ms']:.2f} | {r['p90_ms']:.2f} | {r['cpu_ms']:.2f} | {r['build_s']:.1f} | {r['rss_mb']:.0f} | {r['rss_mb'] / mb:.2f} | {r['peak_mb']:.0f} | "
              f"{'(reference)' if kind == 'exact' else f'{same[kind]}/{args.probes}'} |")
    print(f"\nresident MB includes the interpreter and libraries (~{runs['int8']['base_mb']:.0f} MB before the gallery was built)")
    return 0 if all(same[kind] == args.probes for kind in ("int8", "int4")) else 1


if __name__ == "__main__":
    sys.exit(main())
