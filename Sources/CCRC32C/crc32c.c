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
// The builtins need no header (nmmintrin.h breaks Swift's Clang importer) and
// no global -msse4.2 flag: only this function is compiled for SSE4.2.
__attribute__((target("sse4.2")))
static uint32_t stella_crc32c_sse42(uint32_t crc, const uint8_t *p, size_t n) {
  uint64_t c = crc;
  while (n >= 8) {
    uint64_t word;
    memcpy(&word, p, 8);
    c = __builtin_ia32_crc32di(c, word);
    p += 8;
    n -= 8;
  }
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
