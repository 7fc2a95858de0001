#ifndef STELLA_CFUZZERDRIVER_H
#define STELLA_CFUZZERDRIVER_H

#include <stddef.h>
#include <stdint.h>

/// libFuzzer's documented entry for programs that own `main` (LLVM >= 11). SwiftPM on Linux
/// links every executable with `--defsym main=<Module>_main`, so the fuzz targets define that
/// symbol and hand control to libFuzzer here instead of using libFuzzer's own `main`.
int LLVMFuzzerRunDriver(int *argc, char ***argv,
                        int (*callback)(const uint8_t *data, size_t size));

#endif
