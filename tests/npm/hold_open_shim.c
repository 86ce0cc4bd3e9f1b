// tests/npm/hold_open_shim.c: an LD_PRELOAD library for tests that need a process to stop inside one file
// open, with no hook in the process itself (server_loading.test.mjs holds the model load this way).
//
// Environment:
//   AUTOGLM_HOLD_OPEN_PATH     the exact path whose opens are held (as the process spells it)
//   AUTOGLM_HOLD_OPEN_RELEASE  opens of that path wait until a file exists here
//   AUTOGLM_HOLD_OPEN_HELD     optional: created when the first open is held, so a test can tell the hold
//                              is in place (and not merely that the process is slow)
// A held open gives up after 120 s so a failing test never leaves a process stuck for good.
// Only open/openat/fopen (and their 64-bit and fortified forms) are wrapped: that is how the engine opens a
// model directory's files (core/file_io.cpp, std::ifstream).
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef int (*open_fn)(const char*, int, ...);
typedef int (*openat_fn)(int, const char*, int, ...);
typedef int (*open2_fn)(const char*, int);
typedef FILE* (*fopen_fn)(const char*, const char*);

static void* next_symbol(const char* name) { return dlsym(RTLD_NEXT, name); }

static void hold_if_marked(const char* path) {
  const char* marked = getenv("AUTOGLM_HOLD_OPEN_PATH");
  const char* release = getenv("AUTOGLM_HOLD_OPEN_RELEASE");
  if (!path || !marked || !release || strcmp(path, marked) != 0) return;
  if (access(release, F_OK) == 0) return;
  const char* held = getenv("AUTOGLM_HOLD_OPEN_HELD");
  if (held) {
    // Through the real open: this file is not the marked one, but keep the shim out of its own way.
    open_fn real_open = (open_fn)next_symbol("open");
    int fd = real_open ? real_open(held, O_WRONLY | O_CREAT | O_CLOEXEC, 0644) : -1;
    if (fd >= 0) close(fd);
  }
  const struct timespec step = {0, 10 * 1000 * 1000};
  for (int i = 0; i < 12000 && access(release, F_OK) != 0; ++i) nanosleep(&step, NULL);
}

// The mode argument exists only when the flags create a file.
static mode_t mode_of(int flags, va_list ap) {
  if ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE) return (mode_t)va_arg(ap, int);
  return 0;
}

#define WRAP_OPEN(name)                                \
  int name(const char* path, int flags, ...) {         \
    va_list ap;                                        \
    va_start(ap, flags);                               \
    mode_t mode = mode_of(flags, ap);                  \
    va_end(ap);                                        \
    hold_if_marked(path);                              \
    open_fn real = (open_fn)next_symbol(#name);        \
    return real(path, flags, mode);                    \
  }

#define WRAP_OPENAT(name)                                    \
  int name(int dirfd, const char* path, int flags, ...) {    \
    va_list ap;                                              \
    va_start(ap, flags);                                     \
    mode_t mode = mode_of(flags, ap);                        \
    va_end(ap);                                              \
    hold_if_marked(path);                                    \
    openat_fn real = (openat_fn)next_symbol(#name);          \
    return real(dirfd, path, flags, mode);                   \
  }

#define WRAP_OPEN2(name)                        \
  int name(const char* path, int flags) {       \
    hold_if_marked(path);                       \
    open2_fn real = (open2_fn)next_symbol(#name); \
    return real(path, flags);                   \
  }

#define WRAP_FOPEN(name)                               \
  FILE* name(const char* path, const char* mode) {     \
    hold_if_marked(path);                              \
    fopen_fn real = (fopen_fn)next_symbol(#name);      \
    return real(path, mode);                           \
  }

WRAP_OPEN(open)
WRAP_OPEN(open64)
WRAP_OPENAT(openat)
WRAP_OPENAT(openat64)
WRAP_OPEN2(__open_2)
WRAP_OPEN2(__open64_2)
WRAP_FOPEN(fopen)
WRAP_FOPEN(fopen64)
