"""model.py - a small Llama-style decoder with Layer-Condensed KV "sandwich" layers.

Llama blocks (RMSNorm, RoPE, grouped-query attention, SwiGLU MLP). The layer
stack is a sandwich as in Layer-Condensed KV Cache (LCKV, Wu & Tu 2024) and the
model Sim-LLM serves:

    w bottom "warm-up" layers   own attention, own KV
    middle layers               queries only: attend to the condensed KV
    w top layers                own attention, own KV; the KV of the topmost
                                layer IS the condensed KV

Because the condensed KV comes from the top of the stack, the middle layers of
token i can only see the condensed KV of tokens < i (plus a null slot, so the
first token has something to attend to). Decoding is sequential and needs one
pass per token. A prompt, though, has no condensed KV yet: LCKV encodes it by
iterating the parallel computation (start from zeros, run middle + top layers,
feed the top layer's KV back, repeat `iters` times). That iteration is what a
reused KV from a *similar* earlier task replaces (reuse.py).

The weights are random (seeded); nothing is downloaded. A random model says
nothing about accuracy: reuse of another task's KV is lossy, and only a model
trained for it (as in the paper) keeps its quality.
"""
import hashlib
import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

_SDPA = getattr(F, "scaled_dot_product_attention", None)   # torch >= 2.0


@dataclass(frozen=True)
class Config:
    vocab: int = 4096
    d_model: int = 512
    layers: int = 10
    window: int = 2              # w: bottom warm-up layers = top layers = w
    heads: int = 8
    kv_heads: int = 2            # GQA: heads / kv_heads queries share one K/V head
    head_dim: int = 64
    ffn: int = 1408
    rope_theta: float = 10000.0
    max_pos: int = 4096
    seed: int = 0

    @property
    def middle(self):
        return self.layers - 2 * self.window

    def digest(self):
        """Short hash of everything that shapes the weights and the KV."""
        return hashlib.sha256(repr(sorted(asdict(self).items())).encode()).hexdigest()[:12]


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (xf * self.weight.float()).to(x.dtype)


def rope_tables(cfg, device, dtype):
    inv = 1.0 / (cfg.rope_theta ** (torch.arange(0, cfg.head_dim, 2, device=device).float() / cfg.head_dim))
    t = torch.arange(cfg.max_pos, device=device).float()
    freqs = torch.outer(t, inv)
    return freqs.cos().to(dtype), freqs.sin().to(dtype)


def apply_rope(x, cos, sin, start):
    """x: (B, H, T, D); rotate the two halves of the head dim by position."""
    t = x.shape[2]
    c = cos[start:start + t][None, None]
    s = sin[start:start + t][None, None]
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat([x1 * c - x2 * s, x1 * s + x2 * c], dim=-1)


def attend(q, k, v, mask):
    """q: (B, H, Tq, D); k, v: (B, KVH, Tk, D); mask: additive (Tq, Tk) or None."""
    rep = q.shape[1] // k.shape[1]
    if rep > 1:
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
    if _SDPA is not None:
        return _SDPA(q, k, v, attn_mask=mask)
    s = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    if mask is not None:
        s = s + mask
    return torch.softmax(s.float(), dim=-1).to(q.dtype) @ v


class Block(nn.Module):
    """A Llama block. own_kv False: a middle LCKV layer (no K/V projections)."""

    def __init__(self, cfg, own_kv):
        super().__init__()
        self.cfg = cfg
        self.own_kv = own_kv
        d, h, kvh, hd = cfg.d_model, cfg.heads, cfg.kv_heads, cfg.head_dim
        self.attn_norm = RMSNorm(d)
        self.q = nn.Linear(d, h * hd, bias=False)
        if own_kv:
            self.k = nn.Linear(d, kvh * hd, bias=False)
            self.v = nn.Linear(d, kvh * hd, bias=False)
        self.o = nn.Linear(h * hd, d, bias=False)
        self.mlp_norm = RMSNorm(d)
        self.gate = nn.Linear(d, cfg.ffn, bias=False)
        self.up = nn.Linear(d, cfg.ffn, bias=False)
        self.down = nn.Linear(cfg.ffn, d, bias=False)

    def _split(self, x, heads):
        b, t, _ = x.shape
        return x.view(b, t, heads, self.cfg.head_dim).transpose(1, 2)

    def kv(self, hn, rope, start):
        """This layer's own K (with RoPE) and V for normed input hn."""
        k = apply_rope(self._split(self.k(hn), self.cfg.kv_heads), *rope, start)
        v = self._split(self.v(hn), self.cfg.kv_heads)
        return k, v

    def forward(self, x, rope, start, mask, past=None, condensed=None):
        """Returns (output, (k, v) of this layer's cache or None).

        own_kv: attends to past + its own new K/V.
        middle: attends to `condensed` (K, V), already including the null slot.
        """
        hn = self.attn_norm(x)
        q = apply_rope(self._split(self.q(hn), self.cfg.heads), *rope, start)
        if self.own_kv:
            k, v = self.kv(hn, rope, start)
            if past is not None:
                k, v = torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)
            kv = (k, v)
        else:
            k, v = condensed
            kv = None
        a = attend(q, k, v, mask)
        b, _, t, _ = a.shape
        x = x + self.o(a.transpose(1, 2).reshape(b, t, -1))
        hn = self.mlp_norm(x)
        x = x + self.down(F.silu(self.gate(hn)) * self.up(hn))
        return x, kv


class SandwichLM(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        if cfg.middle < 1 or cfg.window < 1:
            raise ValueError("need window >= 1 and layers > 2 * window")
        self.cfg = cfg
        g = torch.Generator().manual_seed(cfg.seed)
        self.embed = nn.Embedding(cfg.vocab, cfg.d_model)
        self.bottom = nn.ModuleList(Block(cfg, True) for _ in range(cfg.window))
        self.middle = nn.ModuleList(Block(cfg, False) for _ in range(cfg.middle))
        self.top = nn.ModuleList(Block(cfg, True) for _ in range(cfg.window))
        self.norm = RMSNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab, bias=False)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if p.dim() == 2:
                    p.copy_(torch.randn(p.shape, generator=g) * (0.02 if "embed" not in name else 1.0))
        self._rope = None

    def rope(self, device, dtype):
        if self._rope is None or self._rope[0].device != device or self._rope[0].dtype != dtype:
            self._rope = rope_tables(self.cfg, device, dtype)
        return self._rope

    # -- the task embedding used for lookups

    @torch.no_grad()
    def task_embedding(self, tokens):
        """Mean-pooled embedding-layer vectors of the prompt, L2-normalized, fp32."""
        e = self.embed(tokens).float().mean(1)
        return F.normalize(e, dim=-1)

    # -- masks

    @staticmethod
    def causal_mask(t, device, dtype):
        m = torch.full((t, t), float("-inf"), device=device, dtype=dtype)
        return torch.triu(m, 1)

    @staticmethod
    def condensed_mask(t, device, dtype):
        """Middle layers: token i sees the null slot and condensed KV of tokens < i."""
        m = torch.full((t, t + 1), float("-inf"), device=device, dtype=dtype)
        m[:, 0] = 0
        m[:, 1:] = torch.triu(m[:, 1:], 0)      # keep -inf where j >= i
        return m

    def _with_null(self, k, v):
        z = k.new_zeros(k.shape[0], k.shape[1], 1, k.shape[3])
        return torch.cat([z, k], 2), torch.cat([z, v], 2)

    # -- prefill and decode

    @torch.no_grad()
    def prefill(self, tokens, iters, condensed=None):
        """Encode prompts (B, T). Returns (last-position logits, cache).

        condensed None: LCKV prompt encoding, `iters` passes of the middle and
        top layers starting from a zero condensed KV. condensed (K, V) given,
        each (B, kv_heads, T, head_dim): start from it instead (reuse of a
        similar task's condensed KV), normally with iters=1.
        cache: {"bottom": [(k, v)] * w, "top": [(k, v)] * w}; the condensed
        KV is cache["top"][-1].
        """
        b, t = tokens.shape
        dev, dt = tokens.device, self.embed.weight.dtype
        rope = self.rope(dev, dt)
        causal = self.causal_mask(t, dev, dt)
        cmask = self.condensed_mask(t, dev, dt)
        x = self.embed(tokens)
        bottom = []
        for blk in self.bottom:
            x, kv = blk(x, rope, 0, causal)
            bottom.append(kv)
        if condensed is None:
            shape = (b, self.cfg.kv_heads, t, self.cfg.head_dim)
            condensed = (torch.zeros(shape, device=dev, dtype=dt), torch.zeros(shape, device=dev, dtype=dt))
        for _ in range(iters):
            h = x
            ck = self._with_null(*condensed)
            for blk in self.middle:
                h, _ = blk(h, rope, 0, cmask, condensed=ck)
            top = []
            for blk in self.top:
                h, kv = blk(h, rope, 0, causal)
                top.append(kv)
            condensed = top[-1]
        logits = self.head(self.norm(h[:, -1]))
        return logits, {"bottom": bottom, "top": top}

    @torch.no_grad()
    def decode(self, cache, first_token, steps):
        """Greedy decode `steps` tokens after prefill; returns (B, steps) ids."""
        out = [first_token]
        tok = first_token[:, None]
        dt = self.embed.weight.dtype
        start = cache["top"][-1][0].shape[2]
        rope = self.rope(tok.device, dt)
        bottom, top = list(cache["bottom"]), list(cache["top"])
        for s in range(steps - 1):
            pos = start + s
            x = self.embed(tok)
            for i, blk in enumerate(self.bottom):
                x, bottom[i] = blk(x, rope, pos, None, past=bottom[i])
            ck = self._with_null(*top[-1])          # condensed KV of tokens < pos
            for blk in self.middle:
                x, _ = blk(x, rope, pos, None, condensed=ck)
            for i, blk in enumerate(self.top):
                x, top[i] = blk(x, rope, pos, None, past=top[i])
            tok = self.head(self.norm(x[:, -1])).argmax(-1)
            out.append(tok)
            tok = tok[:, None]
        return torch.stack(out, 1)
