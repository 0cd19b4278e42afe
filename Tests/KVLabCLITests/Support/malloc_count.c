// Counts malloc calls of a process (LD_PRELOAD) and writes the total to $MALLOC_COUNT_FILE at exit;
// built at test time by CLITests.decodeLoopDoesNotAllocate.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
static unsigned long count;
static void *(*real_malloc)(size_t);
void *malloc(size_t n) { if (!real_malloc) real_malloc = dlsym(RTLD_NEXT, "malloc"); __atomic_add_fetch(&count, 1, __ATOMIC_RELAXED); return real_malloc(n); }
__attribute__((destructor)) static void report(void) { const char *p = getenv("MALLOC_COUNT_FILE"); if (p) { FILE *f = fopen(p, "w"); if (f) { fprintf(f, "%lu\n", count); fclose(f); } } }
