#!/usr/bin/python3
"""make_sets.py - real-text embedding sets for the index benchmarks.

The one idea: the index must be measured on text it was never tuned on, so
this script turns documentation that any Debian machine can install into
"tasks" (short paragraphs), embeds them with one of three unrelated methods,
and writes base and held-out query vectors as .fvecs files (the FAISS/TEXMEX
format: per vector an int32 dimension, then that many float32). Exact truth
is not written here: bench_recall computes it by brute force in C, so the
figures never depend on this script's arithmetic.

Corpora (Debian packages):
  man     roff sources of every installed man page, all languages
          (/usr/share/man; packages manpages, manpages-dev and whatever else
          is installed), split into paragraphs
  pydoc   reStructuredText sources of the Python documentation
          (python3.11-doc: /usr/share/doc/python3.11/html/_sources)
  debdoc  Debian changelogs and copyright files (/usr/share/doc/*), which
          repeat themselves the way real request streams do

Embedding methods (all unsupervised, fitted on the corpus itself):
  srp       character 3-5-gram TF-IDF (hashed) through a sparse random
            projection: nearly isotropic, cosine ~ n-gram overlap
  lsa       word 1-2-gram TF-IDF reduced by truncated SVD (latent semantic
            analysis): topical, with a strong common direction
  wordmean  IDF-weighted mean of word vectors from an SVD of the corpus's
            PPMI co-occurrence matrix, like mean-pooled hidden states:
            strongly anisotropic (unrelated texts at cosine 0.5 and more)

  make_sets.py --corpus man --embed lsa --dim 1024 --base 60000 \
               --queries 2000 --seed 1 --out DIR

writes DIR/base.fvecs, DIR/query.fvecs and DIR/meta.txt. Queries are
paragraphs held out of the base (a random sample, so their mix of
near-duplicates, related and unrelated tasks is the corpus's own). With
--order topic the base is written in document order (a drifting stream, for
the churn benchmark); the default shuffles it.
"""
import argparse
import glob
import gzip
import html
import os
import re
import sys
import time

import numpy as np

MIN_WORDS, MAX_WORDS = 8, 300


def log(msg):
    print("make_sets: " + msg, file=sys.stderr, flush=True)


# ---- corpora: each yields (document name, paragraph text) in a fixed order ----

ROFF_TEXT_MACROS = re.compile(r"^\.(B|I|BR|BI|IB|IR|RB|RI|SM|SB|SH|SS|TP|IP|Nm|Nd|Ar|Fl|Op|Xr|Sh|Ss|Pa|Dq|Sq|Em|Li|Ql)\b\s*(.*)$")
ROFF_BREAK = re.compile(r"^\.(PP|P|LP|IP|TP|SH|SS|Pp|Sh|Ss|Bl|El|It|sp|br|nf|fi|TH|Dd|Dt)\b")
ROFF_ESC = re.compile(r"\\(f[BIRPC1-4]|f\(..|f\[[^\]]*\]|\(..|\[[^\]]*\]|\*\(..|\*\[[^\]]*\]|\*.|s[-+]?\d|[&|^~0 e%-])")


def open_text(path):
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, "rt", encoding="utf-8", errors="replace")


def roff_paragraphs(path):
    out, cur = [], []

    def flush():
        if cur:
            out.append(" ".join(cur))
            cur.clear()
    try:
        with open_text(path) as f:
            for line in f:
                line = line.rstrip("\n")
                if line.startswith(".\\\"") or line.startswith("'\\\""):
                    continue
                if line.strip() == "":
                    flush()
                    continue
                if line.startswith(".") or line.startswith("'"):
                    if ROFF_BREAK.match(line):
                        flush()
                    m = ROFF_TEXT_MACROS.match(line)
                    if not m:
                        continue
                    line = m.group(2).replace('"', "")
                line = ROFF_ESC.sub(lambda e: "-" if e.group(1) == "-" else " ", line)
                line = line.replace("\\", "")
                if line.strip():
                    cur.append(line.strip())
    except (OSError, EOFError, ValueError):
        return []
    flush()
    return out


def corpus_man():
    files = sorted(glob.glob("/usr/share/man/**/*.gz", recursive=True))
    for p in files:
        if os.path.islink(p):
            continue
        for para in roff_paragraphs(p):
            yield p, para


RST_MARKUP = re.compile(r":[a-z:]+:`([^`]*)`|``([^`]*)``|\*\*([^*]*)\*\*|`([^`]*)`_?")


def corpus_pydoc():
    root = "/usr/share/doc/python3.11/html/_sources"
    for p in sorted(glob.glob(root + "/**/*.txt", recursive=True)):
        with open_text(p) as f:
            text = f.read()
        for block in re.split(r"\n\s*\n", text):
            lines = [l.strip() for l in block.splitlines()]
            if not lines or lines[0].startswith(".."):
                continue
            if all(set(l) <= set("=-~^*#+\"'`:.") for l in lines if l):
                continue
            t = " ".join(l for l in lines if l and not set(l) <= set("=-~^*#+\"'`:."))
            t = RST_MARKUP.sub(lambda m: next(g for g in m.groups() if g is not None), t)
            yield p, t


def corpus_debdoc():
    files = sorted(glob.glob("/usr/share/doc/*/changelog.Debian.gz") +
                   glob.glob("/usr/share/doc/*/copyright"))
    for p in files:
        if os.path.islink(p):
            continue
        try:
            with open_text(p) as f:
                text = f.read()
        except OSError:
            continue
        if "changelog" in p:
            # One entry per release: the lines between a header and its trailer.
            for ent in re.split(r"\n(?=\S.*\(.*\).*;.*urgency=)", text):
                body = [l.strip(" *-") for l in ent.splitlines()[1:] if l.startswith("  ")]
                yield p, " ".join(x for x in body if x)
        else:
            for block in re.split(r"\n\s*\n", text):
                yield p, " ".join(l.strip().lstrip(".") for l in block.splitlines())


CORPORA = {"man": corpus_man, "pydoc": corpus_pydoc, "debdoc": corpus_debdoc}


def load_corpus(name, limit):
    seen, docs, names = set(), [], []
    for src, para in CORPORA[name]():
        para = html.unescape(re.sub(r"\s+", " ", para)).strip()
        nw = len(para.split())
        if nw < MIN_WORDS or nw > MAX_WORDS:
            continue
        # Exact repeats add nothing (a lookup of a stored text is trivial);
        # near-repeats stay, they are what the cache is for.
        if para in seen:
            continue
        seen.add(para)
        docs.append(para)
        names.append(src)
        if limit and len(docs) >= limit:
            break
    return docs, names


# ---- embeddings ----

def l2rows(x):
    x = np.asarray(x, dtype=np.float64)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    n[n == 0] = 1.0
    return (x / n).astype(np.float32)


def embed_srp(docs, dim, seed):
    from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
    from sklearn.random_projection import SparseRandomProjection
    hv = HashingVectorizer(analyzer="char_wb", ngram_range=(3, 5), n_features=1 << 20,
                           alternate_sign=False, norm=None, lowercase=True)
    x = hv.transform(docs)
    x = TfidfTransformer(sublinear_tf=True).fit_transform(x)
    rp = SparseRandomProjection(n_components=dim, random_state=seed, dense_output=True)
    return l2rows(rp.fit_transform(x))


def embed_lsa(docs, dim, seed):
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    tv = TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_features=400000,
                         sublinear_tf=True, token_pattern=r"(?u)\b\w[\w.-]*\w\b")
    x = tv.fit_transform(docs)
    k = min(dim, x.shape[1] - 1)
    z = TruncatedSVD(n_components=k, n_iter=3, random_state=seed).fit_transform(x)
    if k < dim:
        z = np.hstack([z, np.zeros((z.shape[0], dim - k))])
    return l2rows(z)


def embed_wordmean(docs, dim, seed):
    import scipy.sparse as sp
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import CountVectorizer
    cv = CountVectorizer(max_features=30000, min_df=3, lowercase=True)
    x = cv.fit_transform(docs).tocsr()
    x.data[:] = 1.0
    # Co-occurrence within a paragraph (a wide window), then PPMI.
    c = (x.T @ x).tocoo()
    total = c.data.sum()
    rs = np.asarray((x.T @ x).sum(axis=1)).ravel()
    pmi = np.log(np.maximum(c.data * total / (rs[c.row] * rs[c.col] + 1e-12), 1e-12))
    keep = (pmi > 0) & (c.row != c.col)
    m = sp.csr_matrix((pmi[keep], (c.row[keep], c.col[keep])), shape=c.shape)
    k = min(dim, m.shape[0] - 1)
    w = TruncatedSVD(n_components=k, n_iter=3, random_state=seed).fit_transform(m)
    w = np.asarray(w) / (np.linalg.norm(w, axis=1, keepdims=True) + 1e-12)
    if k < dim:
        w = np.hstack([w, np.zeros((w.shape[0], dim - k))])
    df = np.asarray(x.sum(axis=0)).ravel()
    idf = np.log((1 + x.shape[0]) / (1 + df)) + 1.0
    counts = cv.transform(docs).astype(np.float64)
    counts.data = np.log1p(counts.data)
    return l2rows(counts.multiply(idf[None, :]).tocsr() @ w)


EMBED = {"srp": embed_srp, "lsa": embed_lsa, "wordmean": embed_wordmean}


def write_fvecs(path, x):
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, d = x.shape
    rec = np.empty((n, d + 1), dtype=np.float32)
    rec[:, 0] = np.frombuffer(np.int32(d).tobytes(), dtype=np.float32)[0]
    rec[:, 1:] = x
    rec.tofile(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", choices=sorted(CORPORA), required=True)
    ap.add_argument("--embed", choices=sorted(EMBED), required=True)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--base", type=int, default=60000)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--order", choices=["shuffle", "topic"], default="shuffle")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    t0 = time.time()
    want = a.base + a.queries
    docs, names = load_corpus(a.corpus, 0)
    log("%s: %d paragraphs (%.1f s)" % (a.corpus, len(docs), time.time() - t0))
    if len(docs) < want:
        log("only %d paragraphs: base shrinks to %d" % (len(docs), len(docs) - a.queries))
    rng = np.random.default_rng(a.seed)
    pick = rng.permutation(len(docs))[:min(want, len(docs))]
    qsel, bsel = pick[:a.queries], pick[a.queries:]
    if a.order == "topic":
        bsel = np.sort(bsel)  # document order: topics drift through the stream
    sel = np.concatenate([bsel, qsel])
    sub = [docs[i] for i in sel]
    t1 = time.time()
    emb = EMBED[a.embed](sub, a.dim, a.seed)
    log("%s embedding of %d texts to %d dims (%.1f s)" % (a.embed, len(sub), a.dim, time.time() - t1))
    # A text with no known term embeds to zero, which simcache refuses
    # (SIMCACHE_EEMBED): leave those out of both sets.
    ok = np.linalg.norm(emb, axis=1) > 0
    nb = int(ok[:len(bsel)].sum())
    if not ok.all():
        log("%d texts embed to zero: left out" % int((~ok).sum()))
    qsel = qsel[ok[len(bsel):]]
    emb = emb[ok]
    os.makedirs(a.out, exist_ok=True)
    write_fvecs(os.path.join(a.out, "base.fvecs"), emb[:nb])
    write_fvecs(os.path.join(a.out, "query.fvecs"), emb[nb:])
    mu = emb[:nb].mean(axis=0)
    with open(os.path.join(a.out, "meta.txt"), "w") as f:
        f.write("corpus %s\nembed %s\ndim %d\nbase %d\nqueries %d\nseed %d\norder %s\n"
                "mean_norm2 %.4f\n" % (a.corpus, a.embed, a.dim, nb, len(qsel), a.seed,
                                       a.order, float(mu @ mu)))
    log("wrote %s (|mean|^2 %.3f, %.1f s in all)" % (a.out, float(mu @ mu), time.time() - t0))


if __name__ == "__main__":
    main()
