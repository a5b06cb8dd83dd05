/*
 * fuzz/fuzz.h: what every fuzz target exports. libFuzzer calls it with each
 * input it makes; fuzz/replay.c calls it with each corpus file, so that
 * `make check` replays the corpora with the ordinary compiler.
 */
#ifndef CIO_FUZZ_H
#define CIO_FUZZ_H

#include <stddef.h>
#include <stdint.h>

/* Run one input through the target; a bug aborts (or trips a sanitizer). Returns 0. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif /* CIO_FUZZ_H */
