/* report_html_harness — reads a plait-compare/1 JSON document from stdin and writes
 * its HTML report (report_html_write) to stdout, so tests/compare_report.py can check
 * the report of JSON that `plait compare` itself would never print (a "</script>" in a
 * string).  Exit status 0, or 1 with a message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tool.h"

int main(void)
{
    size_t len = 0, cap = 1 << 16;
    char *json = malloc(cap);
    if (json == NULL) {
        perror("report_html_harness: malloc");
        return 1;
    }
    for (;;) {
        if (len + 1 == cap) {
            char *bigger = realloc(json, cap * 2);
            if (bigger == NULL) {
                perror("report_html_harness: realloc");
                free(json);
                return 1;
            }
            json = bigger;
            cap *= 2;
        }
        size_t n = fread(json + len, 1, cap - 1 - len, stdin);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(stdin)) {
        perror("report_html_harness: reading stdin");
        free(json);
        return 1;
    }
    json[len] = '\0';
    if (strlen(json) != len) {
        fprintf(stderr, "report_html_harness: a NUL byte in the input\n");
        free(json);
        return 1;
    }
    int rc = report_html_write(stdout, json);
    free(json);
    if (rc < 0) {
        fprintf(stderr, "report_html_harness: writing the report: %s\n", strerror(-rc));
        return 1;
    }
    return 0;
}
