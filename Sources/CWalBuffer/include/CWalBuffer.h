#ifndef SLAM_CWALBUFFER_H
#define SLAM_CWALBUFFER_H

/*
 * A SQLite VFS shim that gathers a transaction's WAL frames into one write.
 *
 * SQLite writes each WAL frame as two pwrite calls (a 24-byte header, then the page), each
 * touching the file's pages in the kernel: a transaction of 30 pages costs 60 system calls and
 * about 90 page-cache operations before its one fsync. This VFS wraps the default one ("unix")
 * and, for WAL files only, gathers the frames a transaction appends into a buffer that goes to the
 * file in one pwrite (in pieces of at most 124 KiB)
 *   - when the frame that commits the transaction has been written (its header carries the
 *     database size); from then on every write goes to the file directly (SQLite may still
 *     rewrite frame headers, or append padding frames, before it publishes the commit) until
 *     the next transaction appends a frame that does not commit. So nothing is left in the
 *     buffer when SQLite publishes a commit to other connections in the wal-index (which it does
 *     without a call on the WAL file), whatever `synchronous` is;
 *   - before every sync, truncate, size query, file control or close, and before a read that
 *     overlaps it (a read of a frame still in the buffer sees it);
 *   - before the WAL's write lock is released (an unlock on the database file's shared memory,
 *     which is why main database files are wrapped too): a transaction that spilled frames and
 *     rolled back says nothing to the WAL file, and its frames must reach the file while its
 *     writer still holds the lock, never later over frames another writer has committed.
 * Main database files are otherwise passed through untouched; every other file (journals,
 * temporary files) is the default VFS's own.
 *
 * The buffer lives in the process: a crash loses only frames of a transaction that never
 * committed, as SQLite crashing mid-transaction would.
 */

/* Registers the VFS as the process's default (once; later calls do nothing). Returns SQLite's
   result code. Connections opened before keep the VFS they were opened with. */
int slam_walbuffer_register(void);

/* Turns SQLite's memory statistics off (SQLITE_CONFIG_MEMSTATUS 0) for the whole process: every
   SQLite allocation and free from the heap (Debian's SQLite has no lookaside allocator) otherwise
   takes one mutex shared by all the process's connections and looks the block's size up, for
   counters SLAM never reads (sqlite3_memory_used, the soft heap limit). Takes effect only before
   SQLite initializes (sqlite3_initialize: the first open, VFS lookup or registration, such as
   slam_walbuffer_register's): returns SQLITE_OK then, SQLITE_MISUSE after, when nothing changes.
   Not thread-safe (SQLite's sqlite3_config): call it before any thread uses SQLite. */
int slam_sqlite_memstatus_off(void);

/* The writes SQLite asked of the WAL file of connection `db` (its main database) through this
   VFS, and the writes that reached the file, since the WAL file was opened. SQLITE_NOTFOUND when
   the connection has no WAL file through this VFS. Call on the connection's own thread. */
typedef struct sqlite3 sqlite3;
int slam_walbuffer_connection_writes(sqlite3 *db, long long *asked, long long *written);

/* Fault injection, for tests: the next write that reaches the WAL file of connection `db` fails
   with SQLite result code `code` (e.g. SQLITE_FULL, as a full disk would), once. From a failed
   write on, every write, sync and read of that WAL file fails with that code until the WAL's
   write lock is released: a transaction whose buffered frames did not reach the file can never
   commit. (In locking_mode EXCLUSIVE, where that lock does not go through shared memory, the
   failure is answered once and not kept.) SQLITE_NOTFOUND when the connection has no WAL file
   through this VFS. Call on the connection's own thread. */
int slam_walbuffer_fail_next_write(sqlite3 *db, int code);

/* Syncs connection `db`'s main database file through SQLite's own handle of it (its xSync, as
   SQLite's checkpoints do; fdatasync on Linux), so the caller needs no descriptor of the file of
   its own: closing one would drop every POSIX lock the process holds on the file, SQLite's
   included (SQLite's unix VFS defers closing its own descriptors while the file is locked).
   Returns SQLite's result code (SQLITE_IOERR_FSYNC when the sync fails, with the system's errno
   in `*lastErrno`; SQLITE_NOTFOUND when the connection has no main file). Call on the
   connection's own thread. */
int slam_sync_main_file(sqlite3 *db, int *lastErrno);

/* Diagnostics (`slam serve --timings FILE`). CLOCK_MONOTONIC, in microseconds. */
double slam_monotonic_micros(void);

/* The calling thread's CPU time (CLOCK_THREAD_CPUTIME_ID), in microseconds. */
double slam_thread_cpu_micros(void);

/* From now on, times every sync of a WAL file or a main database file through this VFS, on any
   connection of the process (the writer's commits, the checkpoints, slam_sync_main_file), and
   keeps the latest `capacity` of them (40 bytes each, allocated here). Once on, it stays on; a
   later call does nothing. SQLITE_NOMEM when the records cannot be allocated. */
int slam_walbuffer_time_syncs(long capacity);

/* The calling thread's tag, kept with each sync it makes from now on (the writer sets 1 around a
   batch's commit, so that the commits' WAL syncs can be told from the checkpoints'). */
void slam_walbuffer_sync_tag(int tag);

/* How many syncs were timed since it was turned on (the latest `capacity` are kept). */
long slam_walbuffer_syncs_timed(void);

/* The `n`th sync timed (from 0): when it began (slam_monotonic_micros), how long it took, whether
   it was a WAL file's (1) or a database file's (0), and its thread's tag. SQLITE_RANGE when not
   timing; SQLITE_BUSY when that record is not there: still being written (its sync in flight), or
   overwritten by a later one. */
int slam_walbuffer_sync_timing(long n, double *at, double *micros, int *wal, int *tag);

#endif
