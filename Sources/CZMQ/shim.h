#ifndef SLAM_CZMQ_SHIM_H
#define SLAM_CZMQ_SHIM_H

#ifdef __linux__
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* sched_setaffinity and the CPU_* macros */
#endif
#include <sched.h>
#endif

#include <zmq.h>

/* Swift's Glibc module does not export eventfd or timerfd; ZMQ's Wakeup and PollTimer use them. */
#ifdef __linux__
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <sys/prctl.h>
#include <errno.h>

/* Names the calling thread (prctl is variadic, which Swift cannot call). */
static inline int slam_set_thread_name(const char *name) { return prctl(PR_SET_NAME, name, 0, 0, 0); }

/* Pins the calling thread to one CPU (the CPU_* macros are not visible to Swift). 0 or -1 and
   errno, as sched_setaffinity. */
static inline int slam_pin_calling_thread(int cpu) {
    if (cpu < 0 || cpu >= CPU_SETSIZE) { errno = EINVAL; return -1; }
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set);
}

/* Whether the calling thread may run on `cpu` (it is in its affinity mask). */
static inline int slam_cpu_allowed(int cpu) {
    cpu_set_t set;
    if (cpu < 0 || cpu >= CPU_SETSIZE || sched_getaffinity(0, sizeof set, &set) != 0) return 0;
    return CPU_ISSET(cpu, &set) ? 1 : 0;
}

/* The CPUs the calling thread may run on, in order, into `out` (at most `max`); returns how many. */
static inline int slam_allowed_cpus(int *out, int max) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return 0;
    int n = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE && n < max; cpu++) if (CPU_ISSET(cpu, &set)) out[n++] = cpu;
    return n;
}
#endif

#endif
