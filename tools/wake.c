// tools/wake.c: how long waking a thread on the other CPU takes (a machine's probe, not SLAM's).
// Thread A on CPU 0 writes a byte to a pipe; thread B on CPU 1, blocked in read, wakes and writes it
// back; A times the round trip. Between rounds A sleeps GAP us, so that CPU 1 goes idle (on a
// virtual machine that does not poll before halting, a halted CPU is woken by the host). Prints
// p50/p90/p99/max of the round trips in us. On the README's machine a gap of 200 us gave about
// 40 us at the median in its fast hours and 51-61 us in its slower ones (docs/benchmark-history.md).
//
//   clang -O2 -pthread tools/wake.c -o /tmp/wake && /tmp/wake 5000 200
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
static int ab[2], ba[2];
static int N, GAP;
// A thread not on its CPU would measure nothing of what this is for (a machine with one CPU, or a
// mask from taskset): said, and exit 2.
static void pin(int c) {
    cpu_set_t s; CPU_ZERO(&s); CPU_SET(c, &s);
    if (pthread_setaffinity_np(pthread_self(), sizeof s, &s) != 0) { fprintf(stderr, "wake: cannot run on CPU %d\n", c); exit(2); }
}
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e6 + t.tv_nsec / 1e3; }
static void *b(void *x) { pin(1); char c; for (int i = 0; i < N; i++) { if (read(ab[0], &c, 1) != 1) break; if (write(ba[1], &c, 1) != 1) break; } return 0; }
static int cmp(const void *x, const void *y) { double a = *(double *)x, b = *(double *)y; return a < b ? -1 : a > b; }
int main(int argc, char **argv) {
    N = argc > 1 ? atoi(argv[1]) : 5000; GAP = argc > 2 ? atoi(argv[2]) : 200;
    if (N < 1 || GAP < 0) { fprintf(stderr, "usage: wake [ROUND_TRIPS >= 1] [GAP_US >= 0]\n"); return 2; }
    if (pipe(ab) || pipe(ba)) return 1;
    pthread_t t; pthread_create(&t, 0, b, 0); pin(0);
    double *rt = malloc(sizeof(double) * N); char c = 'x';
    for (int i = 0; i < N; i++) {
        if (GAP) usleep(GAP);
        double t0 = now();
        if (write(ab[1], &c, 1) != 1 || read(ba[0], &c, 1) != 1) return 1;
        rt[i] = now() - t0;
    }
    pthread_join(t, 0); qsort(rt, N, sizeof(double), cmp);
    printf("wake rt gap=%dus: p50 %.1f p90 %.1f p99 %.1f max %.0f us\n", GAP, rt[N / 2], rt[N * 9 / 10], rt[N * 99 / 100], rt[N - 1]);
    return 0;
}
