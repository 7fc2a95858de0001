#include "CCRC32C.h"

#include <string.h>

// Table-driven fallback for CPUs without SSE4.2 (reflected polynomial 0x82F63B78).
static uint32_t stella_crc32c_table[256];
static int stella_crc32c_table_ready = 0;

static void stella_crc32c_build_table(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) {
      c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : (c >> 1);
    }
    stella_crc32c_table[i] = c;
  }
  stella_crc32c_table_ready = 1;
}

static uint32_t stella_crc32c_portable(uint32_t crc, const uint8_t *p, size_t n) {
  if (!stella_crc32c_table_ready) {
    stella_crc32c_build_table();
  }
  while (n--) {
    crc = stella_crc32c_table[(crc ^ *p++) & 0xFF] ^ (crc >> 8);
  }
  return crc;
}

#if defined(__x86_64__)
// Why three lanes: the crc32 instruction has a latency of three cycles but can start every
// cycle, so one dependent chain uses a third of it. Three independent chains over adjacent
// blocks run at full rate, and their results are joined by "appending zeros": running a CRC
// register over n zero bytes is a linear map over GF(2), applied here with four byte tables.
#define STELLA_CRC32C_LONG 8192
#define STELLA_CRC32C_SHORT 256

static uint32_t stella_crc32c_skip_long[4][256];
static uint32_t stella_crc32c_skip_short[4][256];

// The image of `vector` under the 32x32 bit matrix whose columns are `columns`.
static uint32_t stella_gf2_apply(const uint32_t columns[32], uint32_t vector) {
  uint32_t image = 0;
  for (int bit = 0; vector != 0; bit++, vector >>= 1) {
    if (vector & 1) {
      image ^= columns[bit];
    }
  }
  return image;
}

// result = matrix · matrix (the map applied twice).
static void stella_gf2_square(uint32_t result[32], const uint32_t matrix[32]) {
  for (int bit = 0; bit < 32; bit++) {
    result[bit] = stella_gf2_apply(matrix, matrix[bit]);
  }
}

// Tables that move a (reflected) CRC register over `bytes` zero bytes; `bytes` is a power of two.
static void stella_crc32c_build_skip(uint32_t tables[4][256], size_t bytes) {
  uint32_t step[32], doubled[32];
  // One zero bit: shift right, folding the polynomial in where the low bit was set.
  step[0] = 0x82F63B78u;
  for (int bit = 1; bit < 32; bit++) {
    step[bit] = 1u << (bit - 1);
  }
  // Square up to one zero byte (8 bits), then to `bytes` bytes.
  for (size_t bits = 1; bits < 8 * bytes; bits *= 2) {
    stella_gf2_square(doubled, step);
    memcpy(step, doubled, sizeof step);
  }
  for (uint32_t value = 0; value < 256; value++) {
    for (int lane = 0; lane < 4; lane++) {
      tables[lane][value] = stella_gf2_apply(step, value << (8 * lane));
    }
  }
}

static inline uint32_t stella_crc32c_skip(uint32_t tables[4][256], uint32_t crc) {
  return tables[0][crc & 0xFF] ^ tables[1][(crc >> 8) & 0xFF] ^ tables[2][(crc >> 16) & 0xFF] ^
         tables[3][crc >> 24];
}

__attribute__((constructor)) static void stella_crc32c_build_skips(void) {
  stella_crc32c_build_skip(stella_crc32c_skip_long, STELLA_CRC32C_LONG);
  stella_crc32c_build_skip(stella_crc32c_skip_short, STELLA_CRC32C_SHORT);
}

// The builtins need no header (nmmintrin.h breaks Swift's Clang importer) and
// no global -msse4.2 flag: only these functions are compiled for SSE4.2.
__attribute__((target("sse4.2")))
static uint64_t stella_crc32c_words(uint64_t c, const uint8_t *p, size_t words) {
  while (words--) {
    uint64_t word;
    memcpy(&word, p, 8);
    c = __builtin_ia32_crc32di(c, word);
    p += 8;
  }
  return c;
}

// Three adjacent blocks of `block` bytes (a multiple of 8) at once, joined; returns the
// register after all three.
__attribute__((target("sse4.2")))
static uint32_t stella_crc32c_three(uint32_t crc, const uint8_t *p, size_t block, uint32_t tables[4][256]) {
  uint64_t a = crc, b = 0, c = 0;
  const uint8_t *second = p + block, *third = p + 2 * block;
  for (size_t offset = 0; offset < block; offset += 8) {
    uint64_t wa, wb, wc;
    memcpy(&wa, p + offset, 8);
    memcpy(&wb, second + offset, 8);
    memcpy(&wc, third + offset, 8);
    a = __builtin_ia32_crc32di(a, wa);
    b = __builtin_ia32_crc32di(b, wb);
    c = __builtin_ia32_crc32di(c, wc);
  }
  uint32_t joined = stella_crc32c_skip(tables, (uint32_t)a) ^ (uint32_t)b;
  return stella_crc32c_skip(tables, joined) ^ (uint32_t)c;
}

__attribute__((target("sse4.2")))
static uint32_t stella_crc32c_sse42(uint32_t crc, const uint8_t *p, size_t n) {
  while (n >= 3 * STELLA_CRC32C_LONG) {
    crc = stella_crc32c_three(crc, p, STELLA_CRC32C_LONG, stella_crc32c_skip_long);
    p += 3 * STELLA_CRC32C_LONG;
    n -= 3 * STELLA_CRC32C_LONG;
  }
  while (n >= 3 * STELLA_CRC32C_SHORT) {
    crc = stella_crc32c_three(crc, p, STELLA_CRC32C_SHORT, stella_crc32c_skip_short);
    p += 3 * STELLA_CRC32C_SHORT;
    n -= 3 * STELLA_CRC32C_SHORT;
  }
  uint64_t c = stella_crc32c_words(crc, p, n / 8);
  p += n & ~(size_t)7;
  n &= 7;
  uint32_t c32 = (uint32_t)c;
  while (n--) {
    c32 = __builtin_ia32_crc32qi(c32, *p++);
  }
  return c32;
}
#endif

uint32_t stella_crc32c_update(uint32_t crc, const void *bytes, size_t length) {
  const uint8_t *p = (const uint8_t *)bytes;
#if defined(__x86_64__)
  if (__builtin_cpu_supports("sse4.2")) {
    return stella_crc32c_sse42(crc, p, length);
  }
#endif
  return stella_crc32c_portable(crc, p, length);
}
