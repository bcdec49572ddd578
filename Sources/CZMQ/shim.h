#ifndef SLAM_CZMQ_SHIM_H
#define SLAM_CZMQ_SHIM_H

#include <zmq.h>

/* Swift's Glibc module does not export eventfd or timerfd; ZMQ's Wakeup and PollTimer use them. */
#ifdef __linux__
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <sys/prctl.h>

/* Names the calling thread (prctl is variadic, which Swift cannot call). */
static inline int slam_set_thread_name(const char *name) { return prctl(PR_SET_NAME, name, 0, 0, 0); }
#endif

#endif
