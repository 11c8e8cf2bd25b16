/* disk.h - the disk tier: blob bytes in one preallocated file, their durable
 * records in LMDB, LRU over both.
 *
 * A blob is written (and, with sync on, flushed) before the LMDB transaction
 * that points to it commits, so a record never names bytes that were not
 * written; a checksum (XXH3-64, given by the caller) is checked before any
 * blob is handed back, so torn or flipped bytes are dropped, never served.
 * Free space of the blob file is not stored: it is rebuilt at open from the
 * records (extent allocator, storage/alloc.h).
 *
 * Files in dir: blobs.dat (the blob file, `capacity` bytes) and disk.lmdb/
 * (LMDB environment: named databases "entries", id -> record, and "meta",
 * short key -> value, holding "format" = DISK_FORMAT).
 *
 * I/O goes through io_uring with O_DIRECT when the filesystem allows it
 * (buffered pread/pwrite otherwise; disk_get_stats() tells). disk_put,
 * disk_get and disk_verify submit and wait inside the call (synchronous);
 * disk_read_async reads on a second ring whose completions signal an
 * eventfd, for the caller's event loop (disk_event_fd, disk_reap). A blob
 * being read asynchronously is never evicted, and a record deleted or
 * replaced meanwhile keeps its extent reserved until the read completes
 * (the read then reports -ENOENT), so no other blob is written under it.
 *
 * Buffers handed to disk_put/disk_get must be 4096-aligned and hold
 * disk_padded(len) bytes (blobs are padded to 4 KiB on disk).
 *
 * Not thread-safe: one thread drives a disk_t (LMDB: one writer).
 */
#ifndef SIMCACHE_DISK_H
#define SIMCACHE_DISK_H

#include <stddef.h>
#include <stdint.h>

#define DISK_FORMAT 1u
#define DISK_ALIGN 4096u

typedef struct disk disk_t;

typedef enum {
    DISK_DROP_EVICTED = 1,    /* LRU: made room for a newer blob */
    DISK_DROP_CORRUPT = 2,    /* checksum failed (read, verify) or record invalid at open */
} disk_drop_reason_t;

/* Called once per entry the disk tier drops by itself (never for
 * disk_delete, never from disk_close). It may read the disk tier
 * (disk_has, disk_get_stats) but must not change it. */
typedef void (*disk_drop_cb)(void *ctx, uint64_t id, disk_drop_reason_t why);

typedef struct {
    const char *dir;          /* data directory (must exist) */
    uint64_t capacity;        /* blob file bytes, rounded down to 4096; > 0 */
    int sync;                 /* flush blob + LMDB on every put (durable puts) */
    uint64_t map_size;        /* initial LMDB map bytes; 0 = 64 MiB (grows on demand) */
    uint64_t max_map_size;    /* growth limit; 0 = 64 GiB */
    disk_drop_cb on_drop;
    void *ctx;
} disk_config_t;

typedef struct {
    uint64_t capacity;
    uint64_t bytes_used;      /* padded bytes of the blob file in use */
    uint64_t entries;
    uint64_t writes, reads;
    uint64_t evictions;
    uint64_t checksum_failures;  /* blobs dropped as corrupt (read, verify, open) */
    uint64_t write_errors;    /* puts refused for I/O errors or a full map */
    uint64_t map_size;        /* current LMDB map size */
    uint64_t async_reads;     /* disk_read_async calls accepted */
    uint64_t reads_inflight;  /* ... not yet completed */
    uint64_t async_writes;    /* disk_write_async calls accepted */
    uint64_t writes_inflight; /* ... not yet completed */
    int direct;               /* 1: O_DIRECT, 0: buffered */
    int uring;                /* 1: io_uring, 0: pread/pwrite */
    int async;                /* 1: disk_read_async available */
    uint64_t fixed_bytes;     /* caller memory registered with io_uring (disk_fixed_add) */
    uint64_t fixed_ios;       /* asynchronous chunks read or written through it */
} disk_stats_t;

/* Open (create if missing) the disk tier in cfg->dir and load every record:
 * a record whose extent is out of range, overlaps another, or lies past the
 * end of a truncated blob file is dropped (counted in checksum_failures; no
 * callback: nobody knows the entry yet). Stale LMDB readers are cleared.
 * An existing data.mdb is checked first, in a child process (every page
 * read, every record deleted in a transaction that is aborted), and a few
 * records' blobs are read back: a damaged data.mdb, or one that does not
 * match blobs.dat (none of at least two records read verifies), is refused
 * (err says so and names disk_recover's flag, --recover), never trusted.
 * Returns NULL and fills err on failure (directory not writable, blob file
 * locked by another open disk tier, format version unknown, data.mdb
 * damaged or mismatched, no memory). Free with disk_close(). */
disk_t *disk_open(const disk_config_t *cfg, char *err, size_t errlen);
/* What disk_recover found. */
typedef struct {
    uint64_t records;         /* records read from the old data.mdb */
    uint64_t kept;            /* ... whose record and blob checksum verified: in the new one */
    uint64_t dropped;         /* ... unreadable, out of range, or failing their checksum */
    int walk_died;            /* 1: a bad page stopped the walk; it was read from both ends */
    char moved_to[340];       /* where the old data.mdb went ("" when there was none) */
} disk_recover_stats_t;

/* Rebuild the LMDB of the disk tier in cfg->dir (not open anywhere: the
 * blob file's lock is checked) from what verifies. The old data.mdb is read
 * in child processes (a bad page kills the child, not the caller): every
 * record whose header is sound and whose blob in blobs.dat matches its
 * checksum is kept, with the index seed; the rest is dropped. The old file
 * is moved aside to disk.lmdb/data.mdb.corrupt-YYYYMMDDTHHMMSSZ (kept for
 * the operator) and a fresh data.mdb is written; blobs.dat is not changed.
 * Without a data.mdb it does nothing. Returns 0 (st filled), or a negative
 * errno with err filled (-EBUSY: another process holds the directory). */
int disk_recover(const disk_config_t *cfg, disk_recover_stats_t *st, char *err, size_t errlen);

/* Complete asynchronous reads (disk_drain: their callbacks run), then flush
 * and close; no other callbacks. NULL is a no-op. */
void disk_close(disk_t *d);

/* Bytes a blob of len bytes takes on disk (and in I/O buffers). */
uint64_t disk_padded(uint64_t len);

/* Store blob `buf` (len bytes, checksum its XXH3-64) with the caller's
 * opaque record `rec` (rec_len bytes, copied) under nonzero id. Replaces an
 * existing id. Evicts LRU blobs (on_drop DISK_DROP_EVICTED) to make room.
 * Errors: -EINVAL (id 0, len 0, misaligned buf), -EFBIG (over capacity),
 * -ENOSPC (no room, or LMDB map full at its limit), -EIO (write failed;
 * nothing recorded), -ENOMEM. On error the id is not on disk. */
int disk_put(disk_t *d, uint64_t id, const void *buf, uint64_t len, uint64_t checksum,
             const void *rec, uint32_t rec_len);

/* Read blob id into dst (4096-aligned, disk_padded(len) bytes) and verify
 * its checksum. Marks it most recently used. *len (may be NULL) gets the
 * blob length. Errors: -ENOENT, -EBADMSG (checksum failed: the entry is
 * dropped, on_drop DISK_DROP_CORRUPT runs first), -EIO, -EINVAL. */
int disk_get(disk_t *d, uint64_t id, void *dst, uint64_t *len);

/* Length and checksum of blob id; -ENOENT if absent. Either may be NULL. */
int disk_info(const disk_t *d, uint64_t id, uint64_t *len, uint64_t *checksum);
int disk_has(const disk_t *d, uint64_t id);

/* Remove id (no callback). -ENOENT if absent, -EIO if LMDB refused. */
int disk_delete(disk_t *d, uint64_t id);

/* Visit every record (unordered); stop when fn returns nonzero. rec points
 * into LMDB (valid during the call only). fn must not change the disk tier:
 * collect ids and disk_delete() afterwards. */
int disk_foreach(disk_t *d,
                 int (*fn)(void *arg, uint64_t id, uint64_t len, uint64_t checksum,
                           uint64_t created_us, const void *rec, uint32_t rec_len),
                 void *arg);

/* Read every blob and check its checksum; corrupt ones are dropped (on_drop
 * DISK_DROP_CORRUPT). Returns how many were bad, or a negative errno. */
int64_t disk_verify(disk_t *d, uint64_t *checked);

/* Flush the blob file and LMDB to stable storage. 0 or -EIO. */
int disk_sync(disk_t *d);

/* Asynchronous read of blob id into dst (4096-aligned, disk_padded(len)
 * bytes; the caller keeps it valid until the callback). The blob is read in
 * 1 MiB chunks, many in flight. cb runs from disk_reap() (or disk_drain())
 * once the whole blob is in and its checksum was checked, with rc: 0 (blob
 * marked most recently used), -EBADMSG (checksum failed: dropped, on_drop
 * DISK_DROP_CORRUPT ran first), -ENOENT (the record was deleted, replaced or
 * dropped meanwhile: dst holds nothing of use), -EIO. cb may call any disk_*
 * function but disk_drain and disk_close. Returns 0 (cb will run exactly
 * once), -ENOENT, -EINVAL, -ENOMEM, -EOPNOTSUPP (no async ring: use
 * disk_get). */
typedef void (*disk_read_cb)(void *arg, uint64_t id, int rc);
int disk_read_async(disk_t *d, uint64_t id, void *dst, disk_read_cb cb, void *arg);
/* Asynchronous write of a new blob: buf (4096-aligned, disk_padded(len)
 * bytes; the caller keeps it valid and unchanged until the callback) is
 * written in chunks on the same ring as the reads; once every chunk is on
 * disk (and flushed, for a sync tier) the record (rec, copied now) is
 * committed to LMDB and the blob is most recently used. cb runs from
 * disk_reap()/disk_drain() with rc 0, -ECANCELED (disk_put or disk_delete of
 * id meanwhile: nothing recorded, the caller's newer call wins), -ENOSPC
 * (LMDB full), -EIO, -ENOMEM. Until then id is not on disk (disk_has 0).
 * The extent is reserved (evicting LRU blobs) now. Returns 0 (cb will run
 * exactly once), -EEXIST (id already on disk), -EBUSY (a write of id in
 * flight), -EFBIG, -ENOSPC, -EINVAL, -ENOMEM, -EOPNOTSUPP (no async ring). */
int disk_write_async(disk_t *d, uint64_t id, const void *buf, uint64_t len, uint64_t checksum,
                     const void *rec, uint32_t rec_len, disk_read_cb cb, void *arg);
/* Cancel the asynchronous write of id, if one is in flight (its buffer is
 * about to change): it records nothing and calls back -ECANCELED. */
void disk_cancel_write(disk_t *d, uint64_t id);
/* The eventfd that becomes readable when completions wait (nonblocking), or
 * -1 without async reads. Watch it for reading and call disk_reap(). */
int disk_event_fd(const disk_t *d);
/* Clear the eventfd, take every completion (running callbacks) and submit
 * queued chunks. Returns how many completions were taken. */
int disk_reap(disk_t *d);
/* Wait until every asynchronous read and write has completed (callbacks run). */
void disk_drain(disk_t *d);

/* Registered buffers for the asynchronous ring. Without them the kernel pins
 * the destination's pages on every request, which for shared memory (the
 * host arena is a memfd) costs about a third of a 2 MiB read on the VMs we
 * measured (docs/benchmarks.md). disk_fixed_init declares [base, base + len)
 * (page aligned) as the region asynchronous I/O will mostly use and cuts it
 * into pieces of a power-of-two size (64 MiB up to 1 GiB, the kernel's limit
 * per buffer), returned in *piece; it returns the number of pieces, or a
 * negative errno (no asynchronous ring, kernel without sparse buffer
 * tables). disk_fixed_add registers piece i: it pins the piece's pages
 * (faulting them in; counted against RLIMIT_MEMLOCK without CAP_IPC_LOCK)
 * and may be called from another thread than the one driving d, once per
 * piece, while I/O runs. Returns 0 or a negative errno (-ENOMEM: over the
 * memory-lock limit). A chunk wholly inside a registered piece is then read
 * or written with IORING_OP_READ_FIXED/WRITE_FIXED; any other buffer goes
 * as before. Registered pages stay pinned until disk_close. */
int disk_fixed_init(disk_t *d, void *base, uint64_t len, uint64_t *piece);
int disk_fixed_add(disk_t *d, uint32_t i);

/* Small named values in the "meta" database (key <= 64 bytes). get returns
 * the value length (copied up to cap) or -ENOENT. */
int disk_meta_put(disk_t *d, const char *key, const void *val, uint32_t len);
int disk_meta_get(disk_t *d, const char *key, void *val, uint32_t cap);

void disk_get_stats(const disk_t *d, disk_stats_t *st);

/* The last error's detail (LMDB or I/O), for the caller's log. */
const char *disk_errstr(const disk_t *d);

#endif
