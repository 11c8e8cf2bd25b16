#!/usr/bin/python3
"""plot_recall.py - PNGs of the CSV that bench_recall writes.

  plot_recall.py bench_recall.csv [more.csv ...] --out docs/img

index_recall_realtext.png: best-recall per set and threshold, simcache
against FAISS IndexFlatIP, IndexLSH and IndexHNSWFlat (one panel per
threshold). index_latency_realtext.png: p50 and p99 lookup latency per set
at T = 0.8 (log scale; simcache over the socket, FAISS in process).
index_churn.png: best-recall under turnover, per set and cap. Rows of
several CSV files are merged (later files win for the same set, threshold
and method). Needs python3-matplotlib.
"""
import argparse
import csv
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

METHODS = [("simcache", "simcache (socket)", "#1f77b4"),
           ("faiss_flat", "FAISS Flat (exact)", "#7f7f7f"),
           ("faiss_lsh1024", "FAISS LSH 1024 + re-rank 64", "#2ca02c"),
           ("faiss_hnsw", "FAISS HNSW M32 ef128", "#d62728")]


def load(paths):
    rows = {}
    for p in paths:
        with open(p) as f:
            for r in csv.DictReader(f):
                rows[(r["set"], r["T"], r["method"])] = r
    return list(rows.values())


def bars(ax, sets, values, title, ylabel, log=False):
    w = 0.8 / len(METHODS)
    for k, (m, label, colour) in enumerate(METHODS):
        xs = [i + (k - (len(METHODS) - 1) / 2) * w for i in range(len(sets))]
        ys = [values.get((s, m)) for s in sets]
        ax.bar([x for x, y in zip(xs, ys) if y is not None], [y for y in ys if y is not None],
               w, label=label, color=colour)
    ax.set_xticks(range(len(sets)))
    ax.set_xticklabels(sets, rotation=20, ha="right", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    ax.grid(axis="y", alpha=0.3)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv", nargs="+")
    ap.add_argument("--out", default="docs/img")
    a = ap.parse_args()
    rows = load(a.csv)
    static = [r for r in rows if not r["method"].startswith("simcache_churn")]
    churn = [r for r in rows if r["method"].startswith("simcache_churn")]
    os.makedirs(a.out, exist_ok=True)

    ts = sorted({r["T"] for r in static})
    sets = sorted({r["set"] for r in static})
    if static:
        fig, axes = plt.subplots(1, len(ts), figsize=(5 * len(ts), 4.6), sharey=True)
        if len(ts) == 1:
            axes = [axes]
        for ax, t in zip(axes, ts):
            v = {(r["set"], r["method"]): float(r["best_recall"]) for r in static if r["T"] == t}
            bars(ax, sets, v, "best-recall at T = " + t, "best-recall")
            ax.set_ylim(0.8, 1.005)
        axes[0].legend(fontsize=8, loc="lower left")
        fig.tight_layout()
        fig.savefig(os.path.join(a.out, "index_recall_realtext.png"), dpi=110)

        fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
        t = "0.80" if "0.80" in ts else ts[0]
        for ax, col in zip(axes, ["p50_us", "p99_us"]):
            v = {(r["set"], r["method"]): float(r[col]) for r in static
                 if r["T"] == t and r[col] not in ("", "0.00")}
            bars(ax, sets, v, "lookup " + col[:3] + " at T = " + t + " (log)", "microseconds",
                 log=True)
        axes[0].legend(fontsize=8, loc="upper left")
        fig.tight_layout()
        fig.savefig(os.path.join(a.out, "index_latency_realtext.png"), dpi=110)

    if churn:
        fig, ax = plt.subplots(figsize=(11, 4.8))
        labels = ["%s\ncap %s" % (r["set"].replace("-topic", "").replace(" (", "\n("), r["cap"])
                  for r in churn]
        ax.bar(range(len(churn)), [float(r["best_recall"]) for r in churn], color="#1f77b4",
               label="best-recall")
        ax.plot(range(len(churn)), [float(r["hit_recall"]) for r in churn], "o", color="#d62728",
                label="hit-recall")
        ax.axhline(0.99, color="#7f7f7f", ls="--", lw=1, label="target 0.99")
        ax.set_xticks(range(len(churn)))
        ax.set_xticklabels(labels, fontsize=7, rotation=15, ha="right")
        ax.set_ylim(0.9, 1.005)
        ax.set_title("recall under churn (10 turnovers of the cap, T = 0.8)", fontsize=10)
        ax.legend(fontsize=8, loc="lower right")
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        fig.savefig(os.path.join(a.out, "index_churn.png"), dpi=110)


if __name__ == "__main__":
    main()
