// The frame-header API sits in the static-linking section; Debian's libzstd.so exports it.
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>
#include <zstd_errors.h>
