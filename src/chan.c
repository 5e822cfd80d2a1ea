/*
 * chan.c — channels, buffered and unbuffered, and select.
 *
 * A channel is a ring buffer of fixed-size elements and two wait queues (senders,
 * receivers) under one spin lock.  Elements move by hand-off wherever possible: a
 * send that finds a waiting receiver copies straight to it; a receive that frees a
 * slot in a full buffer pulls the first waiting sender's element in.  "To it" is the
 * node's data: for an element of up to PLAIT__WAITER_PAYLOAD bytes, the waiter's own
 * payload, next to its outcome, which the receiver copies out once woken (one cache
 * line less crossing between CPUs per hand-off: plait__wait_on_element); for a larger
 * one, the receiver's buffer.  A select's cases carry the caller's buffers.  The
 * party completing the hand-off claims the other's waiter first (waiter.c), so an
 * element is only ever copied to or from a waiter that will report success:
 * nothing is lost or delivered twice, whatever deadlines or cancellations race.
 *
 * Invariants (under the lock, stale select nodes aside): receivers wait only while
 * the buffer is empty; senders only while it is full (capacity 0: always full); a
 * closed channel has no waiter: close wakes them all with -EPIPE.
 *
 * select enqueues one node per case, each on its own channel, taking one lock at a
 * time (no lock ordering needed), trying each case in a random order first.  A
 * select never pairs with itself: its send and receive cases on one channel skip
 * each other's nodes.  Its nodes are an array indexed by case, and the cases on one
 * channel are rung together (same_next), so whoever claims the select through one of
 * them unlinks the others too (waiter.c, invariant 4): the channel is left with none.
 * So all of a channel's cases are tried in one hold of its lock; one that is not ready
 * at its turn while another case of its channel, whose turn is later, is ready leaves
 * the channel for that turn (nothing of it linked yet): the first ready case in the
 * random order wins, each as likely as any other.
 *
 * A select whose claim of itself found its peer taken in between (retry, below) takes
 * its nodes off their channels and looks at every channel again.  Meanwhile the
 * channels it waited on have no node of it, yet the select is still under way and
 * comes back to them: each is pinned (retrying_selects) from before its node goes until
 * the select's next hold of its lock that does not retry again, so that its destroy
 * answers -EBUSY (it once freed the channel the select was about to lock; then the
 * channel where a second retry began, unpinned as that hold began).  A pin goes in
 * that hold, never later, so a select woken through a channel has left it by then, as
 * the first pass's.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

struct plait_chan {
    plait__spinlock lock;
    size_t elem_size;
    size_t capacity;
    size_t len;
    size_t head;
    bool closed;
    /* selects between their withdrawal of a node here and their next look at the
     * channel (plait_select's retry): the channel is in use all the same */
    unsigned retrying_selects;
    plait__waitq senders;   /* node data: the element to send */
    plait__waitq receivers; /* node data: where to receive */
    char buffer[];
};

int plait_chan_create(plait_chan **chan, size_t elem_size, size_t capacity)
{
    if (!chan || elem_size == 0 || elem_size > PLAIT_CHAN_ELEM_MAX ||
        capacity > PLAIT_CHAN_CAPACITY_MAX)
        return -EINVAL;
    if (capacity > (SIZE_MAX - sizeof(plait_chan)) / elem_size)
        return -ENOMEM;
    plait_chan *ch = malloc(sizeof *ch + elem_size * capacity);
    if (!ch)
        return -ENOMEM;
    memset(ch, 0, sizeof *ch);
    ch->elem_size = elem_size;
    ch->capacity = capacity;
    *chan = ch;
    return 0;
}

int plait_chan_destroy(plait_chan *ch)
{
    if (!ch)
        return -EINVAL;
    plait__spin_lock(&ch->lock);
    bool busy = !plait__waitq_empty(&ch->senders) || !plait__waitq_empty(&ch->receivers) ||
                ch->retrying_selects;
    plait__spin_unlock(&ch->lock);
    if (busy)
        return -EBUSY;
    free(ch);
    return 0;
}

size_t plait_chan_len(plait_chan *ch)
{
    if (!ch)
        return 0;
    plait__spin_lock(&ch->lock);
    size_t len = ch->len;
    plait__spin_unlock(&ch->lock);
    return len;
}

static void ring_push(plait_chan *ch, const void *elem)
{
    size_t tail = (ch->head + ch->len) % ch->capacity;
    memcpy(ch->buffer + tail * ch->elem_size, elem, ch->elem_size);
    ch->len++;
}

static void ring_pop(plait_chan *ch, void *elem)
{
    memcpy(elem, ch->buffer + ch->head * ch->elem_size, ch->elem_size);
    ch->head = (ch->head + 1) % ch->capacity;
    ch->len--;
}

/* Whether a send, or a receive, would complete now (under the lock); self: a select's
 * own nodes are no partner. */
static bool send_may_go(plait_chan *ch, plait__waiter *self)
{
    return ch->closed || ch->len < ch->capacity || plait__waitq_has_other(&ch->receivers, self);
}

static bool recv_may_go(plait_chan *ch, plait__waiter *self)
{
    return ch->len > 0 || ch->closed || plait__waitq_has_other(&ch->senders, self);
}

/*
 * The immediate part of a send or a receive, with the lock held.  Returns 1 when the
 * operation completed (*result: 0 or -EPIPE; written only then, as a select's other
 * cases keep theirs), 0 when it must wait.
 *
 * For select, self is the selecting waiter, which must be claimed before anything is
 * moved: -1 when another case claimed it first (its outcome is on the way).  The
 * peer found at first can be claimed by someone else (its deadline, another of its
 * cases) in the moment between; then nothing was moved, and -2 asks the caller to
 * give its claim back and start over.
 */
static int try_send(plait_chan *ch, const void *elem, plait__waiter *self, int *result,
                    plait__wakeups *later)
{
    if (!send_may_go(ch, self))
        return 0;
    if (self && !plait__waiter_claim(self))
        return -1;
    plait__wait_node *node;
    if (ch->closed) {
        *result = -EPIPE;
        return 1;
    }
    if ((node = plait__waitq_claim_except(&ch->receivers, self))) {
        memcpy(node->data, elem, ch->elem_size);
        plait__waiter_signal(node->waiter, 0, node->index, later);
    } else if (ch->len < ch->capacity) {
        ring_push(ch, elem);
    } else {
        return self ? -2 : 0;
    }
    *result = 0;
    return 1;
}

static int try_recv(plait_chan *ch, void *elem, plait__waiter *self, int *result,
                    plait__wakeups *later)
{
    if (!recv_may_go(ch, self))
        return 0;
    if (self && !plait__waiter_claim(self))
        return -1;
    plait__wait_node *node;
    if (ch->len > 0) {
        ring_pop(ch, elem);
        if ((node = plait__waitq_claim_except(&ch->senders, self))) {
            ring_push(ch, node->data);
            plait__waiter_signal(node->waiter, 0, node->index, later);
        }
    } else if ((node = plait__waitq_claim_except(&ch->senders, self))) {
        memcpy(elem, node->data, ch->elem_size);
        plait__waiter_signal(node->waiter, 0, node->index, later);
    } else if (ch->closed) {
        *result = -EPIPE;
        return 1;
    } else {
        return self ? -2 : 0;
    }
    *result = 0;
    return 1;
}

int plait_chan_send(plait_chan *ch, const void *elem, int64_t deadline)
{
    if (!ch || !elem)
        return -EINVAL;
    int result;
    plait__wakeups later;
    later.n = 0;
    plait__spin_lock(&ch->lock);
    if (try_send(ch, elem, NULL, &result, &later) == 1) {
        plait__spin_unlock(&ch->lock);
        plait__wakeups_deliver(&later);
        return result;
    }
    return plait__wait_on_element(&ch->senders, &ch->lock, (void *)elem, ch->elem_size,
                                  false, deadline, "channel send", ch);
}

int plait_chan_recv(plait_chan *ch, void *elem, int64_t deadline)
{
    if (!ch || !elem)
        return -EINVAL;
    int result;
    plait__wakeups later;
    later.n = 0;
    plait__spin_lock(&ch->lock);
    if (try_recv(ch, elem, NULL, &result, &later) == 1) {
        plait__spin_unlock(&ch->lock);
        plait__wakeups_deliver(&later);
        return result;
    }
    return plait__wait_on_element(&ch->receivers, &ch->lock, elem, ch->elem_size, true,
                                  deadline, "channel receive", ch);
}

int plait_chan_close(plait_chan *ch)
{
    if (!ch)
        return -EINVAL;
    plait__wakeups later;
    later.n = 0;
    plait__spin_lock(&ch->lock);
    if (ch->closed) {
        plait__spin_unlock(&ch->lock);
        return -EPIPE;
    }
    ch->closed = true;
    plait__wait_node *node;
    while ((node = plait__waitq_claim(&ch->receivers)))
        plait__waiter_signal(node->waiter, -EPIPE, node->index, &later);
    while ((node = plait__waitq_claim(&ch->senders)))
        plait__waiter_signal(node->waiter, -EPIPE, node->index, &later);
    plait__spin_unlock(&ch->lock);
    plait__wakeups_deliver(&later);
    return 0;
}

/* order[0..n) := 0..n-1 in a random order (Fisher-Yates, inside out), so that each
 * ready case of a select is as likely to be chosen as any other, wherever it stands. */
static void random_order(uint32_t *order, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        uint32_t j = plait__random(i + 1);
        if (j != i) /* (order[i] is not written yet) */
            order[i] = order[j];
        order[j] = i;
    }
}

/* A case's channel and index, to sort the cases of a large select by channel. */
typedef struct {
    plait_chan *chan;
    uint32_t index;
} case_of_channel;

static int by_channel_then_index(const void *a, const void *b)
{
    const case_of_channel *x = a, *y = b;
    if (x->chan != y->chan)
        return (uintptr_t)x->chan < (uintptr_t)y->chan ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* same_next[i] := the next case after i (by index, wrapping) on i's channel; i for a
 * case alone on its channel.  Returns whether any case shares its channel.  A select of
 * up to 8 cases compares every pair; a larger one sorts (scratch: n entries). */
static bool rings_of_one_channel(const plait_select_case *cases, uint32_t n, int *same_next,
                                 case_of_channel *scratch)
{
    bool shared = false;
    if (n <= 8) {
        for (uint32_t i = 0; i < n; i++) {
            uint32_t first = i, next = i;
            for (uint32_t j = 0; j < n; j++)
                if (j != i && cases[j].chan == cases[i].chan) {
                    if (j < first)
                        first = j;
                    if (j > i && next == i)
                        next = j;
                }
            same_next[i] = (int)(next != i ? next : first);
            shared |= same_next[i] != (int)i;
        }
        return shared;
    }
    for (uint32_t i = 0; i < n; i++)
        scratch[i] = (case_of_channel){cases[i].chan, i};
    plait__sort(scratch, n, sizeof *scratch, by_channel_then_index); /* (not qsort: sort.c) */
    for (uint32_t run = 0, end; run < n; run = end) {
        for (end = run + 1; end < n && scratch[end].chan == scratch[run].chan; end++)
            same_next[scratch[end - 1].index] = (int)scratch[end].index;
        same_next[scratch[end - 1].index] = (int)scratch[run].index;
        shared |= end - run > 1;
    }
    return shared;
}

/* Try case i of a select, its channel's lock held: complete it (1), or link its node
 * (0, when the select may wait: its index goes into linked[]), or -1/-2 as try_send. */
static int try_case(plait_select_case *cases, size_t i, plait__wait_node *nodes,
                    const int *same_next, plait__waiter *w, bool may_block, uint32_t *linked,
                    size_t *n_linked, plait__wakeups *later)
{
    plait_select_case *c = &cases[i];
    plait_chan *ch = c->chan;
    int outcome = c->op == PLAIT_SEND ? try_send(ch, c->elem, w, &c->result, later)
                                      : try_recv(ch, c->elem, w, &c->result, later);
    if (outcome == 1) {
        w->index = (int)i;
    } else if (outcome == 0 && may_block) {
        plait__waitq_push_case(c->op == PLAIT_SEND ? &ch->senders : &ch->receivers,
                               &ch->lock, &nodes[i], w, (int)i, c->elem, same_next[i]);
        linked[(*n_linked)++] = (uint32_t)i;
    }
    return outcome;
}

/* Whether case i's channel must wait for a later turn (its lock held): case i, whose
 * turn it is, would not complete, and another of its channel's cases, whose turn comes
 * later in the order (pos), would.  Completing that one now would make a channel with
 * many cases win as often as it has cases, ready or not; each ready case is to be as
 * likely as any other.  Nothing of the channel is linked yet, so coming back to it is
 * safe (no waker can have claimed the select through it). */
static bool case_may_go(const plait_select_case *c, plait__waiter *w)
{
    return c->op == PLAIT_SEND ? send_may_go(c->chan, w) : recv_may_go(c->chan, w);
}

static bool channel_later(const plait_select_case *cases, size_t i, const int *same_next,
                          const uint32_t *pos, plait__waiter *w)
{
    if (case_may_go(&cases[i], w))
        return false;
    for (size_t j = (size_t)same_next[i]; j != i; j = (size_t)same_next[j])
        if (pos[j] > pos[i] && case_may_go(&cases[j], w))
            return true;
    return false;
}

/* Take the pins of case i's channel (its lock held): those of every case on it that a
 * retry pinned.  Returns how many went. */
static size_t unpin_ring(const plait_select_case *cases, size_t i, const int *same_next,
                         bool *pinned)
{
    size_t gone = 0, c = i;
    do {
        if (pinned[c]) {
            pinned[c] = false;
            gone++;
        }
        c = (size_t)same_next[c];
    } while (c != i);
    cases[i].chan->retrying_selects -= (unsigned)gone;
    return gone;
}

int plait_select(plait_select_case *cases, size_t n, int64_t deadline)
{
    if (!cases || n == 0 || n > INT32_MAX)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!cases[i].chan || !cases[i].elem ||
            (cases[i].op != PLAIT_SEND && cases[i].op != PLAIT_RECV))
            return -EINVAL;
    /* nodes[i] is case i's (a ring of same_next over one channel's finds its others);
     * linked[0..n_linked) the cases whose nodes this round linked; seen[i]: case i was
     * tried this round (with a case before it on its channel); pos[i]: case i's turn in
     * order[] (where cases share a channel: channel_later) */
    plait__wait_node small[8];
    uint32_t small_order[8], small_pos[8], small_linked[8];
    int small_same_next[8];
    bool small_seen[8], small_pinned[8];
    plait__wait_node *nodes = small;
    uint32_t *order = small_order, *pos = small_pos, *linked = small_linked;
    int *same_next = small_same_next;
    bool *seen = small_seen, *pinned = small_pinned;
    case_of_channel *scratch = NULL;
    if (n > 8) { /* all in one block */
        size_t per_case = sizeof *nodes + sizeof *scratch + sizeof *order + sizeof *pos +
                          sizeof *linked + sizeof *same_next + sizeof *seen + sizeof *pinned;
        if (n > SIZE_MAX / per_case) /* (a 32-bit size_t) */
            return -ENOMEM;
        nodes = malloc(n * per_case);
        if (!nodes)
            return -ENOMEM;
        scratch = (case_of_channel *)(nodes + n);
        order = (uint32_t *)(scratch + n);
        pos = order + n;
        linked = pos + n;
        same_next = (int *)(linked + n);
        seen = (bool *)(same_next + n);
        pinned = seen + n;
    }
    bool rings = rings_of_one_channel(cases, (uint32_t)n, same_next, scratch);
    random_order(order, (uint32_t)n);
    bool may_block = !plait__deadline_passed(deadline) && plait__check_cancel() == 0;
    plait__waiter w;
    plait__waiter_init(&w, "select", cases);
    w.nodes = nodes; /* (a fork's look skips those never linked: no lock) */
    w.n_nodes = n;
    for (size_t i = 0; i < n; i++)
        nodes[i].lock = NULL;
    int r = 0, outcome; /* 1: completed here, 0: must wait, -1: decided elsewhere */
    size_t n_linked, n_pinned = 0; /* pinned[i]: case i's channel pinned by a retry */
retry:
    outcome = 0;
    n_linked = 0;
    if (rings) /* (a claimer walks a ring: the nodes this round has not linked yet) */
        for (size_t k = 0; k < n; k++) {
            nodes[k].queue = NULL;
            nodes[k].index = (int)k;
            nodes[k].same_next = same_next[k];
            seen[k] = false;
            pos[order[k]] = (uint32_t)k;
        }
    for (size_t k = 0; k < n && outcome == 0; k++) {
        size_t i = order[k];
        if (rings && seen[i])
            continue;
        plait_chan *ch = cases[i].chan;
        plait__wakeups later;
        later.n = 0;
        plait__spin_lock(&ch->lock);
        if (rings && channel_later(cases, i, same_next, pos, &w)) {
            plait__spin_unlock(&ch->lock);
            continue;
        }
        /* Every case on this channel in one hold of its lock: once one of them is linked,
         * all are, and whoever claims the select through one unlinks them all; the
         * select does not come back to the channel, which its waker may destroy at once
         * (it once took the lock of a destroyed channel for a case it had not reached).
         * So its pins go in this hold too, unless it retries: it comes back. */
        size_t c = i;
        do {
            outcome = try_case(cases, c, nodes, same_next, &w, may_block, linked, &n_linked,
                               &later);
            if (rings)
                seen[c] = true;
            c = (size_t)same_next[c];
        } while (outcome == 0 && c != i);
        if (n_pinned && outcome != -2)
            n_pinned -= unpin_ring(cases, i, same_next, pinned);
        plait__spin_unlock(&ch->lock);
        plait__wakeups_deliver(&later);
    }
    if (outcome == -2) {
        /* Withdraw every node while the claim is still ours, so that no waker can
         * claim through one meanwhile (and its channel be destroyed before we take its
         * lock); then give the claim back and look again.  A waker that skipped a node
         * while we held the claim has moved on; the new look sees what it left. */
        if (!n_pinned)
            memset(pinned, 0, n * sizeof *pinned);
        for (size_t k = 0; k < n_linked; k++) {
            plait_chan *ch = cases[linked[k]].chan; /* pinned before its node goes */
            if (!pinned[linked[k]]) { /* (the channel it met -2 on keeps its pins) */
                plait__spin_lock(&ch->lock);
                ch->retrying_selects++;
                plait__spin_unlock(&ch->lock);
                pinned[linked[k]] = true;
                n_pinned++;
            }
            plait__wait_node_withdraw(&nodes[linked[k]]);
        }
        atomic_store(&w.claimed, 0);
        /* a fresh order: two selects that met so in mirror image do not meet again */
        random_order(order, (uint32_t)n);
        goto retry;
    }
    if (outcome != 1) {
        if (outcome == 0 && !may_block && plait__waiter_claim(&w))
            r = plait__check_cancel() < 0 ? -ECANCELED : -ETIMEDOUT;
        else
            r = plait__waiter_block(&w, deadline);
    }
    for (size_t k = 0; k < n_linked; k++)
        plait__wait_node_unlink(&nodes[linked[k]]);
    /* the channels a retry pinned and the last pass did not reach (it completed, or
     * was claimed, first): no node of the select is on them */
    for (size_t i = 0; n_pinned && i < n; i++)
        if (pinned[i]) {
            plait__spin_lock(&cases[i].chan->lock);
            n_pinned -= unpin_ring(cases, i, same_next, pinned);
            plait__spin_unlock(&cases[i].chan->lock);
        }
    if (nodes != small)
        free(nodes);
    if (r < 0 && w.index < 0)
        return r;
    if (outcome != 1)
        cases[w.index].result = r;
    return w.index;
}
