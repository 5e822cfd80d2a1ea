/*
 * socket.c — TCP, Unix and UDP sockets for coroutines and threads: addresses, name
 * resolution, listen/accept/connect, datagrams and options.
 *
 * Every socket made here is non-blocking and close-on-exec.  Each call tries the
 * system call first and waits with plait_wait_fd() (poll.c) only when it would block,
 * so a coroutine suspends alone and a thread blocks alone, both with a deadline and
 * cancellable.  Making a socket ignores SIGPIPE, as making a pipe does (process.c), if
 * the program left it at its default: a write to a peer that has gone is then -EPIPE,
 * not the death of the process.
 *
 * Name resolution runs getaddrinfo() on the default pool.  A caller that stops
 * waiting (deadline, cancellation) leaves the lookup to finish in the background: the
 * lookup's record is shared by caller and task through a reference count, and the
 * last one to let go frees it and its results.
 */
#include "internal.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* ---- addresses ---- */

/* The IPv6 address of the n characters at s, with the scope (zone) id that may follow
 * a '%': an interface's name ("fe80::1%lo") or index ("fe80::1%1"), as getaddrinfo
 * takes it.  0; -EINVAL for what is not such an address (a name of no interface
 * included); the error that kept an interface's name from being looked up (-EMFILE:
 * that needs a socket). */
static int parse_ip6(const char *s, size_t n, struct sockaddr_in6 *out)
{
    const char *pct = memchr(s, '%', n);
    size_t alen = pct ? (size_t)(pct - s) : n;
    char text[INET6_ADDRSTRLEN];
    if (alen >= sizeof text)
        return -EINVAL;
    memcpy(text, s, alen);
    text[alen] = '\0';
    if (inet_pton(AF_INET6, text, &out->sin6_addr) != 1)
        return -EINVAL;
    if (!pct)
        return 0;
    size_t slen = n - alen - 1;
    char scope[IF_NAMESIZE];
    if (slen == 0 || slen >= sizeof scope)
        return -EINVAL;
    memcpy(scope, pct + 1, slen);
    scope[slen] = '\0';
    if (strspn(scope, "0123456789") == slen) {
        unsigned long long id = strtoull(scope, NULL, 10); /* at most 15 digits */
        if (id > UINT32_MAX)
            return -EINVAL;
        out->sin6_scope_id = (uint32_t)id;
        return 0;
    }
    /* if_nametoindex's own, less its errno, which it leaves unset when it gets no
     * socket: that is not a bad name */
    struct ifreq ifr = {0};
    memcpy(ifr.ifr_name, scope, slen + 1);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int r = ioctl(fd, SIOCGIFINDEX, &ifr) < 0 ? -errno : 0;
    plait_close(fd); /* no cancellation point, as close(2) is */
    if (r < 0)
        return r == -ENODEV ? -EINVAL : r;
    out->sin6_scope_id = (uint32_t)ifr.ifr_ifindex;
    return 0;
}

int plait_addr_ip(plait_addr *out, const char *host, int port)
{
    if (!out || port < 0 || port > 65535)
        return -EINVAL;
    memset(out, 0, sizeof *out);
    int r = 0;
    if (!host) {
        out->u.in6.sin6_addr = in6addr_any;
    } else if (inet_pton(AF_INET, host, &out->u.in4.sin_addr) == 1) {
        out->u.in4.sin_family = AF_INET;
        out->u.in4.sin_port = htons((uint16_t)port);
        out->len = sizeof out->u.in4;
        return 0;
    } else {
        size_t n = strlen(host);
        if (n >= 2 && host[0] == '[' && host[n - 1] == ']') /* as in URLs: IPv6 only */
            r = parse_ip6(host + 1, n - 2, &out->u.in6);
        else
            r = parse_ip6(host, n, &out->u.in6);
    }
    if (r < 0) {
        memset(out, 0, sizeof *out);
        return r;
    }
    out->u.in6.sin6_family = AF_INET6;
    out->u.in6.sin6_port = htons((uint16_t)port);
    out->len = sizeof out->u.in6;
    return 0;
}

int plait_addr_unix(plait_addr *out, const char *path)
{
    if (!out || !path || !path[0])
        return -EINVAL;
    memset(out, 0, sizeof *out);
    size_t n = strnlen(path, sizeof out->u.un.sun_path + 1);
    if (n > sizeof out->u.un.sun_path)
        return -ENAMETOOLONG;
    /* a path that fills sun_path goes without its NUL, as Linux takes it (unix(7)) and
     * as plait_addr_format gives it back */
    size_t with_nul = n < sizeof out->u.un.sun_path ? n + 1 : n;
    out->u.un.sun_family = AF_UNIX;
    memcpy(out->u.un.sun_path, path, with_nul);
    out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + with_nul);
    return 0;
}

int plait_addr_port(const plait_addr *addr)
{
    if (addr && addr->u.sa.sa_family == AF_INET)
        return ntohs(addr->u.in4.sin_port);
    if (addr && addr->u.sa.sa_family == AF_INET6)
        return ntohs(addr->u.in6.sin6_port);
    return -EINVAL;
}

/* the longest texts: a Unix path with no NUL (or "@" and 107 bytes), and an IPv6
 * address with an interface's name */
_Static_assert(PLAIT_ADDR_STRLEN >= sizeof((struct sockaddr_un){0}.sun_path) + 1 &&
                   PLAIT_ADDR_STRLEN >= sizeof "[]:65535" + INET6_ADDRSTRLEN + IF_NAMESIZE,
               "PLAIT_ADDR_STRLEN fits every formatted address");

/* An IPv4 address's text, as inet_ntop writes it (which uses sprintf: see plait__text). */
static void text_ip4(plait__text *t, const unsigned char *b)
{
    for (int i = 0; i < 4; i++) {
        if (i)
            plait__text_str(t, ".");
        plait__text_uint(t, b[i]);
    }
}

/* An IPv6 address's text, as glibc's inet_ntop writes it: the first longest run of two
 * or more zero words as "::", lower-case hex, and the last 32 bits as IPv4 where the
 * first 96 are zero, or ::ffff. */
static void text_ip6(plait__text *t, const unsigned char *b)
{
    unsigned w[8];
    for (int i = 0; i < 8; i++)
        w[i] = (unsigned)b[2 * i] << 8 | b[2 * i + 1];
    int best = -1, best_len = 0, cur = -1, cur_len = 0;
    for (int i = 0; i <= 8; i++) {
        if (i < 8 && w[i] == 0) {
            if (cur < 0)
                cur = i, cur_len = 0;
            cur_len++;
        } else if (cur >= 0) {
            if (best < 0 || cur_len > best_len)
                best = cur, best_len = cur_len;
            cur = -1;
        }
    }
    if (best_len < 2)
        best = -1;
    for (int i = 0; i < 8; i++) {
        if (best >= 0 && i >= best && i < best + best_len) {
            if (i == best)
                plait__text_str(t, ":");
            continue;
        }
        if (i)
            plait__text_str(t, ":");
        if (i == 6 && best == 0 && (best_len == 6 || (best_len == 5 && w[5] == 0xffff))) {
            text_ip4(t, b + 12);
            break;
        }
        plait__text_digits(t, w[i], 16);
    }
    if (best >= 0 && best + best_len == 8)
        plait__text_str(t, ":");
}

int plait_addr_format(const plait_addr *addr, char *buf, size_t cap)
{
    if (!addr || (!buf && cap))
        return -EINVAL;
    /* by hand, not snprintf or inet_ntop (which uses sprintf): see plait__text */
    plait__text t = {buf, cap, 0};
    switch (addr->u.sa.sa_family) {
    case AF_INET:
        text_ip4(&t, (const unsigned char *)&addr->u.in4.sin_addr);
        plait__text_str(&t, ":");
        plait__text_uint(&t, (unsigned)plait_addr_port(addr));
        break;
    case AF_INET6: { /* with its scope id: the interface's name, else its number */
        plait__text_str(&t, "[");
        text_ip6(&t, addr->u.in6.sin6_addr.s6_addr);
        uint32_t id = addr->u.in6.sin6_scope_id;
        char name[IF_NAMESIZE]; /* "%name", or "%index" where none has it */
        if (id) {
            plait__text_str(&t, "%");
            /* a name of digits only (an interface may be named "7") would parse back as
             * that index (plait_addr_ip): the index then, as where glibc's lookup, which
             * needs a socket, finds no descriptor left (plait.h says so) */
            if (if_indextoname(id, name) && strspn(name, "0123456789") != strlen(name))
                plait__text_str(&t, name);
            else
                plait__text_uint(&t, id);
        }
        plait__text_str(&t, "]:");
        plait__text_uint(&t, (unsigned)plait_addr_port(addr));
        break;
    }
    case AF_UNIX: { /* unnamed: ""; abstract (a leading NUL): "@name" */
        size_t off = offsetof(struct sockaddr_un, sun_path);
        size_t len = addr->len > off ? addr->len - off : 0;
        if (len > sizeof addr->u.un.sun_path)
            len = sizeof addr->u.un.sun_path;
        const char *path = addr->u.un.sun_path;
        bool abstract = len > 0 && path[0] == '\0';
        if (abstract)
            plait__text_str(&t, "@");
        /* up to its first NUL, as "%.*s" has it */
        plait__text_add(&t, path + abstract, strnlen(path + abstract, len - abstract));
        break;
    }
    default:
        return -EINVAL;
    }
    size_t n = plait__text_end(&t);
    return n >= cap ? -ENOSPC : (int)n;
}

/* ---- name resolution ---- */

typedef struct lookup {
    atomic_int refs;            /* the caller and the pool task */
    atomic_bool abandoned;      /* the caller has stopped waiting */
    char *host;
    char service[8];
    struct addrinfo hints;
    struct addrinfo *res;
    int rc, sys_errno;          /* getaddrinfo's answer, errno for EAI_SYSTEM */
} lookup;

static void lookup_put(lookup *l)
{
    if (atomic_fetch_sub(&l->refs, 1) != 1)
        return;
    if (l->res)
        freeaddrinfo(l->res);
    free(l->host);
    free(l);
}

static void *lookup_run(void *arg)
{
    lookup *l = arg;
    /* One whose caller gave up while it was queued is not made: behind a slow name
     * service, abandoned lookups would otherwise hold the pool's workers for their
     * full time each, and every file call and lookup queued after them. */
    if (atomic_load(&l->abandoned)) {
        l->rc = EAI_AGAIN;
    } else {
        errno = 0; /* a worker's errno from before is not this lookup's */
        l->rc = getaddrinfo(l->host, l->service, &l->hints, &l->res);
        l->sys_errno = errno;
        /* Out of descriptors glibc's answer says nothing of the name: EAI_NONAME (no
         * /etc/hosts opened, no socket for DNS: errno EMFILE), or EAI_SYSTEM with an
         * unrelated errno (EBUSY, from a module it could not load).  A failed lookup
         * whose thread cannot make a descriptor now either says so instead. */
        if (l->rc != 0 && l->sys_errno != EMFILE && l->sys_errno != ENFILE) {
            int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
            if (fd >= 0)
                close(fd);
            else if (errno == EMFILE || errno == ENFILE)
                l->sys_errno = errno;
        }
    }
    lookup_put(l);
    return NULL;
}

static int lookup_error(const lookup *l)
{
    /* no descriptor left for the lookup (lookup_run): the name was once reported
     * missing (-ENOENT), or the call failed with glibc's stray errno (-EBUSY) */
    if (l->sys_errno == EMFILE || l->sys_errno == ENFILE)
        return -l->sys_errno;
    switch (l->rc) {
    case EAI_NONAME:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY:
#endif
        return -ENOENT;
    case EAI_AGAIN:
        return -EAGAIN;
    case EAI_MEMORY:
        return -ENOMEM;
    case EAI_SYSTEM:
        return l->sys_errno ? -l->sys_errno : -EIO;
    case EAI_FAIL:
        return -EIO;
    default:
        return -EINVAL;
    }
}

int plait_resolve(const char *host, int port, int type, plait_addr *out, size_t cap,
                  int64_t deadline)
{
    if (!out || !cap || port < 0 || port > 65535 || (type != PLAIT_STREAM && type != PLAIT_DGRAM))
        return -EINVAL;
    int parsed = plait_addr_ip(out, host, port);
    if (parsed == 0)
        return 1;
    if (parsed != -EINVAL) /* a scope's interface name could not be looked up */
        return parsed;
    if (!host[0])
        return -EINVAL;
    /* the other numeric forms ("127.1", "0x7f.0.0.1") at once too, as getaddrinfo with
     * AI_NUMERICHOST takes them: inet_aton's, the whole string.  Not getaddrinfo itself
     * here, on the caller's stack: its frames (over 2 KiB) do not fit a coroutine's
     * smallest one, which holds plait's (plait.h, PLAIT_STACK_MIN). */
    struct in_addr v4;
    bool v4_chars = strspn(host, "0123456789abcdefABCDEFxX.") == strlen(host);
    if (v4_chars && inet_aton(host, &v4)) {
        memset(out, 0, sizeof *out);
        out->u.in4.sin_family = AF_INET;
        out->u.in4.sin_port = htons((uint16_t)port);
        out->u.in4.sin_addr = v4;
        out->len = sizeof out->u.in4;
        return 1;
    }
    lookup *l = calloc(1, sizeof *l);
    if (!l || !(l->host = strdup(host))) {
        free(l);
        return -ENOMEM;
    }
    /* the port's digits by hand: snprintf's frames would not fit that stack either */
    plait__text service = {l->service, sizeof l->service, 0};
    plait__text_uint(&service, (unsigned)port);
    plait__text_end(&service);
    l->hints.ai_socktype = type == PLAIT_STREAM ? SOCK_STREAM : SOCK_DGRAM;
    l->hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
    atomic_init(&l->refs, 2);
    plait_task t;
    int r = plait__check_cancel();
    /* A pool task's join runs queued tasks while it waits, the lookup first (it is on
     * the worker's own deque), which would hold the caller past its deadline: there the
     * lookup gets a thread of its own, and the join runs no other task meanwhile (any
     * queued task would hold it as long: tests/test_resolve_in_a_task.c). */
    if (r == 0)
        r = !plait__coro_current() && plait__worker_helping()
                ? plait_thread_start(&t, lookup_run, l, NULL)
                : plait__submit_default(&t, lookup_run, l);
    if (r < 0) {
        free(l->host);
        free(l);
        return r;
    }
    r = plait__join_without_helping(t, NULL, deadline);
    if (r < 0) { /* it finishes on its own and lets go of l */
        atomic_store(&l->abandoned, true);
        plait_detach(t);
        lookup_put(l);
        return r;
    }
    int n = 0;
    if (l->rc != 0) {
        n = lookup_error(l);
    } else {
        for (struct addrinfo *ai = l->res; ai && (size_t)n < cap; ai = ai->ai_next) {
            if (ai->ai_addrlen > sizeof out[n].u)
                continue;
            memset(&out[n], 0, sizeof out[n]);
            memcpy(&out[n].u, ai->ai_addr, ai->ai_addrlen);
            out[n].len = ai->ai_addrlen;
            n++;
        }
        if (n == 0)
            n = -ENOENT;
    }
    lookup_put(l);
    return n;
}

/* ---- stream sockets ---- */

/* An address the kernel gave (accept, getsockname, getpeername, recvfrom), made one its
 * calls take back: a Unix name that fills sun_path comes with a length that counts the
 * NUL the kernel keeps past it (111), which bind, connect and sendto refuse, and so
 * did addr_ok (the addresses plait handed out could not be given back to it). */
static void addr_from_kernel(plait_addr *a)
{
    if (a->u.sa.sa_family == AF_UNIX && a->len > sizeof a->u.un)
        a->len = sizeof a->u.un;
}

static bool addr_ok(const plait_addr *addr)
{
    if (!addr)
        return false;
    sa_family_t f = addr->u.sa.sa_family;
    return (f == AF_INET && addr->len == sizeof addr->u.in4) ||
           (f == AF_INET6 && addr->len == sizeof addr->u.in6) ||
           (f == AF_UNIX && addr->len > offsetof(struct sockaddr_un, sun_path) &&
            addr->len <= sizeof addr->u.un);
}

/* A new non-blocking socket for addr's family; -errno. */
static int new_socket(const plait_addr *addr, int type)
{
    plait__ignore_sigpipe();
    int fd = socket(addr->u.sa.sa_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int off = 0;
    if (addr->u.sa.sa_family == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off) < 0) {
        int e = -errno;
        plait_close(fd); /* no cancellation point, as close(2) is */
        return e;
    }
    return fd;
}

/* Close fd keeping the error that made us give it up.  With plait_close(): connect may
 * have waited on fd, and a scheduler's poller must not trust its registration of the
 * number for the next socket that takes it. */
static int fail(int fd, int error)
{
    plait_close(fd);
    return error;
}

int plait_listen(const plait_addr *addr, int backlog)
{
    if (!addr_ok(addr))
        return -EINVAL;
    int fd = new_socket(addr, SOCK_STREAM);
    if (fd < 0)
        return fd;
    int one = 1;
    if (addr->u.sa.sa_family != AF_UNIX &&
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        return fail(fd, -errno);
    if (bind(fd, &addr->u.sa, addr->len) < 0 ||
        listen(fd, backlog > 0 ? backlog : SOMAXCONN) < 0)
        return fail(fd, -errno);
    return fd;
}

enum { RESOLVE_MAX = 8 };

/* Room for what a name resolves to, off the caller's stack (a kilobyte: a coroutine's
 * smallest stack holds plait's frames, plait_resolve's wait among them, not that). */
static plait_addr *addrs_new(void) { return malloc(RESOLVE_MAX * sizeof(plait_addr)); }

int plait_tcp_listen(const char *host, int port, int backlog)
{
    plait_addr *addrs = addrs_new();
    if (!addrs)
        return -ENOMEM;
    int n = plait_resolve(host, port, PLAIT_STREAM, addrs, RESOLVE_MAX, PLAIT_FOREVER);
    int r = n < 0 ? n : -EADDRNOTAVAIL;
    for (int i = 0; i < n; i++) {
        r = plait_listen(&addrs[i], backlog);
        if (r >= 0)
            break;
    }
    free(addrs);
    if (n >= 0 && !host && r == -EAFNOSUPPORT) { /* no IPv6 here: the IPv4 wildcard */
        plait_addr any4 = {0};
        plait_addr_ip(&any4, "0.0.0.0", port);
        return plait_listen(&any4, backlog);
    }
    return r;
}

int plait_unix_listen(const char *path, int backlog)
{
    plait_addr addr;
    int r = plait_addr_unix(&addr, path);
    return r < 0 ? r : plait_listen(&addr, backlog);
}

/* An error of the connection accept(2) took off the queue, not of the listener: that
 * connection is gone and the next may be fine, so accept(2) tells servers to try
 * again after these.  EOPNOTSUPP, also on its list, is left out: a socket that is not
 * a stream answers it every time. */
static bool connection_failed(int err)
{
    switch (err) {
    case ECONNABORTED: /* a peer gave up meanwhile */
    case ENETDOWN:
    case EPROTO:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case ENETUNREACH:
        return true;
    default:
        return false;
    }
}

/* Failed connections plait_accept skips in a row before it looks at its deadline and
 * its cancellation. */
#define ACCEPT_FAILED_RUN 64

static int accept_cancel_off(int fd, plait_addr *peer, int64_t deadline)
{
    plait__fd_call call;
    plait__fd_call_open(&call, fd, false);
    bool woken = false; /* a wait has said fd is ready */
    unsigned failed = 0; /* connections found failed, skipped */
    for (;;) {
        plait_addr a;
        memset(&a, 0, sizeof a);
        a.len = sizeof a.u;
        int begun = plait__fd_call_begin(&call);
        if (begun < 0)
            return begun;
        int c = accept4(fd, &a.u.sa, &a.len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c >= 0) {
            addr_from_kernel(&a);
            if (peer)
                *peer = a;
            plait__io_turn();
            return c;
        }
        if (connection_failed(errno)) {
            /* On to the next connection, which needs no wait: a try (a past deadline)
             * or a cancelled caller takes one queued behind failed ones too.  A run of
             * failed ones (a flood of aborted handshakes) still gives this scheduler's
             * others their turn, and ends at a close (the turn's -EBADF), or, looked at
             * every ACCEPT_FAILED_RUN of them, a cancellation or the deadline. */
            int r = plait__io_turn_due() ? plait__fd_turn(fd) : 0;
            if (r == 0 && ++failed % ACCEPT_FAILED_RUN == 0)
                r = plait__wait_refused(deadline);
            if (r < 0)
                return r;
            continue;
        }
        /* A Unix listener shut down for reading polls readable (end of file) for good
         * while accept(2) answers EAGAIN (a blocking one: EINVAL, as TCP's does): not
         * listening any more, rather than a wait that would return at once, forever. */
        if (plait__shut_for_reading(fd, woken, deadline))
            return -EINVAL;
        int r = plait__wait_to_retry(&call, PLAIT_READABLE, deadline);
        if (r < 0)
            return r;
        woken = true;
    }
}

/* A cancelled caller still tries where a connection may be made at once (a Unix
 * listener with room), and that connection is its; a TCP connect never completes at
 * once (EINPROGRESS), so a cancelled caller does not start one (a SYN sent for a
 * connection closed at once: the peer would accept a dead one). */
static int connect_cancel_off(const plait_addr *addr, int64_t deadline)
{
    if (addr->u.sa.sa_family != AF_UNIX) {
        int r = plait__check_cancel();
        if (r < 0)
            return r;
    }
    int fd = new_socket(addr, SOCK_STREAM);
    if (fd < 0)
        return fd;
    /* A Unix listener whose backlog is full answers EAGAIN, and nothing can be polled
     * for room: try again, backing off from 1 ms to 50 ms, until the deadline. */
    int64_t backoff = PLAIT_MS;
    bool in_progress = false;
    while (connect(fd, &addr->u.sa, addr->len) < 0) {
        in_progress = errno == EINPROGRESS || errno == EINTR; /* EINTR: it goes on */
        if (in_progress)
            break;
        if (errno != EAGAIN || addr->u.sa.sa_family != AF_UNIX)
            return fail(fd, -errno);
        int r = plait__wait_refused(deadline);
        if (r < 0)
            return fail(fd, r);
        int64_t until = plait_now() + backoff;
        r = plait_sleep_until(deadline < until ? deadline : until);
        if (r < 0 && r != -ETIMEDOUT)
            return fail(fd, r);
        backoff = backoff * 2 > 50 * PLAIT_MS ? 50 * PLAIT_MS : backoff * 2;
    }
    if (!in_progress)
        return fd; /* connected at once */
    int r = plait_wait_fd(fd, PLAIT_WRITABLE, deadline);
    if (r < 0)
        return fail(fd, r);
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return fail(fd, -errno);
    return err ? fail(fd, -err) : fd;
}

int plait_tcp_connect(const char *host, int port, int64_t deadline)
{
    if (!host)
        return -EINVAL;
    plait_addr *addrs = addrs_new();
    if (!addrs)
        return -ENOMEM;
    int n = plait_resolve(host, port, PLAIT_STREAM, addrs, RESOLVE_MAX, deadline);
    int r = n < 0 ? n : -ECONNREFUSED;
    for (int i = 0; i < n; i++) {
        r = plait_connect(&addrs[i], deadline);
        if (r >= 0 || r == -ETIMEDOUT || r == -ECANCELED)
            break;
    }
    free(addrs);
    return r;
}

int plait_unix_connect(const char *path, int64_t deadline)
{
    plait_addr addr;
    int r = plait_addr_unix(&addr, path);
    return r < 0 ? r : plait_connect(&addr, deadline);
}

int plait_shutdown(int fd, int how)
{
    if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR)
        return -EINVAL;
    if (shutdown(fd, how) == 0)
        return 0;
    int e = errno;
    /* Linux shuts an unconnected datagram socket down all the same (its receivers read
     * end of file, a waiting one is woken) and then says ENOTCONN: every UDP socket
     * plait makes is one (plait_udp_bind).  Done, as for a connected one. */
    int type = 0;
    socklen_t len = sizeof type;
    if (e == ENOTCONN && getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 &&
        type == SOCK_DGRAM)
        return 0;
    return -e;
}

/* getsockname or getpeername into out. */
static int name_of(int fd, plait_addr *out, int (*get)(int, struct sockaddr *, socklen_t *))
{
    if (!out)
        return -EINVAL;
    memset(out, 0, sizeof *out);
    out->len = sizeof out->u;
    if (get(fd, &out->u.sa, &out->len) < 0)
        return -errno;
    addr_from_kernel(out);
    return 0;
}

int plait_local_addr(int fd, plait_addr *out) { return name_of(fd, out, getsockname); }
int plait_peer_addr(int fd, plait_addr *out) { return name_of(fd, out, getpeername); }

/* ---- datagrams ---- */

int plait_udp_bind(const plait_addr *addr)
{
    if (!addr_ok(addr) || addr->u.sa.sa_family == AF_UNIX)
        return -EINVAL;
    int fd = new_socket(addr, SOCK_DGRAM);
    if (fd < 0)
        return fd;
    if (bind(fd, &addr->u.sa, addr->len) < 0)
        return fail(fd, -errno);
    return fd;
}

static ssize_t sendto_cancel_off(int fd, const void *buf, size_t len, const plait_addr *to,
                                 int64_t deadline)
{
    int64_t backoff = PLAIT_MS;
    plait__fd_call call;
    plait__fd_call_open(&call, fd, false);
    for (;;) {
        int begun = plait__fd_call_begin(&call);
        if (begun < 0)
            return begun;
        ssize_t n = sendto(fd, buf, len, MSG_NOSIGNAL, to ? &to->u.sa : NULL,
                           to ? to->len : 0);
        if (n >= 0) {
            plait__io_turn();
            return n;
        }
        /* A Unix datagram to a named receiver whose queue is full answers EAGAIN while
         * the socket polls writable (the kernel watches only a connected peer's queue):
         * a wait would return at once.  Try again, backing off from 1 ms to 50 ms, until
         * the deadline, as connect does for a full backlog. */
        if (errno == EAGAIN && to && to->u.sa.sa_family == AF_UNIX) {
            int r = plait__wait_refused(deadline);
            if (r < 0)
                return r;
            int64_t until = plait_now() + backoff;
            /* a wait that plait_close wakes (-EBADF): after a plain sleep the datagram
             * went from whatever socket had taken the number */
            r = plait__fd_call_pause(&call, deadline < until ? deadline : until);
            if (r < 0)
                return r;
            backoff = backoff * 2 > 50 * PLAIT_MS ? 50 * PLAIT_MS : backoff * 2;
            continue;
        }
        int r = plait__wait_to_retry(&call, PLAIT_WRITABLE, deadline);
        if (r < 0)
            return r;
    }
}

/* One receive into buf, the sender into *a; with flags (set on success), recvmsg(2),
 * whose msg_flags say whether the datagram was cut (MSG_TRUNC given to recvfrom(2)
 * would make a stream socket throw its bytes away); else recvfrom(2), some 80 ns a
 * call cheaper here (it copies no message header in). */
static ssize_t receive(int fd, void *buf, size_t len, plait_addr *a, int *flags)
{
    if (!flags)
        return recvfrom(fd, buf, len, 0, &a->u.sa, &a->len);
    struct iovec io = {.iov_base = buf, .iov_len = len};
    struct msghdr m = {.msg_name = &a->u.sa, .msg_namelen = a->len, .msg_iov = &io,
                       .msg_iovlen = 1};
    ssize_t n = recvmsg(fd, &m, 0);
    if (n >= 0) {
        a->len = m.msg_namelen;
        *flags = m.msg_flags & MSG_TRUNC ? PLAIT_TRUNCATED : 0;
    }
    return n;
}

static ssize_t recvfrom_cancel_off(int fd, void *buf, size_t len, plait_addr *from,
                                   int *flags, int64_t deadline)
{
    plait__fd_call call;
    plait__fd_call_open(&call, fd, false);
    bool woken = false; /* a wait has said fd is ready */
    for (;;) {
        plait_addr a;
        memset(&a, 0, sizeof a);
        a.len = sizeof a.u;
        int begun = plait__fd_call_begin(&call);
        if (begun < 0)
            return begun;
        ssize_t n = receive(fd, buf, len, &a, flags);
        if (n >= 0) {
            addr_from_kernel(&a);
            if (from)
                *from = a;
            plait__io_turn();
            return n;
        }
        /* shut down for reading: end of file, from no one (see transfer, fdio.c) */
        if (plait__shut_for_reading(fd, woken, deadline)) {
            if (from)
                memset(from, 0, sizeof *from);
            if (flags)
                *flags = 0;
            return 0;
        }
        int r = plait__wait_to_retry(&call, PLAIT_READABLE, deadline);
        if (r < 0)
            return r;
        woken = true;
    }
}

/* The calls above with no cancellation point in them (internal.h): accept(2),
 * connect(2), sendto(2), recvfrom(2), recvmsg(2) and poll(2) are, and connect's socket,
 * made before its connect(2), was left open by a caller cancelled there. */
int plait_accept(int fd, plait_addr *peer, int64_t deadline)
{
    int cancel_state = plait__cancel_off();
    int r = accept_cancel_off(fd, peer, deadline);
    plait__cancel_restore(cancel_state);
    return r;
}

int plait_connect(const plait_addr *addr, int64_t deadline)
{
    if (!addr_ok(addr))
        return -EINVAL;
    int cancel_state = plait__cancel_off();
    int r = connect_cancel_off(addr, deadline);
    plait__cancel_restore(cancel_state);
    return r;
}

ssize_t plait_sendto(int fd, const void *buf, size_t len, const plait_addr *to,
                     int64_t deadline)
{
    if ((!buf && len) || (to && !addr_ok(to)))
        return -EINVAL;
    int cancel_state = plait__cancel_off();
    ssize_t n = sendto_cancel_off(fd, buf, len, to, deadline);
    plait__cancel_restore(cancel_state);
    return n;
}

ssize_t plait_recvfrom_flags(int fd, void *buf, size_t len, plait_addr *from, int *flags,
                             int64_t deadline)
{
    if ((!buf && len) || len > SSIZE_MAX) /* (no return value could count more) */
        return -EINVAL;
    int cancel_state = plait__cancel_off();
    ssize_t n = recvfrom_cancel_off(fd, buf, len, from, flags, deadline);
    plait__cancel_restore(cancel_state);
    return n;
}

ssize_t plait_recvfrom(int fd, void *buf, size_t len, plait_addr *from, int64_t deadline)
{
    return plait_recvfrom_flags(fd, buf, len, from, NULL, deadline);
}

/* ---- options ---- */

typedef struct { int level, name; } sockopt;

static bool option_of(enum plait_sockopt option, sockopt *o)
{
    switch (option) {
    case PLAIT_NODELAY: *o = (sockopt){IPPROTO_TCP, TCP_NODELAY}; return true;
    case PLAIT_REUSEADDR: *o = (sockopt){SOL_SOCKET, SO_REUSEADDR}; return true;
    case PLAIT_REUSEPORT: *o = (sockopt){SOL_SOCKET, SO_REUSEPORT}; return true;
    case PLAIT_KEEPALIVE: *o = (sockopt){SOL_SOCKET, SO_KEEPALIVE}; return true;
    case PLAIT_RCVBUF: *o = (sockopt){SOL_SOCKET, SO_RCVBUF}; return true;
    case PLAIT_SNDBUF: *o = (sockopt){SOL_SOCKET, SO_SNDBUF}; return true;
    }
    return false;
}

/* -errno of a failed socket option call: an option the socket has not is -ENOPROTOOPT. */
static int option_error(void)
{
    return errno == EOPNOTSUPP ? -ENOPROTOOPT : -errno;
}

/* Whether fd's kind of socket has the option: no-delay and keep-alive are TCP's (a
 * Unix or UDP socket would take them silently, to no effect), reuse-port an Internet
 * socket's (a Unix socket's get said 0 where its set was refused).  0 where it has,
 * -ENOPROTOOPT for another socket, -ENOTSOCK, -EBADF.  0 for every other option. */
static int option_fits(int fd, enum plait_sockopt option)
{
    bool tcp = option == PLAIT_NODELAY || option == PLAIT_KEEPALIVE;
    if (!tcp && option != PLAIT_REUSEPORT)
        return 0;
    int kind = 0;
    socklen_t len = sizeof kind;
    if (getsockopt(fd, SOL_SOCKET, tcp ? SO_PROTOCOL : SO_DOMAIN, &kind, &len) < 0)
        return -errno;
    bool fits = tcp ? kind == IPPROTO_TCP : kind == AF_INET || kind == AF_INET6;
    return fits ? 0 : -ENOPROTOOPT;
}

int plait_socket_set(int fd, enum plait_sockopt option, int value)
{
    sockopt o;
    if (!option_of(option, &o) || value < 0)
        return -EINVAL;
    int fits = option_fits(fd, option);
    if (fits < 0)
        return fits;
    int v = option == PLAIT_RCVBUF || option == PLAIT_SNDBUF ? value : value != 0;
    /* the idle time first: refused, it leaves keep-alive as it was */
    if (option == PLAIT_KEEPALIVE && value > 0 &&
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &value, sizeof value) < 0)
        return option_error();
    if (setsockopt(fd, o.level, o.name, &v, sizeof v) < 0)
        return option_error();
    return 0;
}

int plait_socket_get(int fd, enum plait_sockopt option, int *value)
{
    sockopt o;
    if (!option_of(option, &o) || !value)
        return -EINVAL;
    int fits = option_fits(fd, option);
    if (fits < 0)
        return fits;
    int v = 0;
    socklen_t len = sizeof v;
    if (getsockopt(fd, o.level, o.name, &v, &len) < 0)
        return option_error();
    if (option == PLAIT_KEEPALIVE && v &&
        getsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &v, &len) < 0)
        return option_error();
    *value = v;
    return 0;
}
