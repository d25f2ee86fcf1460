/* How often this machine takes a core away from a thread that only reads the clock: counts the
 * gaps between two consecutive clock reads, by size, over 3 seconds, and the time lost in gaps
 * over 20 us. Run one per core, at the same time:
 *   gcc -O2 -o /tmp/clock_gaps scripts/clock_gaps.c
 *   taskset -c 0 /tmp/clock_gaps & taskset -c 1 /tmp/clock_gaps; wait
 * The tail of `moeplan bench daemon` cannot be shorter than what this shows. */
#include <stdio.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(void) {
    const double edges[] = {20e-6, 50e-6, 100e-6, 200e-6, 1e-3, 5e-3};
    const char *names[] = {">20us", ">50us", ">100us", ">200us", ">1ms", ">5ms"};
    long count[6] = {0};
    double start = now(), prev = start, lost = 0;
    for (;;) {
        double t = now(), gap = t - prev;
        prev = t;
        if (gap > edges[0]) {
            int b = 0;
            while (b < 5 && gap > edges[b + 1]) b++;
            count[b]++;
            lost += gap;
        }
        if (t - start > 3.0) break;
    }
    for (int b = 0; b < 6; b++) printf("%s:%ld ", names[b], count[b]);
    printf("lost %.1f ms in 3 s\n", lost * 1e3);
    return 0;
}
