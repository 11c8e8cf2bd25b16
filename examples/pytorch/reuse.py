#!/usr/bin/env python3
"""reuse.py - Sim-LLM's inter-task KV reuse loop on a small PyTorch model, with simcache.

Two passes over the same stream of task batches, same process, same model:

  baseline  reuse off: every task runs the full LCKV prompt encoding
            (`--iters` passes of the middle and top layers), then decodes.
  simcache  per batch: embed each task (mean-pooled token embeddings), look the
            batch up in simcached (threshold 0.8, one round trip).
            hit  -> the similar task's stored condensed (top-layer) KV is copied
                    from the shared mapping into the engine and the prompt is
                    encoded in ONE pass starting from it: the other iters-1
                    passes of the middle + top layers are skipped. The bottom
                    layers, the one pass and the decode still run.
            miss -> the normal iterative encoding, then put the task's
                    embedding + condensed KV (+ token count) into simcached.

Reuse is lossy: the hit task's middle layers read another prompt's KV. The
weights here are random (no download), so only the *drift* against the
baseline is shown (agreement of generated tokens); keeping accuracy needs a
model trained for reuse, as in the paper.

    examples/pytorch/run.sh                 # starts simcached, runs this, stops it
    reuse.py --socket PATH [--device cpu|cuda] [--tasks N] ...

--device cuda runs the model on the GPU; simcache's host tier is used: the
client connects with gpu_device set, so its view of the shared arena is pinned
and a hit is one DMA to the GPU (Match.torch(device=...) ->
simcache_copy_to_device); puts copy device -> host straight into the staging
buffer. A GPU tier (KV kept in device memory, shared by CUDA IPC) is not in
this version.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / "client" / "python"))

import simcache  # noqa: E402
from model import Config, SandwichLM  # noqa: E402
from tasks import TaskStream  # noqa: E402

MODEL_ID = "simcache-example/lckv-sandwich-llama-random"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--socket", default=os.environ.get("SIMCACHE_SOCKET"),
                   help="simcached client socket (default $SIMCACHE_SOCKET)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    p.add_argument("--tasks", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--prompt-len", type=int, default=192)
    p.add_argument("--gen-tokens", type=int, default=16)
    p.add_argument("--topics", type=int, default=8)
    p.add_argument("--novel", type=float, default=0.15, help="share of tasks unrelated to any topic")
    p.add_argument("--iters", type=int, default=3,
                   help="LCKV prompt-encoding iterations without reuse (with reuse: 1)")
    p.add_argument("--threshold", type=float, default=0.8)
    p.add_argument("--layers", type=int, default=10)
    p.add_argument("--window", type=int, default=2, help="w: bottom and top layers with own KV")
    p.add_argument("--d-model", type=int, default=512)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--cache-entries", type=int, default=16,
                   help="the daemon's --max-entries (reported only; run.sh passes the same)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: all cores)")
    p.add_argument("--json", help="also write the figures to this file")
    return p.parse_args()


def fingerprint(cfg, dtype):
    """Namespace parts: reuse is valid only between identical models and KV layouts."""
    model = f"{MODEL_ID}@{cfg.digest()}"
    layout = (f"lckv-sandwich/L{cfg.layers}/w{cfg.window}/condensed=top/kvh{cfg.kv_heads}/"
              f"hd{cfg.head_dim}/{dtype}/rope{cfg.rope_theta:g}/vocab{cfg.vocab}/"
              f"order=parts,layers,kv_heads,tokens,head_dim")
    return model, layout


class Clock:
    def __init__(self, device):
        self.cuda = device.type == "cuda"

    def now(self):
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    @staticmethod
    def cpu():
        """CPU seconds of this process (all threads): less disturbed than wall
        time by other processes competing for the cores."""
        return time.process_time()


def merge(caches):
    """Concatenate per-group caches along the batch dimension."""
    out = {}
    for part in ("bottom", "top"):
        layers = zip(*(c[part] for c in caches))
        out[part] = [(torch.cat([kv[0] for kv in l]), torch.cat([kv[1] for kv in l])) for l in layers]
    return out


def run_baseline(model, batches, args, dev, clock):
    t = {"prefill": 0.0, "prefill_cpu": 0.0, "decode": 0.0, "overhead": 0.0}
    outputs = {}
    start = clock.now()
    for batch in batches:
        tok = torch.from_numpy(np.stack([x.tokens for x in batch])).to(dev)
        t0, c0 = clock.now(), clock.cpu()
        logits, cache = model.prefill(tok, args.iters)
        t1 = clock.now()
        t["prefill_cpu"] += clock.cpu() - c0
        gen = model.decode(cache, logits.argmax(-1), args.gen_tokens)
        t2 = clock.now()
        t["prefill"] += t1 - t0
        t["decode"] += t2 - t1
        for x, g in zip(batch, gen.cpu()):
            outputs[x.index] = g
    t["total"] = clock.now() - start
    return t, outputs, {}


def run_reuse(model, client, batches, args, dev, clock, dtype):
    t = {"prefill": 0.0, "prefill_cpu": 0.0, "decode": 0.0, "overhead": 0.0}
    outputs, info = {}, {"hits": 0, "misses": 0, "hit_similarity": [], "hit_tasks": []}
    cfg, P = model.cfg, args.prompt_len
    lay = simcache.Layout(dtype, 2, 1, cfg.kv_heads, cfg.head_dim, P)
    start = clock.now()
    for batch in batches:
        tok = torch.from_numpy(np.stack([x.tokens for x in batch])).to(dev)
        # 1. embed and look the whole batch up (one round trip)
        t0 = clock.now()
        emb = model.task_embedding(tok).cpu().numpy()
        found = client.lookup_batch(emb, threshold=args.threshold)
        hits, misses = [], []
        for i, m in enumerate(found):
            if m is not None and m.layout.tokens >= P:
                hits.append(i)
            else:
                if m is not None:
                    m.release()     # too short to cover this prompt: run it normally
                misses.append(i)
        t1, c1 = clock.now(), clock.cpu()
        t["overhead"] += t1 - t0
        # 2. prefill: misses iterate from zeros; hits start from the reused KV, one pass
        groups, order = [], []
        if misses:
            lg, cache = model.prefill(tok[misses], args.iters)
            groups.append((lg, cache))
            order += misses
        if hits:
            ck = torch.empty((len(hits), 2, cfg.kv_heads, P, cfg.head_dim), device=dev, dtype=model.dtype)
            for j, i in enumerate(hits):
                m = found[i]
                with m:     # shared mapping -> engine memory: a view on CPU, one DMA to a GPU
                    src = m.torch(device=dev) if dev.type == "cuda" else m.torch()
                    ck[j].copy_(src[:, 0, :, :P])
                info["hit_similarity"].append(m.similarity)
                info["hit_tasks"].append(batch[i].index)
            lg, cache = model.prefill(tok[hits], 1, condensed=(ck[:, 0], ck[:, 1]))
            groups.append((lg, cache))
            order += hits
        t2 = clock.now()
        t["prefill_cpu"] += clock.cpu() - c1
        # 3. decode the batch together
        logits = torch.cat([g[0] for g in groups])
        cache = merge([g[1] for g in groups])
        gen = model.decode(cache, logits.argmax(-1), args.gen_tokens).cpu()
        t3 = clock.now()
        # 4. put every missed task's condensed KV, written straight into the staging buffer
        ck_k, ck_v = groups[0][1]["top"][-1] if misses else (None, None)
        for j, i in enumerate(misses):
            with client.begin_put(lay) as buf:
                view = buf.torch()
                view[0, 0].copy_(ck_k[j])
                view[1, 0].copy_(ck_v[j])
                meta = json.dumps({"tokens": P, "task": batch[i].index}).encode()
                buf.commit(emb[i], meta=meta)
        t4 = clock.now()
        t["prefill"] += t2 - t1
        t["decode"] += t3 - t2
        t["overhead"] += t4 - t3
        for pos, i in enumerate(order):
            outputs[batch[i].index] = gen[pos]
        info["hits"] += len(hits)
        info["misses"] += len(misses)
    t["total"] = clock.now() - start
    return t, outputs, info


def cosine_report(model, tasks, dev, threshold):
    tok = torch.from_numpy(np.stack([x.tokens for x in tasks])).to(dev)
    e = model.task_embedding(tok).cpu().numpy()
    s = e @ e.T
    topic = np.array([x.topic for x in tasks])
    iu = np.triu_indices(len(tasks), 1)
    same = (topic[:, None] == topic[None, :]) & (topic[:, None] >= 0)
    within, cross = s[iu][same[iu]], s[iu][~same[iu]]
    return {"within_mean": float(within.mean()), "within_min": float(within.min()),
            "within_above": float((within >= threshold).mean()),
            "cross_mean": float(cross.mean()), "cross_max": float(cross.max())}


def main():
    args = parse_args()
    if not args.socket:
        sys.exit("reuse.py: no socket: pass --socket or set SIMCACHE_SOCKET (run.sh does both)")
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        sys.exit("reuse.py: --device cuda but torch sees no CUDA device")
    dtype = getattr(torch, args.dtype)
    try:
        torch.nn.functional.linear(torch.ones(1, 2, dtype=dtype, device=dev), torch.ones(2, 2, dtype=dtype, device=dev))
    except RuntimeError:
        sys.exit(f"reuse.py: this torch ({torch.__version__}) has no {args.dtype} matmul on {dev}: "
                 "use --dtype float32 or bfloat16")
    cfg = Config(d_model=args.d_model, layers=args.layers, window=args.window, heads=args.heads,
                 kv_heads=args.kv_heads, head_dim=args.d_model // args.heads, seed=args.seed,
                 max_pos=args.prompt_len + args.gen_tokens + 8)
    torch.manual_seed(args.seed)
    model = SandwichLM(cfg).to(dev, dtype).eval()
    model.dtype = dtype
    n_params = sum(p.numel() for p in model.parameters())
    stream = TaskStream(cfg.vocab, args.prompt_len, topics=args.topics, novel=args.novel, seed=args.seed)
    batches = stream.batches(args.tasks, args.batch_size)
    tasks = [x for b in batches for x in b]
    clock = Clock(dev)
    model_id, layout_fp = fingerprint(cfg, args.dtype)
    el = torch.empty((), dtype=dtype).element_size()

    print(f"simcache PyTorch example: torch {torch.__version__}, device {dev}, dtype {args.dtype}, "
          f"{torch.get_num_threads()} CPU threads")
    print(f"model: {n_params / 1e6:.1f}M params, RANDOM weights (no download), {cfg.layers} layers "
          f"(w={cfg.window} bottom + {cfg.middle} middle + w={cfg.window} top), d_model {cfg.d_model}, "
          f"{cfg.heads} heads / {cfg.kv_heads} KV heads x {cfg.head_dim}")
    print(f"stream: {len(tasks)} tasks in batches of {args.batch_size}, prompt {args.prompt_len} tokens, "
          f"{args.gen_tokens} generated, {args.topics} topics + {args.novel:.0%} novel; "
          f"LCKV prompt iterations {args.iters} (1 on a hit)")
    print(f"simcache: threshold {args.threshold}, cache {args.cache_entries} entries (paper: 512)")
    print(f"namespace: model {model_id!r}\n           layout {layout_fp!r}")
    cs = cosine_report(model, tasks, dev, args.threshold)
    print(f"task embeddings: same topic cosine mean {cs['within_mean']:.3f} (min {cs['within_min']:.3f}, "
          f"{cs['within_above']:.0%} >= {args.threshold}); other pairs mean {cs['cross_mean']:.3f} "
          f"(max {cs['cross_max']:.3f})")

    # Warm up both prefill paths and decode (allocator, thread pool, kernels).
    tok = torch.from_numpy(np.stack([x.tokens for x in batches[0]])).to(dev)
    lg, cache = model.prefill(tok, 1)
    model.prefill(tok, 1, condensed=cache["top"][-1])
    model.decode(cache, lg.argmax(-1), 2)

    base_t, base_out, _ = run_baseline(model, batches, args, dev, clock)
    gpu = dev.index if dev.index is not None else 0
    with simcache.Client(args.socket, model_id, layout_fp, cfg.d_model, timeout_ms=30000,
                         gpu_device=gpu if dev.type == "cuda" else -1) as client:
        if dev.type == "cuda":
            level, why = client.gpu_status()
            print(f"simcache GPU path: {['unavailable: ' + why, 'copies', 'pinned arena, DMA copies'][level]}")
        s0 = client.stats()
        reuse_t, reuse_out, info = run_reuse(model, client, batches, args, dev, clock, args.dtype)
        st = client.stats()

    n, P, G = len(tasks), args.prompt_len, args.gen_tokens
    hit_rate = info["hits"] / n
    first_same = np.mean([int(base_out[i][0] == reuse_out[i][0]) for i in info["hit_tasks"]]) \
        if info["hit_tasks"] else float("nan")
    seq_same = np.mean([float((base_out[i] == reuse_out[i]).float().mean()) for i in info["hit_tasks"]]) \
        if info["hit_tasks"] else float("nan")
    miss_tasks = [x.index for x in tasks if x.index not in set(info["hit_tasks"])]
    miss_same = np.mean([float((base_out[i] == reuse_out[i]).float().mean()) for i in miss_tasks])
    per_task = lambda iters: cfg.window + iters * (cfg.layers - cfg.window)   # layer passes over a prompt
    work = {"baseline": n * per_task(args.iters),
            "simcache": info["misses"] * per_task(args.iters) + info["hits"] * per_task(1)}
    kv = {
        "full_all_layers": 2 * cfg.layers * cfg.kv_heads * cfg.head_dim * P * el,
        "lckv_sandwich": 2 * 2 * cfg.window * cfg.kv_heads * cfg.head_dim * P * el,
        "condensed_stored": 2 * 1 * cfg.kv_heads * cfg.head_dim * P * el,
    }
    res = {
        "device": str(dev), "torch": torch.__version__, "dtype": args.dtype, "params_m": n_params / 1e6,
        "tasks": n, "batch_size": args.batch_size, "prompt_len": P, "gen_tokens": G,
        "iters": args.iters, "threshold": args.threshold, "cache_entries": args.cache_entries,
        "hit_rate": hit_rate, "hits": info["hits"], "misses": info["misses"],
        "hit_similarity_mean": float(np.mean(info["hit_similarity"])) if info["hit_similarity"] else None,
        "baseline": base_t, "simcache": reuse_t,
        "prefill_tok_s": {"baseline": n * P / base_t["prefill"], "simcache": n * P / reuse_t["prefill"]},
        "e2e_tok_s": {"baseline": n * (P + G) / base_t["total"], "simcache": n * (P + G) / reuse_t["total"]},
        "hit_first_token_agreement": float(first_same), "hit_token_agreement": float(seq_same),
        "miss_token_agreement": float(miss_same),
        "prefill_layer_passes": work, "kv_bytes_per_task": kv, "cosine": cs,
        "daemon": {"entries": st.ns_entries, "evictions": st.evictions - s0.evictions,
                   "host_bytes_used": st.host_bytes_used, "puts": st.puts - s0.puts},
    }

    def row(name, b, s, unit, fmt="{:.2f}"):
        ch = f"{(s - b) / b * 100:+7.1f}%" if b else "     n/a"
        print(f"  {name:<28}{fmt.format(b):>12}{fmt.format(s):>12} {unit:<9}{ch}")

    print(f"\nhit rate: {hit_rate:.1%} ({info['hits']} hits, {info['misses']} misses; "
          f"mean similarity of hits {res['hit_similarity_mean'] or 0:.3f})")
    print(f"  {'':<28}{'baseline':>12}{'simcache':>12} {'':<9}{'change':>8}")
    row("prefill time", base_t["prefill"], reuse_t["prefill"], "s")
    if dev.type == "cpu":
        row("prefill CPU time", base_t["prefill_cpu"], reuse_t["prefill_cpu"], "s")
    row("prefill work", work["baseline"], work["simcache"], "layer-p.", "{:.0f}")
    row("prefill throughput", res["prefill_tok_s"]["baseline"], res["prefill_tok_s"]["simcache"], "tok/s", "{:.0f}")
    row("decode time", base_t["decode"], reuse_t["decode"], "s")
    row("simcache overhead", base_t["overhead"], reuse_t["overhead"], "s", "{:.3f}")
    row("total time", base_t["total"], reuse_t["total"], "s")
    row("end-to-end throughput", res["e2e_tok_s"]["baseline"], res["e2e_tok_s"]["simcache"], "tok/s", "{:.0f}")
    print("  (prefill work: layer passes over a prompt, summed over tasks, the compute the loop skips;\n"
          "   overhead: embedding + lookup_batch + puts; end-to-end counts prompt + generated tokens)")
    print(f"KV memory per task ({P} prompt tokens, {args.dtype}): full KV of all {cfg.layers} layers "
          f"{kv['full_all_layers'] / 1024:.0f} KiB; LCKV sandwich engine cache ({2 * cfg.window} layers) "
          f"{kv['lckv_sandwich'] / 1024:.0f} KiB; condensed layer stored in simcache "
          f"{kv['condensed_stored'] / 1024:.0f} KiB ({kv['condensed_stored'] / kv['full_all_layers']:.0%} of full)")
    print(f"simcached: {st.ns_entries} entries in this namespace, {res['daemon']['evictions']} LRU evictions, "
          f"{st.host_bytes_used / 2**20:.1f} MiB host tier used")
    print(f"lossy reuse (random weights: drift only, not accuracy): hit tasks' first generated token equals "
          f"the baseline's in {first_same:.0%}, all {G} tokens {seq_same:.0%}; missed tasks {miss_same:.0%}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
