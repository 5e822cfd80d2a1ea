/*
 * io_uring_refused.c — for the example tests' scripts (start_server.sh's
 * check_poller_asked_for): prints why plait cannot wait on io_uring here and exits 0
 * (a ThreadSanitizer build, a kernel that refuses it), or exits 1 printing nothing
 * where the kernel makes a ring with what plait requires: a server that waits on
 * epoll there shows a fault of plait's own setup, which the script fails.
 */
#include "io_uring_why.h"

int main(void)
{
    const char *why = check_no_io_uring_why();
    if (!why)
        return 1;
    puts(why);
    return 0;
}
