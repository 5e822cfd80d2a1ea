/* A producer and two consumers over a buffered channel.  The producer is faster
 * than the consumers, so it fills the buffer and then waits for room; closing the
 * channel tells the consumers there is no more once they have drained it. */
#include "example.h"

#include <stdint.h>

enum { ITEMS = 8 };

static void *producer(void *chan)
{
    for (int i = 1; i <= ITEMS; i++) {
        int r = plait_chan_send(chan, &i, PLAIT_FOREVER);
        if (r < 0)
            return PLAIT_FAIL(r);
        printf("  %5.3f s  produced %d (%zu buffered)\n", example_elapsed(), i,
               plait_chan_len(chan));
    }
    plait_chan_close(chan);
    return NULL;
}

static void *consumer(void *chan)
{
    intptr_t sum = 0;
    int item, r;
    while ((r = plait_chan_recv(chan, &item, PLAIT_FOREVER)) == 0) {
        printf("  %5.3f s  %s consumed %d\n", example_elapsed(), plait_task_name(), item);
        sum += item;
        plait_sleep(100 * PLAIT_MS); /* the work an item takes */
    }
    return r == -EPIPE ? (void *)sum : PLAIT_FAIL(r);
}

static void *run(void *arg)
{
    (void)arg;
    plait_chan *chan;
    int r = plait_chan_create(&chan, sizeof(int), 2);
    if (r < 0)
        return PLAIT_FAIL(r);
    plait_task tasks[3];
    r = plait_spawn_opts(&tasks[0], producer, chan, &(plait_spawn_options){.name = "producer"});
    for (int i = 1; i < 3 && r == 0; i++)
        r = plait_spawn_opts(&tasks[i], consumer, chan,
                             &(plait_spawn_options){.name = i == 1 ? "consumer 1" : "consumer 2"});
    if (r < 0)
        return PLAIT_FAIL(r);
    void *results[3];
    r = plait_wait_all(tasks, 3, results, NULL, PLAIT_FOREVER);
    plait_chan_destroy(chan);
    if (r < 0)
        return PLAIT_FAIL(r);
    intptr_t total = (intptr_t)results[1] + (intptr_t)results[2];
    printf("  consumers summed %ld (expected %d)\n", (long)total, ITEMS * (ITEMS + 1) / 2);
    return total == ITEMS * (ITEMS + 1) / 2 ? NULL : PLAIT_FAIL(-EIO);
}

int example_producer_consumer(void) { return example_run(run, "producer/consumer"); }

EXAMPLE_MAIN(example_producer_consumer)
