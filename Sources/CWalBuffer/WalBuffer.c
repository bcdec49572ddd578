#include "CWalBuffer.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Large enough for the biggest group-commit batch seen under the rush (about 1,000 frames of
   4,120 bytes); a larger transaction flushes whenever the buffer fills. */
#define WB_CAPACITY (4 * 1024 * 1024)
/* A WAL frame header: page number, then the database size in pages for a commit frame (0
   otherwise), salts and checksums. */
#define WB_FRAME_HEADER 24

typedef struct WbFile {
    sqlite3_file base;   /* base.pMethods = &wbMethods */
    sqlite3_file *real;  /* the default VFS's file, allocated right after this struct */
    unsigned char *buf;  /* allocated at the first write */
    sqlite3_int64 start; /* file offset of buf[0] */
    int len;
    int flushAfterNextWrite; /* a commit frame's header is buffered: its page comes next */
    /* Set once a commit frame is in the file: every write goes straight to the file (SQLite
       may still rewrite frame headers, walRewriteChecksums, or append padding frames before it
       publishes the commit) until the next transaction appends its first frame. */
    int afterCommit;
    sqlite3_int64 lastEnd; /* where the last write ended */
    int isWal;             /* a WAL file (buffered); otherwise a main database file (not) */
    long long asked, written; /* this WAL file's writes asked by SQLite, and made to the file */
    struct WbFile *peer;   /* a WAL file's database file, and the other way round */
    /* Set when a buffered write failed: SQLite took those frames as written (they were, into
       the buffer), and a transaction that goes on after the error (SQLite undoes only the
       statement on SQLITE_FULL, or sees a flush's failure as a read's) must never commit over
       them. Every write, sync and read of the WAL answers it until the WAL's write lock goes
       (the transaction is over), when it is cleared. Only while that lock was taken through
       shared memory (`shmWriteLocked`), the one end of a transaction this VFS sees: in
       locking_mode EXCLUSIVE, which SLAM does not use, a failed write is answered once and
       not kept (it would fail every later transaction of the connection). */
    int failed;
    int shmWriteLocked;
    int failNextWrite; /* fault injection for tests: the next write to the file fails with this */
} WbFile;

static sqlite3_vfs *root;
static sqlite3_vfs wbVfs;

/* The unix VFS writes at most 128 KiB - 1 bytes a call (it masks the length with 0x1ffff). */
#define WB_CHUNK (31 * 4096)

/* A write to the file (or the failure a test asked for). */
static int wbRealWrite(WbFile *f, const void *z, int amt, sqlite3_int64 off) {
    f->written++;
    if (f->failNextWrite) {
        int rc = f->failNextWrite;
        f->failNextWrite = 0;
        return rc;
    }
    return f->real->pMethods->xWrite(f->real, z, amt, off);
}

static int wbFlush(WbFile *f) {
    if (f->failed) return f->failed;
    int len = f->len;
    f->len = 0;
    for (int done = 0; done < len; done += WB_CHUNK) {
        int amt = len - done < WB_CHUNK ? len - done : WB_CHUNK;
        int rc = wbRealWrite(f, f->buf + done, amt, f->start + done);
        if (rc != SQLITE_OK) {
            if (f->shmWriteLocked) f->failed = rc;
            return rc;
        }
    }
    return SQLITE_OK;
}

/* Drops what is buffered. Only frames no commit refers to can be there when this is called (a
   commit frame empties the buffer, and SQLite publishes a commit only after that). */
static void wbDiscard(WbFile *f) {
    f->len = 0;
    f->flushAfterNextWrite = 0;
}

static int wbOverlaps(WbFile *f, sqlite3_int64 off, int amt) {
    return f->len > 0 && off < f->start + f->len && off + amt > f->start;
}

static int wbClose(sqlite3_file *file) {
    WbFile *f = (WbFile *)file;
    if (f->peer) f->peer->peer = 0;
    /* Closing may come after the shared-memory locks are gone (the WAL closes its wal-index
       first): whatever is left is of no commit, and is not written. */
    wbDiscard(f);
    int rc = f->real->pMethods->xClose(f->real);
    sqlite3_free(f->buf);
    f->buf = 0;
    return rc;
}

static int wbRead(sqlite3_file *file, void *z, int amt, sqlite3_int64 off) {
    WbFile *f = (WbFile *)file;
    if (f->failed) return f->failed;
    if (wbOverlaps(f, off, amt)) {
        int rc = wbFlush(f);
        if (rc != SQLITE_OK) return rc;
    }
    return f->real->pMethods->xRead(f->real, z, amt, off);
}

static int wbDirect(WbFile *f, const void *z, int amt, sqlite3_int64 off) {
    int rc = wbRealWrite(f, z, amt, off);
    if (rc != SQLITE_OK && f->shmWriteLocked) f->failed = rc;
    return rc;
}

/* The invariant: when SQLite publishes a commit to other connections (the wal-index header,
   which involves no call on the WAL file), nothing is left in the buffer. Only the frames a
   transaction appends before its commit frame are buffered; the commit frame's page flushes
   them, and from there every write goes to the file directly until the next transaction
   appends a frame that does not commit. */
static int wbWrite(sqlite3_file *file, const void *z, int amt, sqlite3_int64 off) {
    WbFile *f = (WbFile *)file;
    if (!f->isWal) return f->real->pMethods->xWrite(f->real, z, amt, off);
    f->asked++;
    if (f->failed) return f->failed;
    const unsigned char *bytes = (const unsigned char *)z;
    int header = amt == WB_FRAME_HEADER;
    int commitHeader = header && (bytes[4] | bytes[5] | bytes[6] | bytes[7]) != 0;
    int rc = SQLITE_OK;
    if (f->afterCommit) {
        /* A new transaction's first frame is appended where the last write ended; header
           rewrites and padding never start a non-commit frame there. */
        if (!(header && !commitHeader && off == f->lastEnd)) {
            rc = wbFlush(f);
            if (rc == SQLITE_OK) rc = wbDirect(f, z, amt, off);
            f->lastEnd = off + amt;
            return rc;
        }
        f->afterCommit = 0;
    }
    if (f->len > 0 && off >= f->start && off + amt <= f->start + f->len) {
        /* A frame of this transaction written again (SQLite rewrites a page's frame in place). */
        memcpy(f->buf + (off - f->start), z, (size_t)amt);
    } else if (f->len > 0 && off == f->start + f->len && f->len + amt <= WB_CAPACITY) {
        memcpy(f->buf + f->len, z, (size_t)amt);
        f->len += amt;
    } else {
        rc = wbFlush(f);
        if (rc != SQLITE_OK) return rc;
        if (!header) {
            rc = wbDirect(f, z, amt, off);
        } else {
            if (f->buf == 0) {
                f->buf = sqlite3_malloc(WB_CAPACITY);
                if (f->buf == 0) return SQLITE_NOMEM;
            }
            memcpy(f->buf, z, (size_t)amt);
            f->start = off;
            f->len = amt;
        }
    }
    f->lastEnd = off + amt;
    if (rc == SQLITE_OK && f->flushAfterNextWrite) {
        f->flushAfterNextWrite = 0;
        rc = wbFlush(f);
        f->afterCommit = 1;
    }
    if (rc == SQLITE_OK && commitHeader) f->flushAfterNextWrite = 1;
    return rc;
}

static int wbTruncate(sqlite3_file *file, sqlite3_int64 size) {
    WbFile *f = (WbFile *)file;
    int rc = wbFlush(f);
    if (rc != SQLITE_OK) return rc;
    return f->real->pMethods->xTruncate(f->real, size);
}

/* Sync timings (slam_walbuffer_time_syncs): a ring of the latest `syncCapacity` syncs. A sync
   claims a slot with an atomic counter, fills it, then publishes it by storing its sequence
   number (claim + 1) with release; a reader takes a record only when that number is the one it
   expects (acquire), so a sync still in flight, or a slot being reused, is never read half
   written. `syncTag` is the calling thread's: 1 while the writer commits a batch. */
typedef struct { double at; double micros; int wal; int tag; long seq; } SyncRecord;
static SyncRecord *syncRecords;
static long syncCapacity; /* 0: not timing */
static long syncClaimed;
static pthread_mutex_t syncEnable = PTHREAD_MUTEX_INITIALIZER;
static __thread int syncTag;

static double micros(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

double slam_monotonic_micros(void) { return micros(CLOCK_MONOTONIC); }

double slam_thread_cpu_micros(void) { return micros(CLOCK_THREAD_CPUTIME_ID); }

int slam_walbuffer_time_syncs(long capacity) {
    if (capacity <= 0) return SQLITE_MISUSE;
    int rc = SQLITE_OK;
    pthread_mutex_lock(&syncEnable);
    if (__atomic_load_n(&syncCapacity, __ATOMIC_ACQUIRE) == 0) {
        syncRecords = calloc((size_t)capacity, sizeof *syncRecords);
        if (syncRecords) __atomic_store_n(&syncCapacity, capacity, __ATOMIC_RELEASE);
        else rc = SQLITE_NOMEM;
    }
    pthread_mutex_unlock(&syncEnable);
    return rc;
}

void slam_walbuffer_sync_tag(int tag) { syncTag = tag; }

long slam_walbuffer_syncs_timed(void) { return __atomic_load_n(&syncClaimed, __ATOMIC_ACQUIRE); }

int slam_walbuffer_sync_timing(long n, double *at, double *micros, int *wal, int *tag) {
    long capacity = __atomic_load_n(&syncCapacity, __ATOMIC_ACQUIRE);
    if (capacity == 0 || n < 0) return SQLITE_RANGE;
    SyncRecord *r = &syncRecords[n % capacity];
    if (__atomic_load_n(&r->seq, __ATOMIC_ACQUIRE) != n + 1) return SQLITE_BUSY;
    *at = r->at;
    *micros = r->micros;
    *wal = r->wal;
    *tag = r->tag;
    /* Still the same record once read (not reused meanwhile). */
    return __atomic_load_n(&r->seq, __ATOMIC_ACQUIRE) == n + 1 ? SQLITE_OK : SQLITE_BUSY;
}

static int wbSync(sqlite3_file *file, int flags) {
    WbFile *f = (WbFile *)file;
    int rc = wbFlush(f);
    if (rc != SQLITE_OK) return rc;
    long capacity = __atomic_load_n(&syncCapacity, __ATOMIC_ACQUIRE);
    if (capacity == 0) return f->real->pMethods->xSync(f->real, flags);
    double started = slam_monotonic_micros();
    rc = f->real->pMethods->xSync(f->real, flags);
    double took = slam_monotonic_micros() - started;
    long i = __atomic_fetch_add(&syncClaimed, 1, __ATOMIC_ACQ_REL);
    SyncRecord *r = &syncRecords[i % capacity];
    __atomic_store_n(&r->seq, 0, __ATOMIC_RELEASE);
    r->at = started;
    r->micros = took;
    r->wal = f->isWal;
    r->tag = syncTag;
    __atomic_store_n(&r->seq, i + 1, __ATOMIC_RELEASE);
    return rc;
}

static int wbFileSize(sqlite3_file *file, sqlite3_int64 *size) {
    WbFile *f = (WbFile *)file;
    int rc = wbFlush(f);
    if (rc != SQLITE_OK) return rc;
    return f->real->pMethods->xFileSize(f->real, size);
}

static int wbLock(sqlite3_file *file, int lock) {
    WbFile *f = (WbFile *)file;
    return f->real->pMethods->xLock(f->real, lock);
}

static int wbUnlock(sqlite3_file *file, int lock) {
    WbFile *f = (WbFile *)file;
    /* In locking_mode EXCLUSIVE the WAL's write lock is never taken in shared memory, so
       wbShmLock does not see a rolled-back transaction end; leaving EXCLUSIVE unlocks the
       database file, and anything its WAL file still buffers is of no commit. */
    if (!f->isWal && f->peer) {
        wbDiscard(f->peer);
        f->peer->failed = 0;
    }
    return f->real->pMethods->xUnlock(f->real, lock);
}

static int wbCheckReservedLock(sqlite3_file *file, int *out) {
    WbFile *f = (WbFile *)file;
    return f->real->pMethods->xCheckReservedLock(f->real, out);
}

static int wbFileControl(sqlite3_file *file, int op, void *arg) {
    WbFile *f = (WbFile *)file;
    int rc = wbFlush(f);
    if (rc != SQLITE_OK) return rc;
    return f->real->pMethods->xFileControl(f->real, op, arg);
}

static int wbSectorSize(sqlite3_file *file) {
    WbFile *f = (WbFile *)file;
    return f->real->pMethods->xSectorSize(f->real);
}

static int wbDeviceCharacteristics(sqlite3_file *file) {
    WbFile *f = (WbFile *)file;
    return f->real->pMethods->xDeviceCharacteristics(f->real);
}

static int wbShmMap(sqlite3_file *file, int region, int size, int extend, void volatile **out) {
    WbFile *f = (WbFile *)file;
    return f->real->pMethods->xShmMap(f->real, region, size, extend, out);
}

/* The WAL's write lock (wal.c's WAL_WRITE_LOCK), a slot of the database file's shared memory. */
#define WB_WAL_WRITE_LOCK 0

static int wbShmLock(sqlite3_file *file, int offset, int n, int flags) {
    WbFile *f = (WbFile *)file;
    /* A transaction that spilled frames to the WAL and then rolled back (or failed before its
       commit frame) leaves them in its WAL file's buffer, and SQLite makes no call on the WAL
       file to say so. Before the write lock goes, they go to the file, as they would have
       without the buffer: never later, over frames another writer has committed since. (A
       failed write here loses only frames no commit refers to; the unlock must happen.) */
    if (!f->isWal && f->peer && (flags & SQLITE_SHM_UNLOCK) && (flags & SQLITE_SHM_EXCLUSIVE)
        && offset <= WB_WAL_WRITE_LOCK && WB_WAL_WRITE_LOCK < offset + n) {
        (void)wbFlush(f->peer);
        wbDiscard(f->peer);
        f->peer->failed = 0;
        f->peer->shmWriteLocked = 0;
    }
    int rc = f->real->pMethods->xShmLock(f->real, offset, n, flags);
    if (rc == SQLITE_OK && !f->isWal && f->peer && (flags & SQLITE_SHM_LOCK) && (flags & SQLITE_SHM_EXCLUSIVE)
        && offset <= WB_WAL_WRITE_LOCK && WB_WAL_WRITE_LOCK < offset + n) {
        f->peer->shmWriteLocked = 1;
    }
    return rc;
}

static void wbShmBarrier(sqlite3_file *file) {
    WbFile *f = (WbFile *)file;
    f->real->pMethods->xShmBarrier(f->real);
}

static int wbShmUnmap(sqlite3_file *file, int deleteFlag) {
    WbFile *f = (WbFile *)file;
    return f->real->pMethods->xShmUnmap(f->real, deleteFlag);
}

static int wbFetch(sqlite3_file *file, sqlite3_int64 off, int amt, void **out) {
    WbFile *f = (WbFile *)file;
    int rc = wbFlush(f);
    if (rc != SQLITE_OK) return rc;
    return f->real->pMethods->xFetch(f->real, off, amt, out);
}

static int wbUnfetch(sqlite3_file *file, sqlite3_int64 off, void *p) {
    WbFile *f = (WbFile *)file;
    return f->real->pMethods->xUnfetch(f->real, off, p);
}

static const sqlite3_io_methods wbMethods = {
    3, wbClose, wbRead, wbWrite, wbTruncate, wbSync, wbFileSize, wbLock, wbUnlock,
    wbCheckReservedLock, wbFileControl, wbSectorSize, wbDeviceCharacteristics,
    wbShmMap, wbShmLock, wbShmBarrier, wbShmUnmap, wbFetch, wbUnfetch,
};

static int wbOpen(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *outFlags) {
    (void)vfs;
    /* WAL files are buffered; main database files are wrapped only to see the WAL's write lock
       released (wbShmLock); every other file is the default VFS's own. */
    int isWal = (flags & SQLITE_OPEN_WAL) != 0;
    if (!isWal && !(flags & SQLITE_OPEN_MAIN_DB)) return root->xOpen(root, name, file, flags, outFlags);
    WbFile *f = (WbFile *)file;
    memset(f, 0, sizeof(*f));
    f->real = (sqlite3_file *)(f + 1);
    f->isWal = isWal;
    f->afterCommit = 1;
    f->lastEnd = -1;
    int rc = root->xOpen(root, name, f->real, flags, outFlags);
    if (rc != SQLITE_OK) {
        if (f->real->pMethods) f->real->pMethods->xClose(f->real);
        f->base.pMethods = 0;
        return rc;
    }
    /* A default VFS whose files lack the version-3 methods (not unix's) is left as it is. */
    if (f->real->pMethods->iVersion < 3) {
        f->real->pMethods->xClose(f->real);
        return root->xOpen(root, name, file, flags, outFlags);
    }
    f->base.pMethods = &wbMethods;
    if (isWal) {
        /* The WAL's name is the database's, so SQLite finds the database file it belongs to. */
        sqlite3_file *db = sqlite3_database_file_object(name);
        if (db && db->pMethods == &wbMethods) {
            WbFile *d = (WbFile *)db;
            if (d->peer) d->peer->peer = 0;
            d->peer = f;
            f->peer = d;
        }
    }
    return SQLITE_OK;
}

static int wbDelete(sqlite3_vfs *v, const char *name, int syncDir) { (void)v; return root->xDelete(root, name, syncDir); }
static int wbAccess(sqlite3_vfs *v, const char *name, int flags, int *out) { (void)v; return root->xAccess(root, name, flags, out); }
static int wbFullPathname(sqlite3_vfs *v, const char *name, int n, char *out) { (void)v; return root->xFullPathname(root, name, n, out); }
static void *wbDlOpen(sqlite3_vfs *v, const char *name) { (void)v; return root->xDlOpen(root, name); }
static void wbDlError(sqlite3_vfs *v, int n, char *msg) { (void)v; root->xDlError(root, n, msg); }
static void (*wbDlSym(sqlite3_vfs *v, void *h, const char *sym))(void) { (void)v; return root->xDlSym(root, h, sym); }
static void wbDlClose(sqlite3_vfs *v, void *h) { (void)v; root->xDlClose(root, h); }
static int wbRandomness(sqlite3_vfs *v, int n, char *out) { (void)v; return root->xRandomness(root, n, out); }
static int wbSleep(sqlite3_vfs *v, int us) { (void)v; return root->xSleep(root, us); }
static int wbCurrentTime(sqlite3_vfs *v, double *out) { (void)v; return root->xCurrentTime(root, out); }
static int wbGetLastError(sqlite3_vfs *v, int n, char *out) { (void)v; return root->xGetLastError(root, n, out); }
static int wbCurrentTimeInt64(sqlite3_vfs *v, sqlite3_int64 *out) { (void)v; return root->xCurrentTimeInt64(root, out); }
static int wbSetSystemCall(sqlite3_vfs *v, const char *name, sqlite3_syscall_ptr p) { (void)v; return root->xSetSystemCall(root, name, p); }
static sqlite3_syscall_ptr wbGetSystemCall(sqlite3_vfs *v, const char *name) { (void)v; return root->xGetSystemCall(root, name); }
static const char *wbNextSystemCall(sqlite3_vfs *v, const char *name) { (void)v; return root->xNextSystemCall(root, name); }

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int registerResult = SQLITE_OK;

static void wbRegister(void) {
    root = sqlite3_vfs_find(0);
    if (root == 0) { registerResult = SQLITE_ERROR; return; }
    if (root->iVersion < 3) { registerResult = SQLITE_OK; return; } /* not unix: leave it */
    wbVfs.iVersion = 3;
    wbVfs.szOsFile = (int)sizeof(WbFile) + root->szOsFile;
    wbVfs.mxPathname = root->mxPathname;
    wbVfs.zName = "slam-walbuffer";
    wbVfs.pAppData = 0;
    wbVfs.xOpen = wbOpen;
    wbVfs.xDelete = wbDelete;
    wbVfs.xAccess = wbAccess;
    wbVfs.xFullPathname = wbFullPathname;
    wbVfs.xDlOpen = wbDlOpen;
    wbVfs.xDlError = wbDlError;
    wbVfs.xDlSym = wbDlSym;
    wbVfs.xDlClose = wbDlClose;
    wbVfs.xRandomness = wbRandomness;
    wbVfs.xSleep = wbSleep;
    wbVfs.xCurrentTime = wbCurrentTime;
    wbVfs.xGetLastError = wbGetLastError;
    wbVfs.xCurrentTimeInt64 = wbCurrentTimeInt64;
    wbVfs.xSetSystemCall = wbSetSystemCall;
    wbVfs.xGetSystemCall = wbGetSystemCall;
    wbVfs.xNextSystemCall = wbNextSystemCall;
    registerResult = sqlite3_vfs_register(&wbVfs, 1);
}

int slam_walbuffer_register(void) {
    pthread_once(&once, wbRegister);
    return registerResult;
}


int slam_walbuffer_connection_writes(sqlite3 *db, long long *asked, long long *written) {
    sqlite3_file *file = 0;
    int rc = sqlite3_file_control(db, "main", SQLITE_FCNTL_FILE_POINTER, &file);
    if (rc != SQLITE_OK) return rc;
    if (file == 0 || file->pMethods != &wbMethods || ((WbFile *)file)->peer == 0) return SQLITE_NOTFOUND;
    WbFile *wal = ((WbFile *)file)->peer;
    *asked = wal->asked;
    *written = wal->written;
    return SQLITE_OK;
}

int slam_sync_main_file(sqlite3 *db, int *lastErrno) {
    sqlite3_file *file = 0;
    *lastErrno = 0;
    int rc = sqlite3_file_control(db, "main", SQLITE_FCNTL_FILE_POINTER, &file);
    if (rc != SQLITE_OK) return rc;
    if (file == 0 || file->pMethods == 0) return SQLITE_NOTFOUND;
    rc = file->pMethods->xSync(file, SQLITE_SYNC_NORMAL);
    if (rc != SQLITE_OK) sqlite3_file_control(db, "main", SQLITE_FCNTL_LAST_ERRNO, lastErrno);
    return rc;
}

int slam_walbuffer_fail_next_write(sqlite3 *db, int code) {
    sqlite3_file *file = 0;
    int rc = sqlite3_file_control(db, "main", SQLITE_FCNTL_FILE_POINTER, &file);
    if (rc != SQLITE_OK) return rc;
    if (file == 0 || file->pMethods != &wbMethods || ((WbFile *)file)->peer == 0) return SQLITE_NOTFOUND;
    ((WbFile *)file)->peer->failNextWrite = code;
    return SQLITE_OK;
}

int slam_sqlite_memstatus_off(void) {
    return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}
