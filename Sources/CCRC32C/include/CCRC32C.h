#ifndef STELLA_CRC32C_H
#define STELLA_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/// Continues a CRC-32C (Castagnoli) over `length` bytes.
/// `crc` is the running value *before* the final XOR: start with 0xFFFFFFFF and
/// XOR the result with 0xFFFFFFFF when done. Uses SSE4.2 when the CPU has it.
uint32_t stella_crc32c_update(uint32_t crc, const void *bytes, size_t length);

#endif
