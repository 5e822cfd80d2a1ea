/*
 * test_http_stop.c — the HTTP example (examples/http_server.c) stopped by SIGTERM with
 * a connection its kernel has queued but its acceptor has not taken yet: the client
 * was told it is connected and its request is acknowledged, so its answer must come
 * back.  The server closed its listener at once, and Linux resets what a TCP listener
 * has queued when it is closed: the client got ECONNRESET, its request lost.  The
 * server is built into this file and run in a child (tests/stopped_server.h).
 */
#include <plait.h>

int server_main(int argc, char **argv);
#define main server_main
#include "../examples/http_server.c"
#undef main

/* the request the client queued at the stop sends, and what must answer it */
#define LATE_REQUEST "GET / HTTP/1.1\r\nHost: t\r\n\r\n"
static bool late_answer_ok(const char *answer)
{
    return strncmp(answer, "HTTP/1.1 200 ", 13) == 0 && strstr(answer, "Hello, world!");
}
#include "stopped_server.h"

TEST(http_server_stop_answers_queued_connection)
{
    server_child_run ec = server_start();
    server_stop(&ec, SIGTERM);
}

RUN_TESTS(CASE(http_server_stop_answers_queued_connection))
