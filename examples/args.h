/* args.h — reading the examples' numeric arguments strictly: the whole argument a
 * decimal number within range, or the usage message (atoi took "8080x" for 8080 and
 * "abc" for 0, a free port). */
#ifndef PLAIT_EXAMPLE_ARGS_H
#define PLAIT_EXAMPLE_ARGS_H

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

/* *out = arg (or fallback when arg is NULL); false when arg is not a number in
 * [lo, hi], digits only (lo is never negative here). */
static inline bool example_number(const char *arg, long fallback, long lo, long hi, int *out)
{
    long v = fallback;
    if (arg) {
        /* strtol would skip white space and take a sign first: " 80" and "+80" were 80
         * (and "-0" was 0) while "80 " was refused */
        if (*arg < '0' || *arg > '9')
            return false;
        char *end;
        errno = 0;
        v = strtol(arg, &end, 10);
        if (end == arg || *end || errno)
            return false;
    }
    *out = (int)v;
    return v >= lo && v <= hi;
}

#endif
