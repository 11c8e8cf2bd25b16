/* alloc.c - best-fit extent allocator with coalescing, over treaps.
 *
 * Each free extent (in units of `align` bytes) is one node that sits in two
 * treaps at once: by (len, start) to find the best fit, by start to find the
 * neighbours to coalesce with. Free extents are always maximal, except that
 * none straddles the limit and two never merge across it; extents at or past
 * the limit are "fenced": in the offset treap only, so never handed out.
 *
 * Releasing must not fail, so nodes come from a spare pool that reserve keeps
 * topped up. Holes and reserved extents alternate along the range, so there
 * are at most reserved + 1 holes, plus one where the limit splits a hole:
 * keeping (nodes owned) >= reserved + 2 means release and set_limit always
 * find a spare node when extents are released as they were reserved.
 */
#include "alloc.h"

#include <errno.h>
#include <stdlib.h>

enum { BY_SIZE = 0, BY_OFF = 1 };
enum { LEFT = 0, RIGHT = 1 };

/* Spare nodes kept beyond the guaranteed minimum, so that alternating
 * reserve/release does not call malloc every time. */
#define SPARE_SLACK 64

typedef struct extent {
    uint64_t start;                /* units */
    uint64_t len;                  /* units, > 0 */
    uint32_t prio;                 /* treap heap key, random */
    int fenced;                    /* at or past the limit: not in BY_SIZE */
    struct extent *kid[2][2];      /* [BY_SIZE|BY_OFF][LEFT|RIGHT] */
} extent_t;

struct alloc {
    unsigned shift;                /* log2(align) */
    uint64_t units;                /* capacity in units */
    uint64_t limit;                /* units; extents below it are handed out */
    extent_t *root[2];
    extent_t *spare;               /* pool, linked through kid[0][0] */
    uint64_t spares;
    uint64_t owned;                /* nodes in the treaps plus spares */
    uint64_t reserved;             /* extents out */
    uint64_t free_units;           /* usable (unfenced) free units */
    uint64_t free_count;           /* usable holes */
    uint32_t rng;
};

/* ---- treaps ------------------------------------------------------------ */

static int key_less(int t, const extent_t *a, const extent_t *b)
{
    if (t == BY_SIZE && a->len != b->len)
        return a->len < b->len;
    return a->start < b->start;
}

/* Lift root->kid[t][side] above root; returns the new subtree root. */
static extent_t *rotate(int t, extent_t *root, int side)
{
    extent_t *up = root->kid[t][side];

    root->kid[t][side] = up->kid[t][!side];
    up->kid[t][!side] = root;
    return up;
}

static extent_t *tr_insert(int t, extent_t *root, extent_t *n)
{
    int side;

    if (root == NULL) {
        n->kid[t][LEFT] = n->kid[t][RIGHT] = NULL;
        return n;
    }
    side = key_less(t, n, root) ? LEFT : RIGHT;
    root->kid[t][side] = tr_insert(t, root->kid[t][side], n);
    if (root->kid[t][side]->prio > root->prio)
        root = rotate(t, root, side);
    return root;
}

/* Join two treaps where every key of a is below every key of b. */
static extent_t *tr_join(int t, extent_t *a, extent_t *b)
{
    if (a == NULL)
        return b;
    if (b == NULL)
        return a;
    if (a->prio > b->prio) {
        a->kid[t][RIGHT] = tr_join(t, a->kid[t][RIGHT], b);
        return a;
    }
    b->kid[t][LEFT] = tr_join(t, a, b->kid[t][LEFT]);
    return b;
}

/* Remove n, which must be in the treap (keys are unique). */
static extent_t *tr_remove(int t, extent_t *root, extent_t *n)
{
    int side;

    if (root == NULL)
        return NULL;
    if (root == n)
        return tr_join(t, n->kid[t][LEFT], n->kid[t][RIGHT]);
    side = key_less(t, n, root) ? LEFT : RIGHT;
    root->kid[t][side] = tr_remove(t, root->kid[t][side], n);
    return root;
}

/* Best fit: the smallest usable hole of at least len units, lowest start
 * among equals. */
static extent_t *size_ceil(const alloc_t *a, uint64_t len)
{
    extent_t *x = a->root[BY_SIZE], *best = NULL;

    while (x != NULL) {
        if (x->len >= len) {
            best = x;
            x = x->kid[BY_SIZE][LEFT];
        } else {
            x = x->kid[BY_SIZE][RIGHT];
        }
    }
    return best;
}

/* The hole with the greatest start <= u, or NULL. */
static extent_t *off_floor(const alloc_t *a, uint64_t u)
{
    extent_t *x = a->root[BY_OFF], *best = NULL;

    while (x != NULL) {
        if (x->start <= u) {
            best = x;
            x = x->kid[BY_OFF][RIGHT];
        } else {
            x = x->kid[BY_OFF][LEFT];
        }
    }
    return best;
}

/* The hole with the smallest start >= u, or NULL. */
static extent_t *off_ceil(const alloc_t *a, uint64_t u)
{
    extent_t *x = a->root[BY_OFF], *best = NULL;

    while (x != NULL) {
        if (x->start >= u) {
            best = x;
            x = x->kid[BY_OFF][LEFT];
        } else {
            x = x->kid[BY_OFF][RIGHT];
        }
    }
    return best;
}

/* The hole ending exactly at u, or NULL. */
static extent_t *hole_ending_at(const alloc_t *a, uint64_t u)
{
    extent_t *x;

    if (u == 0)
        return NULL;
    x = off_floor(a, u - 1);
    return x != NULL && x->start + x->len == u ? x : NULL;
}

/* The hole starting exactly at u, or NULL. */
static extent_t *hole_starting_at(const alloc_t *a, uint64_t u)
{
    extent_t *x = off_ceil(a, u);

    return x != NULL && x->start == u ? x : NULL;
}

/* ---- nodes and bookkeeping --------------------------------------------- */

static uint32_t next_prio(alloc_t *a)
{
    /* xorshift32: treap priorities only need to be unrelated to the keys. */
    uint32_t x = a->rng;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    a->rng = x;
    return x;
}

static int add_spare(alloc_t *a)
{
    extent_t *n = calloc(1, sizeof(*n));

    if (n == NULL)
        return -ENOMEM;
    n->prio = next_prio(a);
    n->kid[0][0] = a->spare;
    a->spare = n;
    a->spares++;
    a->owned++;
    return 0;
}

static int ensure_spares(alloc_t *a, uint64_t n)
{
    while (a->spares < n) {
        if (add_spare(a) != 0)
            return -ENOMEM;
    }
    return 0;
}

static extent_t *node_get(alloc_t *a)
{
    extent_t *n = a->spare;

    a->spare = n->kid[0][0];
    a->spares--;
    return n;
}

static void node_put(alloc_t *a, extent_t *n)
{
    n->kid[0][0] = a->spare;
    a->spare = n;
    a->spares++;
}

static void trim_spares(alloc_t *a)
{
    while (a->spares > 0 && a->owned > a->reserved + 2 + SPARE_SLACK) {
        extent_t *n = node_get(a);
        free(n);
        a->owned--;
    }
}

/* A hole's BY_SIZE membership follows its fenced flag; these two bracket any
 * change to a usable hole's length (the treap is keyed by it). */
static void size_detach(alloc_t *a, extent_t *n)
{
    if (n->fenced)
        return;
    a->root[BY_SIZE] = tr_remove(BY_SIZE, a->root[BY_SIZE], n);
    a->free_units -= n->len;
    a->free_count--;
}

static void size_attach(alloc_t *a, extent_t *n)
{
    if (n->fenced)
        return;
    a->root[BY_SIZE] = tr_insert(BY_SIZE, a->root[BY_SIZE], n);
    a->free_units += n->len;
    a->free_count++;
}

/* Merge the hole ending at u with the one starting at u, if both exist.
 * Only called where u is not the limit, so both have the same fencing. */
static void merge_at(alloc_t *a, uint64_t u)
{
    extent_t *l = hole_ending_at(a, u);
    extent_t *r = hole_starting_at(a, u);

    if (l == NULL || r == NULL)
        return;
    size_detach(a, l);
    size_detach(a, r);
    a->root[BY_OFF] = tr_remove(BY_OFF, a->root[BY_OFF], r);
    l->len += r->len;
    node_put(a, r);
    size_attach(a, l);
}

/* Neighbours [s, e) may coalesce with: none across the limit. */
static extent_t *left_of(const alloc_t *a, uint64_t s)
{
    return s == a->limit ? NULL : hole_ending_at(a, s);
}

static extent_t *right_of(const alloc_t *a, uint64_t e)
{
    return e == a->limit ? NULL : hole_starting_at(a, e);
}

/* Add [s, e) as free space; it must not straddle the limit nor overlap a
 * hole, and a spare node must exist if it has no neighbour. */
static void add_free(alloc_t *a, uint64_t s, uint64_t e)
{
    extent_t *l = left_of(a, s);
    extent_t *r = right_of(a, e);
    extent_t *n;

    if (l != NULL && r != NULL) {
        size_detach(a, l);
        size_detach(a, r);
        a->root[BY_OFF] = tr_remove(BY_OFF, a->root[BY_OFF], r);
        l->len += (e - s) + r->len;
        node_put(a, r);
        size_attach(a, l);
    } else if (l != NULL) {
        size_detach(a, l);
        l->len += e - s;
        size_attach(a, l);
    } else if (r != NULL) {
        /* Growing r leftwards keeps its place in start order. */
        size_detach(a, r);
        r->start = s;
        r->len += e - s;
        size_attach(a, r);
    } else {
        n = node_get(a);
        n->start = s;
        n->len = e - s;
        n->fenced = s >= a->limit;
        a->root[BY_OFF] = tr_insert(BY_OFF, a->root[BY_OFF], n);
        size_attach(a, n);
    }
}

/* Units for a request of size bytes; 0 if size is 0 or too large. */
static uint64_t units_for(const alloc_t *a, uint64_t size)
{
    uint64_t mask = ((uint64_t)1 << a->shift) - 1;
    uint64_t u = (size >> a->shift) + ((size & mask) != 0);

    if (u > (UINT64_MAX >> a->shift))
        return 0;
    return u;
}

/* ---- public API -------------------------------------------------------- */

alloc_t *alloc_new(uint64_t capacity, uint32_t align)
{
    alloc_t *a;
    unsigned shift = 0;

    if (align == 0 || (align & (align - 1)) != 0)
        return NULL;
    while (((uint64_t)1 << shift) < align)
        shift++;
    if ((capacity >> shift) == 0)
        return NULL;

    a = calloc(1, sizeof(*a));
    if (a == NULL)
        return NULL;
    a->shift = shift;
    a->units = capacity >> shift;
    a->limit = a->units;
    a->rng = 0x9e3779b9u;
    if (ensure_spares(a, 2) != 0) {
        alloc_free(a);
        return NULL;
    }
    add_free(a, 0, a->units);
    return a;
}

static void free_tree(extent_t *n)
{
    while (n != NULL) {
        extent_t *right = n->kid[BY_OFF][RIGHT];
        free_tree(n->kid[BY_OFF][LEFT]);
        free(n);
        n = right;
    }
}

void alloc_free(alloc_t *a)
{
    if (a == NULL)
        return;
    free_tree(a->root[BY_OFF]);
    while (a->spares > 0)
        free(node_get(a));
    free(a);
}

uint64_t alloc_round(const alloc_t *a, uint64_t size)
{
    return units_for(a, size) << a->shift;
}

int alloc_reserve(alloc_t *a, uint64_t size, uint64_t *off)
{
    uint64_t need = units_for(a, size);
    extent_t *x;

    if (need == 0)
        return -EINVAL;
    x = size_ceil(a, need);
    if (x == NULL)
        return -ENOSPC;
    /* Keep the node reserve that lets every later release succeed. */
    while (a->owned < a->reserved + 3) {
        if (add_spare(a) != 0)
            return -ENOMEM;
    }

    *off = x->start << a->shift;
    size_detach(a, x);
    if (x->len == need) {
        a->root[BY_OFF] = tr_remove(BY_OFF, a->root[BY_OFF], x);
        node_put(a, x);
    } else {
        x->start += need;
        x->len -= need;
        size_attach(a, x);
    }
    a->reserved++;
    return 0;
}

int alloc_reserve_at(alloc_t *a, uint64_t off, uint64_t size)
{
    uint64_t mask = ((uint64_t)1 << a->shift) - 1;
    uint64_t len = units_for(a, size);
    uint64_t s = off >> a->shift, e, xe;
    extent_t *x, *n;

    if (len == 0 || (off & mask) != 0 || s >= a->units || len > a->units - s)
        return -EINVAL;
    e = s + len;
    x = off_floor(a, s);
    if (x == NULL || x->fenced || x->start + x->len < e)
        return -EBUSY;
    /* One more node for the right part of a split hole. */
    while (a->owned < a->reserved + 4 || a->spares < 1) {
        if (add_spare(a) != 0)
            return -ENOMEM;
    }
    xe = x->start + x->len;
    size_detach(a, x);
    if (x->start == s) {
        a->root[BY_OFF] = tr_remove(BY_OFF, a->root[BY_OFF], x);
        node_put(a, x);
    } else {
        x->len = s - x->start;
        size_attach(a, x);
    }
    if (xe > e) {
        n = node_get(a);
        n->start = e;
        n->len = xe - e;
        n->fenced = 0;
        a->root[BY_OFF] = tr_insert(BY_OFF, a->root[BY_OFF], n);
        size_attach(a, n);
    }
    a->reserved++;
    return 0;
}

int alloc_release(alloc_t *a, uint64_t off, uint64_t size)
{
    uint64_t mask = ((uint64_t)1 << a->shift) - 1;
    uint64_t len = units_for(a, size);
    uint64_t s = off >> a->shift, e, need = 0;
    extent_t *x;

    if (len == 0 || (off & mask) != 0 || s >= a->units || len > a->units - s)
        return -EINVAL;
    e = s + len;
    /* The last hole starting before e must end at or before s. */
    x = off_floor(a, e - 1);
    if (x != NULL && x->start + x->len > s)
        return -EINVAL;
    if (a->reserved == 0)
        return -EINVAL;

    /* Count the nodes this needs before changing anything. With extents
     * released as reserved the pool always has them (see the file comment). */
    if (s < a->limit && e > a->limit) {
        need += left_of(a, s) == NULL;
        need += right_of(a, e) == NULL;
    } else {
        need += left_of(a, s) == NULL && right_of(a, e) == NULL;
    }
    if (ensure_spares(a, need) != 0)
        return -ENOMEM;

    if (s < a->limit && e > a->limit) {
        add_free(a, s, a->limit);
        add_free(a, a->limit, e);
    } else {
        add_free(a, s, e);
    }
    a->reserved--;
    trim_spares(a);
    return 0;
}

int alloc_set_limit(alloc_t *a, uint64_t limit)
{
    uint64_t nl = limit >> a->shift, old = a->limit;
    extent_t *x = NULL, *y, *tail;

    if (limit > (a->units << a->shift))
        return -EINVAL;
    if (nl == old)
        return 0;

    /* A hole straddling the new limit is split there. */
    if (nl > 0) {
        x = off_floor(a, nl - 1);
        if (x != NULL && x->start + x->len <= nl)
            x = NULL;
    }
    if (x != NULL && ensure_spares(a, 1) != 0)
        return -ENOMEM;

    if (nl < old) {
        a->limit = nl;
        if (x != NULL) {
            tail = node_get(a);
            size_detach(a, x);
            tail->start = nl;
            tail->len = x->start + x->len - nl;
            tail->fenced = 1;
            x->len = nl - x->start;
            size_attach(a, x);
            a->root[BY_OFF] = tr_insert(BY_OFF, a->root[BY_OFF], tail);
        }
        for (y = off_ceil(a, nl); y != NULL && y->start < old;
             y = off_ceil(a, y->start + y->len)) {
            if (!y->fenced) {
                size_detach(a, y);
                y->fenced = 1;
            }
        }
    } else {
        if (x != NULL) {
            /* x lies past the old limit, so it is fenced: no BY_SIZE work. */
            tail = node_get(a);
            tail->start = nl;
            tail->len = x->start + x->len - nl;
            tail->fenced = 1;
            x->len = nl - x->start;
            a->root[BY_OFF] = tr_insert(BY_OFF, a->root[BY_OFF], tail);
        }
        a->limit = nl;
        for (y = off_ceil(a, old); y != NULL && y->start < nl;
             y = off_ceil(a, y->start + y->len)) {
            if (y->fenced) {
                y->fenced = 0;
                size_attach(a, y);
            }
        }
    }
    /* The old limit no longer separates anything. */
    if (old > 0 && old < a->units)
        merge_at(a, old);
    trim_spares(a);
    return 0;
}

void alloc_get_stats(const alloc_t *a, alloc_stats_t *st)
{
    const extent_t *x = a->root[BY_SIZE];

    while (x != NULL && x->kid[BY_SIZE][RIGHT] != NULL)
        x = x->kid[BY_SIZE][RIGHT];
    st->capacity = a->units << a->shift;
    st->limit = a->limit << a->shift;
    st->align = (uint64_t)1 << a->shift;
    st->free_bytes = a->free_units << a->shift;
    st->free_extents = a->free_count;
    st->largest_free = x != NULL ? x->len << a->shift : 0;
    st->reserved = a->reserved;
}

static int walk_free(const alloc_t *a, const extent_t *n,
                     int (*fn)(void *, uint64_t, uint64_t, int), void *arg)
{
    while (n != NULL) {
        if (walk_free(a, n->kid[BY_OFF][LEFT], fn, arg))
            return 1;
        if (fn(arg, n->start << a->shift, n->len << a->shift, n->fenced))
            return 1;
        n = n->kid[BY_OFF][RIGHT];
    }
    return 0;
}

void alloc_foreach_free(const alloc_t *a,
                        int (*fn)(void *arg, uint64_t off, uint64_t size, int fenced),
                        void *arg)
{
    walk_free(a, a->root[BY_OFF], fn, arg);
}
