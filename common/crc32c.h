/* CRC-32C (Castagnoli), the checksum of snapshot chunks on disk and on the wire. */
#ifndef RAFTKV_COMMON_CRC32C_H
#define RAFTKV_COMMON_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* The CRC of `len` bytes at `p` continuing from `crc` (0 to start); thread-safe. For
 * example crc32c(crc32c(0, "ab", 2), "c", 1) == crc32c(0, "abc", 3). */
uint32_t crc32c(uint32_t crc, const void *p, size_t len);

#endif
