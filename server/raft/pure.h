/* Included last by every file of the core except heap.c: the core has no clock, no global
 * randomness, no printing, no threads and allocates only through the hooks in heap.h. Any use
 * of these identifiers after this point is a compile error. */
#ifndef RAFTKV_RAFT_PURE_H
#define RAFTKV_RAFT_PURE_H

#pragma GCC poison printf fprintf vprintf puts putchar perror
#pragma GCC poison rand srand random srandom drand48 rand_r
#pragma GCC poison time clock clock_gettime gettimeofday sleep usleep nanosleep
#pragma GCC poison pthread_create pthread_mutex_lock thrd_create
#pragma GCC poison malloc calloc realloc free
#pragma GCC poison open read write fopen fwrite fread fsync

#endif
