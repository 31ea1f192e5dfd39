// The fuzz targets' invariant check: a violated invariant aborts, so libFuzzer reports a wrong
// answer like a crash and saves the input.
#pragma once

#include <cstdlib>

#define FUZZ_CHECK(cond)                                                        \
  do {                                                                          \
    if (!(cond)) {                                                              \
      __builtin_printf("%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                             \
    }                                                                           \
  } while (0)
