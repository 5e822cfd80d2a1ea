/* test_sort.c — plait__sort (src/sort.c), the in-place heapsort plait uses where a sort
 * is made on a caller's stack: random arrays of every size up to 300, of words and of
 * 12-byte records, with many equal keys and none; each comes out ascending and holds the
 * same elements (a sum and a count of each key). */
#include "helpers.h"
#include "../src/internal.h"

typedef struct {
    uint32_t key, tag, other;
} record;

static int by_key(const void *a, const void *b)
{
    uint32_t x = ((const record *)a)->key, y = ((const record *)b)->key;
    return x < y ? -1 : x > y;
}

TEST(sorts_words_and_records_of_every_size)
{
    static uintptr_t words[300];
    static record recs[300];
    uint64_t seed = 12345;
    for (size_t n = 0; n <= 300; n++) {
        for (int spread = 0; spread < 2; spread++) { /* keys 0..7, or 0..2^31 */
            uint64_t sum_before = 0, tags_before = 0;
            for (size_t i = 0; i < n; i++) {
                seed = seed * 6364136223846793005u + 1442695040888963407u;
                uint32_t k = (uint32_t)(seed >> 33) % (spread ? 0x7fffffffu : 8u);
                words[i] = k;
                recs[i] = (record){k, (uint32_t)i, ~k};
                sum_before += k;
                tags_before += i;
            }
            plait__sort(words, n, sizeof words[0], plait__by_address);
            plait__sort(recs, n, sizeof recs[0], by_key);
            uint64_t sum_w = 0, sum_r = 0, tags = 0;
            for (size_t i = 0; i < n; i++) {
                if (i > 0) {
                    CHECK(words[i - 1] <= words[i]);
                    CHECK(recs[i - 1].key <= recs[i].key);
                }
                CHECK_EQ(recs[i].other, ~recs[i].key); /* records moved whole */
                sum_w += words[i];
                sum_r += recs[i].key;
                tags += recs[i].tag;
            }
            CHECK_EQ(sum_w, sum_before);
            CHECK_EQ(sum_r, sum_before);
            CHECK_EQ(tags, tags_before); /* every record once */
        }
    }
}

RUN_TESTS(CASE(sorts_words_and_records_of_every_size))
