/* Seeded pseudo-random numbers (xoshiro256**): deterministic, no global state. */
#ifndef RAFTKV_COMMON_PRNG_H
#define RAFTKV_COMMON_PRNG_H

#include <stdint.h>

struct prng {
	uint64_t s[4];
};

/* Seed the generator; the same seed always yields the same sequence. */
void prng_seed(struct prng *p, uint64_t seed);

/* Next 64 random bits. */
uint64_t prng_next(struct prng *p);

/* Uniform in [0, n); n == 0 returns 0. Uses rejection, so there is no modulo bias. */
uint64_t prng_below(struct prng *p, uint64_t n);

/* Uniform in [lo, hi] (inclusive); requires lo <= hi. */
uint64_t prng_range(struct prng *p, uint64_t lo, uint64_t hi);

/* True with probability per_million / 1e6. */
int prng_chance(struct prng *p, uint32_t per_million);

#endif
