#ifndef SLAM_CZMQ_SHIM_H
#define SLAM_CZMQ_SHIM_H

#include <zmq.h>

/* Swift's Glibc module does not export eventfd; ZMQ's Wakeup uses it. */
#ifdef __linux__
#include <sys/eventfd.h>
#endif

#endif
