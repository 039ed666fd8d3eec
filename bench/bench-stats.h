/* Statistics the benchmark programs print (no GStreamer needed). */
#ifndef MONE_BENCH_STATS_H
#define MONE_BENCH_STATS_H

/* Median of n values (sorts them in place). */
double bench_median (double *values, int n);

#endif
