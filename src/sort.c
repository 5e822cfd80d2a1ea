/*
 * sort.c — an in-place heapsort for sorts made on a caller's stack.
 *
 * A coroutine's stack may be PLAIT_STACK_MIN (2 KiB), and plait's calls must fit it.
 * glibc's qsort does not: below 1 KiB of elements it copies them into an alloca'd
 * buffer and merge-sorts recursively (a wait for 110 tasks, a select over 20
 * channels ran off such a stack).  This sort uses a few words of stack, no recursion
 * and no memory; O(n log n) comparisons, not stable (no caller needs it: their keys
 * are distinct, or equal ones are alike).
 */
#include "internal.h"

/* Swap the size bytes at a and b. */
static void swap_bytes(unsigned char *a, unsigned char *b, size_t size)
{
    for (size_t i = 0; i < size; i++) {
        unsigned char t = a[i];
        a[i] = b[i];
        b[i] = t;
    }
}

/* Let the element at root sink in the heap of the first n elements (largest on top). */
static void sift_down(unsigned char *base, size_t root, size_t n, size_t size,
                      int (*cmp)(const void *, const void *))
{
    for (size_t child; (child = 2 * root + 1) < n; root = child) {
        if (child + 1 < n && cmp(base + child * size, base + (child + 1) * size) < 0)
            child++;
        if (cmp(base + root * size, base + child * size) >= 0)
            return;
        swap_bytes(base + root * size, base + child * size, size);
    }
}

void plait__sort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
    unsigned char *b = base;
    if (n < 2)
        return;
    for (size_t i = n / 2; i-- > 0;)
        sift_down(b, i, n, size, cmp);
    for (size_t end = n - 1; end > 0; end--) {
        swap_bytes(b, b + end * size, size);
        sift_down(b, 0, end, size, cmp);
    }
}
