/* What a parent and its child processes share, and what they do not.  After the fork
 * each process has its own copy of all memory (copy-on-write): a global the children
 * change stays as it was in the parent.  What was made to be shared before the fork is
 * the same memory in all of them: a counter in a plait_shm region, incremented by each
 * child under the region's lock, adds up in the parent; a queue carries the children's
 * messages to the parent.  Python's multiprocessing would say Value('l', 0) and Queue().
 */
#include "example.h"

#include <string.h>
#include <unistd.h>

enum { CHILDREN = 3, ADDS = 100000 };

static long private_counter;          /* each process has its own copy */
static plait_shm *region;             /* made before the children: shared */
static plait_queue *mailbox;

static ssize_t child(const void *arg, size_t len, void *out, size_t cap)
{
    (void)len;
    (void)out;
    (void)cap;
    long *shared = plait_shm_data(region);
    for (int i = 0; i < ADDS; i++) {
        private_counter++;
        if (plait_shm_lock(region, PLAIT_FOREVER) < 0)
            return -EIO;
        (*shared)++;
        plait_shm_unlock(region);
    }
    char msg[64];
    int n = snprintf(msg, sizeof msg, "child %d (pid %d): my private counter is %ld",
                     *(const int *)arg, (int)getpid(), private_counter);
    return plait_queue_send(mailbox, msg, (size_t)n + 1, PLAIT_FOREVER);
}

static void *run(void *arg)
{
    (void)arg;
    int r = plait_shm_create(&region, sizeof(long));
    if (r == 0 && (r = plait_queue_create(&mailbox, 64, CHILDREN)) < 0)
        plait_shm_destroy(region);
    if (r < 0)
        return PLAIT_FAIL(r);
    private_counter = 0;
    plait_task kids[CHILDREN];
    int ids[CHILDREN], started = 0;
    for (; started < CHILDREN; started++) {
        ids[started] = started;
        r = plait_process_start(&kids[started], child, &ids[started], sizeof(int), NULL, NULL);
        if (r < 0)
            break;
    }
    for (int i = 0; r == 0 && i < started; i++) { /* the queue, from a coroutine */
        char msg[64];
        ssize_t n = plait_queue_recv(mailbox, msg, sizeof msg, plait_deadline_in(10 * PLAIT_SEC));
        if (n < 0)
            r = (int)n;
        else
            printf("  received: %s\n", msg);
    }
    int w = started ? plait_wait_all(kids, (size_t)started, NULL, NULL, PLAIT_FOREVER) : 0;
    if (r == 0)
        r = w;
    long shared = *(long *)plait_shm_data(region);
    printf("  parent: private counter %ld (copy-on-write: the children changed their "
           "copies), shared counter %ld of %d\n",
           private_counter, shared, CHILDREN * ADDS);
    plait_queue_destroy(mailbox);
    plait_shm_destroy(region);
    if (r < 0)
        return PLAIT_FAIL(r);
    return private_counter == 0 && shared == CHILDREN * ADDS ? NULL : PLAIT_FAIL(-EIO);
}

int example_fork_sharing(void) { return example_run(run, "shared and private state"); }

EXAMPLE_MAIN(example_fork_sharing)
