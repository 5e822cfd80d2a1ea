/*
 * pshared_owner_window.c — the program tests/test_pshared_owner_window.sh runs under
 * gdb: a process mutex taken over from a dead holder, looked at from the taker's
 * process in the moment between the taker's claim of the lock word and its record of
 * which of its threads holds it.
 *
 * Thread identities (plait__self) are counters of each process, and a forked child
 * inherits its parent's: the child here is a plain fork() of the main thread, so its
 * main thread has the parent's main thread's identity.  The child locks the mutex and
 * dies holding it; the parent reaps it without telling the mutex.  Then a second thread
 * of the parent locks: it finds the holder gone, releases the lock as a dead holder's
 * and takes it (-EOWNERDEAD).  The script stops that thread just after it took the lock
 * word, and calls probe_lock and probe_unlock on the main thread.  Neither may take
 * the mutex for the main thread's own: the lock is the other thread's, so a lock that
 * does not wait is -ETIMEDOUT (not -EDEADLK) and an unlock is -EPERM (not 0, which
 * would free the other thread's lock).  (The dead child's record of its holder named
 * the same identity until the new holder wrote its own.)
 *
 * Run without gdb it only checks that the takeover itself works.  Exit status 0 when
 * every step went as it should; the probes' answers are gdb's to print and the script's
 * to check.
 */
#include <plait.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static plait_pmutex *mutex;

static void fail(const char *what, int r)
{
    fprintf(stderr, "pshared_owner_window: %s: %d\n", what, r);
    exit(1);
}

/* Called by gdb on the main thread while the taker is stopped (external, so that gdb
 * finds them by name). */
int probe_lock(void);
int probe_unlock(void);
void taker_starts(void);
int probe_lock(void) { return plait_pmutex_lock(mutex, 0); }
int probe_unlock(void) { return plait_pmutex_unlock(mutex); }

/* Where the script sets its breakpoint in psync.c: after the child is gone. */
__attribute__((noinline)) void taker_starts(void) { __asm__ volatile(""); }

static void *taker(void *unused)
{
    (void)unused;
    int r = plait_pmutex_lock(mutex, plait_deadline_in(10 * PLAIT_SEC));
    if (r != -EOWNERDEAD)
        fail("the taker's lock after the holder died", r);
    r = plait_pmutex_unlock(mutex);
    if (r != 0)
        fail("the taker's unlock", r);
    return NULL;
}

int main(void)
{
    int r = plait_pmutex_create(&mutex);
    if (r != 0)
        fail("create", r);
    /* the main thread's identity is made now, so the child's main thread has it too */
    if ((r = plait_pmutex_lock(mutex, 0)) != 0 || (r = plait_pmutex_unlock(mutex)) != 0)
        fail("the main thread's first lock", r);
    pid_t child = fork();
    if (child < 0)
        fail("fork", -errno);
    if (child == 0)
        _exit(plait_pmutex_lock(mutex, plait_deadline_in(PLAIT_SEC)) == 0 ? 0 : 1);
    int status;
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0)
        fail("the child's lock", status);
    taker_starts();
    pthread_t t;
    if ((r = pthread_create(&t, NULL, taker, NULL)) != 0)
        fail("pthread_create", -r);
    if ((r = pthread_join(t, NULL)) != 0)
        fail("pthread_join", -r);
    if ((r = plait_pmutex_destroy(mutex)) != 0)
        fail("destroy", r);
    puts("pshared_owner_window: done");
    return 0;
}
