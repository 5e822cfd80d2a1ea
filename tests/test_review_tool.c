/* test_review_tool.c — cases a review of the `plait` tool found (tools/, docs/TOOL.md),
 * each of which failed first.  The JSON cases call the report code itself
 * (tools/compare_report.c, linked in) on results made up here; the command-line cases
 * run the tool (PLAIT_TOOL, the build's plait) and look at its exit status, its
 * messages and the files it leaves.  No case measures: each takes milliseconds. */
#include "helpers.h"

#include "compare.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Whether s[0..len) is well-formed UTF-8 (RFC 3629), as RFC 8259 asks of JSON text. */
static bool utf8_valid(const unsigned char *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        unsigned c = s[i];
        size_t n = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3
                 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
        if (n == 0 || i + n > len)
            return false;
        unsigned lo = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : 0x80;
        unsigned hi = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : 0xbf;
        for (size_t k = 1; k < n; k++, lo = 0x80, hi = 0xbf)
            if (s[i + k] < lo || s[i + k] > hi)
                return false;
        i += n;
    }
    return true;
}

/* A result as a run could leave it, with the machine's description given. */
static void made_up_result(compare_result *res, const char *cpu_model)
{
    memset(res, 0, sizeof *res);
    res->quick = true;
    res->machine.cpus = 2;
    snprintf(res->machine.cpu_model, sizeof res->machine.cpu_model, "%s", cpu_model);
    snprintf(res->machine.kernel, sizeof res->machine.kernel, "6.1.0");
    snprintf(res->started, sizeof res->started, "2026-01-01T00:00:00Z");
    res->memory_bytes = 1LL << 30;
    res->io_backend = "epoll";
    res->elapsed_s = 1.5;
    compare_metric *row = compare_metric_row(res, "create");
    row->title = "creation cost";
    row->unit = "ns";
    snprintf(row->how, sizeof row->how, "made up");
    row->value[COROUTINE] = 100;
    row->value[THREAD] = 10000;
    row->value[PROCESS] = 100000;
}

/* The JSON of res, malloc'd (its length in *len). */
static char *json_of(const compare_result *res, size_t *len)
{
    char *text = NULL;
    FILE *mem = open_memstream(&text, len);
    CHECK(mem != NULL);
    if (!mem)
        return NULL;
    CHECK_EQ(compare_print_json(mem, res), 0);
    CHECK_EQ(fclose(mem), 0);
    return text;
}

/* ---- JSON: text from the machine that is not UTF-8 ------------------------------------ */
/* The CPU model is /proc/cpuinfo's "model name", the bytes of the CPU's brand string (a
 * hypervisor sets any it likes: Latin-1 "Caf\xe9"), cut to 127 bytes, possibly in the
 * middle of a character.  The JSON carried those bytes as they were: not UTF-8, so not
 * JSON (python3 -c 'import json; json.load(...)' failed with UnicodeDecodeError, as it
 * did on `plait compare --json` run with such a /proc/cpuinfo bind-mounted in place).
 * Now each byte that starts no well-formed sequence is U+FFFD; well-formed ones stay. */
TEST(json_cpu_model_not_utf8)
{
    static compare_result res;
    /* Latin-1 e-acute; euro sign and an emoji (well-formed); a UTF-16 surrogate, an
     * overlong '/', a stray continuation byte; a euro sign cut short at the end */
    made_up_result(&res, "Caf\xe9 \xe2\x82\xac \xf0\x9f\x98\x80 \xed\xa0\x80 \xc0\xaf \x80 end\xe2\x82");
    size_t len = 0;
    char *json = json_of(&res, &len);
    if (!json)
        return;
    CHECK(utf8_valid((const unsigned char *)json, len));
    CHECK(strstr(json, "\"Caf\\ufffd \xe2\x82\xac \xf0\x9f\x98\x80 ") != NULL);
    CHECK(strstr(json, " end\\ufffd\\ufffd\"") != NULL);
    free(json);

    /* a long model name of two-byte characters, cut by the machine's buffer (127
     * bytes: after the lead byte of the 64th) */
    char long_name[301] = "";
    for (int i = 0; i < 150; i++)
        strcat(long_name, "\xc3\xa9");
    made_up_result(&res, long_name);
    json = json_of(&res, &len);
    if (!json)
        return;
    CHECK(utf8_valid((const unsigned char *)json, len));
    free(json);
}

RUN_TESTS(CASE(json_cpu_model_not_utf8))
