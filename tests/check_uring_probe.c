/*
 * check_uring_probe.c — a test program whose io_uring setup fails where the kernel's
 * would not, for test_check_uring_refused.sh: asked for io_uring (PLAIT_POLLER), the
 * harness (check.h) must fail the run, not skip it as a system without io_uring.
 *
 * Linked with ring_mapping_refused.c (--wrap=mmap): plait falls back to epoll.
 */
#include "check.h"

/* Not reached under PLAIT_POLLER=io_uring: check_main ends the run first. */
TEST(waits_on_io_uring) { CHECK(strcmp(plait_io_backend(), "io_uring") == 0); }

RUN_TESTS(CASE(waits_on_io_uring))
