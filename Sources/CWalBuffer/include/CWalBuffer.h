#ifndef SLAM_CWALBUFFER_H
#define SLAM_CWALBUFFER_H

/*
 * A SQLite VFS shim that gathers a transaction's WAL frames into one write.
 *
 * SQLite writes each WAL frame as two pwrite calls (a 24-byte header, then the page), each
 * touching the file's pages in the kernel: a transaction of 30 pages costs 60 system calls and
 * about 90 page-cache operations before its one fsync. This VFS wraps the default one ("unix")
 * and, for WAL files only, appends contiguous writes to a buffer that goes to the file in one
 * pwrite
 *   - when the frame that commits a transaction has been written (its header carries the
 *     database size), so the frames are in the file before SQLite publishes them to other
 *     connections in the wal-index, whatever `synchronous` is;
 *   - before every sync, truncate, size query or close, and before a read or a write that the
 *     buffer does not continue (a read of a frame still in the buffer sees it).
 * Every other file (the database, its shared memory, temporary files) is the default VFS's own.
 *
 * The buffer lives in the process: a crash loses only frames of a transaction that never
 * committed, as SQLite crashing mid-transaction would.
 */

/* Registers the VFS as the process's default (once; later calls do nothing). Returns SQLite's
   result code. Connections opened before keep the VFS they were opened with. */
int slam_walbuffer_register(void);

/* Since the process started: writes SQLite asked of WAL files through this VFS, and the writes
   that reached the files. */
long long slam_walbuffer_requested_writes(void);
long long slam_walbuffer_file_writes(void);

#endif
