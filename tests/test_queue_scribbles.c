/* test_queue_scribbles.c — a process whose memory bug writes over a plait_queue's
 * shared memory must not make another process copy past a slot or divide by zero.
 * (The queue kept msg_max, capacity and the slot size in the shared state: a holder
 * that wrote zero over the capacity made every later send and receive divide by zero,
 * SIGFPE; and a slot length written over past msg_max was copied out as it stood, past
 * the slot, into any buffer large enough; session 24's notes.)
 *
 * The test finds the queue's mapping by wrapping plait__shared_map
 * (-Wl,--wrap=plait__shared_map, tests/CMakeLists.txt) and writes over it as a buggy
 * holder would: the words that hold the queue's sizes, wherever they are, and the
 * length word in front of a message's bytes. */
#include "helpers.h"

#include <stdint.h>

static char *last_map;
static size_t last_map_size;

void *__real_plait__shared_map(size_t size);
void *__wrap_plait__shared_map(size_t size);
void *__wrap_plait__shared_map(size_t size)
{
    void *p = __real_plait__shared_map(size);
    last_map = p;
    last_map_size = size;
    return p;
}

/* Sizes no other word of a fresh queue holds. */
enum { MSG_MAX = 4321, CAPACITY = 3 };

static plait_queue *queue_mapped(char **map, size_t *size)
{
    plait_queue *q = NULL;
    last_map = NULL;
    CHECK_EQ(plait_queue_create(&q, MSG_MAX, CAPACITY), 0);
    CHECK(last_map != NULL);
    *map = last_map;
    *size = last_map_size;
    return q;
}

TEST(sizes_written_over_in_shared_memory_are_not_used)
{
    char *map;
    size_t size;
    plait_queue *q = queue_mapped(&map, &size);
    /* zero every word that holds one of the sizes (a fresh queue's state is zero but
     * for its first holder's pid and whatever the queue itself keeps there) */
    for (size_t off = 0; off + sizeof(uint64_t) <= size; off += sizeof(uint64_t)) {
        uint64_t w;
        memcpy(&w, map + off, sizeof w);
        if (w == MSG_MAX || w == CAPACITY)
            memset(map + off, 0, sizeof w);
    }
    char msg[MSG_MAX], got[MSG_MAX];
    memset(msg, 'm', sizeof msg);
    for (int i = 0; i < CAPACITY; i++)
        CHECK_EQ(plait_queue_send(q, msg, sizeof msg, SOON()), 0);
    CHECK_EQ(plait_queue_send(q, msg, 1, 0), -ETIMEDOUT); /* full at CAPACITY */
    CHECK_EQ(plait_queue_len(q), (size_t)CAPACITY);
    for (int i = 0; i < CAPACITY; i++) {
        CHECK_EQ(plait_queue_recv(q, got, sizeof got, SOON()), (ssize_t)sizeof got);
        CHECK(memcmp(got, msg, sizeof got) == 0);
    }
    CHECK_EQ(plait_queue_send(q, msg, MSG_MAX + 1, 0), -EMSGSIZE);
    CHECK_EQ(plait_queue_destroy(q), 0);
}

/* The length word in front of the message's bytes (found by its bytes). */
static uint64_t *length_of(char *map, size_t size, const char *bytes, size_t len)
{
    for (size_t off = sizeof(uint64_t); off + len <= size; off += sizeof(uint64_t))
        if (memcmp(map + off, bytes, len) == 0)
            return (uint64_t *)(void *)(map + off - sizeof(uint64_t));
    return NULL;
}

TEST(a_message_length_written_over_is_eproto_and_taken_off)
{
    char *map;
    size_t size;
    plait_queue *q = queue_mapped(&map, &size);
    static const char first[] = "first message, its length to be written over";
    static const char second[] = "second message";
    static const char third[] = "third message, its length to be written over";
    CHECK_EQ(plait_queue_send(q, first, sizeof first, SOON()), 0);
    CHECK_EQ(plait_queue_send(q, second, sizeof second, SOON()), 0);
    uint64_t *len = length_of(map, size, first, sizeof first);
    CHECK(len != NULL);
    if (!len)
        return;
    CHECK_EQ(*len, sizeof first);
    /* past msg_max, but within a buffer the receiver offers: it was copied as it stood,
     * past the slot (into the next slots, or past the mapping's end) */
    *len = MSG_MAX + 1000;
    static char buf[MSG_MAX + 2000];
    CHECK_EQ(plait_queue_recv(q, buf, sizeof buf, SOON()), -EPROTO);
    CHECK_EQ(plait_queue_len(q), 1u); /* taken off: the next receive is not stuck on it */
    CHECK_EQ(plait_queue_recv(q, buf, sizeof buf, SOON()), (ssize_t)sizeof second);
    CHECK(memcmp(buf, second, sizeof second) == 0);
    /* a length past msg_max is -EPROTO whatever the receiver's buffer (not -EMSGSIZE,
     * which would leave it queued for ever) */
    CHECK_EQ(plait_queue_send(q, third, sizeof third, SOON()), 0);
    len = length_of(map, size, third, sizeof third);
    CHECK(len != NULL);
    if (len)
        *len = UINT64_MAX;
    CHECK_EQ(plait_queue_recv(q, buf, 8, SOON()), -EPROTO);
    CHECK_EQ(plait_queue_len(q), 0u);
    CHECK_EQ(plait_queue_destroy(q), 0);
}

RUN_TESTS(CASE(sizes_written_over_in_shared_memory_are_not_used),
          CASE(a_message_length_written_over_is_eproto_and_taken_off))
