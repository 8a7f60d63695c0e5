/*
 * loadgen.c - the closed-loop load generator of udp-echo's benchmark kit.
 *
 * Keeps --window W datagrams in flight on each of --flows F connected sockets
 * (a source port each). A datagram is --size B bytes: a 16-byte header (u64
 * id, u64 CLOCK_MONOTONIC send time in ns, host byte order) and then a fixed
 * pattern. Every reply is checked (length, id, send time, pattern), its round
 * trip goes into a log-scale histogram and a new datagram takes its place at
 * once. One unanswered after --timeout-ms counts as lost and its place is
 * refilled, so a loss never stalls the loop; a reply that comes after that is
 * "late" (so is a duplicate), anything unrecognisable "corrupt".
 *
 * Only datagrams sent in the measured interval count (after --warmup, for
 * --duration seconds). Then nothing new is sent and the ones in flight are
 * awaited (for at most the timeout), so sent = received + lost + corrupt
 * (corrupt replies that match a datagram).
 *
 * Sending: the free places of a flow go out in one sendmsg with UDP GSO
 * (UDP_SEGMENT: the kernel cuts the buffer, the server receives separate
 * datagrams), which keeps the generator cheaper per datagram than the servers
 * it measures; with --no-gso, or when the kernel refuses, sendmmsg. Receiving:
 * recvmmsg, 64 at a time; one flow blocks in it, several wait in epoll, and
 * --spin polls without sleeping.
 *
 *   --host ADDR (127.0.0.1) --port N (required) --size B (64, >= 16)
 *   --window W (32) --flows F (1) --duration S (3) --warmup S (0.5)
 *   --timeout-ms MS (200) --spin --no-gso --json
 *
 * Prints one summary line on stdout, or on stderr with --json, which prints
 * one JSON object on stdout. Exit status: 0 ok, 1 bad usage or setup, 2 not a
 * single reply (not even a wrong one).
 *
 * Build: cc -O2 -Wall -Wextra -o loadgen loadgen.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

#define HEADER 16
#define BURST 64                /* datagrams per send or receive call, at most */
#define GSO_BYTES 60000         /* one GSO send stays below the 64 KiB datagram limit */
#define SLOT_BITS 20            /* id = generation << SLOT_BITS | slot */
#define MAX_WINDOW 65536
#define SCAN_NS 10000000ull     /* look for lost datagrams every 10 ms */
#define SUB 32                  /* histogram: 32 buckets per power of two (< 3% wide) */
#define BUCKETS (64 * SUB)

struct slot {                   /* one place in a flow's window */
    uint64_t gen;               /* how many datagrams it has sent */
    uint64_t sent_ns;
    int busy;
};

struct flow {
    int fd;
    struct slot *slots;
    int *idle;                  /* stack of idle slot numbers */
    int nidle;
};

static struct {
    uint64_t sent, received, lost, corrupt, late, send_errors, max_ns;
    uint64_t hist[BUCKETS];
} st;

static int size = 64, window = 32, nflows = 1, spin, json, gso = 1;
static double duration = 3, warmup = 0.5, timeout_ms = 200;
static uint64_t t_start, t_end, timeout_ns;    /* the measured interval */
static unsigned char *pattern;                  /* a datagram after its header */
static unsigned char *sendbuf;                  /* BURST datagrams, back to back */
static struct iovec send_iov[BURST];
static struct mmsghdr send_msgs[BURST];

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int measured(uint64_t sent_ns) { return sent_ns >= t_start && sent_ns < t_end; }

static void *zalloc(size_t n, size_t each)
{
    void *p = calloc(n, each);
    if (!p) {
        perror("calloc");
        exit(1);
    }
    return p;
}

/* Histogram bucket of a round trip: exact below SUB ns, then SUB per power of two. */
static int bucket(uint64_t ns)
{
    if (ns < SUB)
        return (int)ns;
    int e = 63 - __builtin_clzll(ns);       /* 2^e <= ns, e >= 5 */
    return (e - 4) * SUB + (int)((ns >> (e - 5)) - SUB);
}

/* The middle of bucket b, in ns. */
static double bucket_mid(int b)
{
    if (b < SUB)
        return b;
    int e = b / SUB + 4;
    double low = (double)((uint64_t)(SUB + b % SUB) << (e - 5));
    return low + (double)(1ull << (e - 5)) / 2;
}

static double quantile_us(double q)
{
    uint64_t total = 0, seen = 0;
    for (int b = 0; b < BUCKETS; b++)
        total += st.hist[b];
    if (total == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)total);
    if (rank < 1)
        rank = 1;
    for (int b = 0; b < BUCKETS; b++) {
        seen += st.hist[b];
        if (seen >= rank) {
            double mid = bucket_mid(b);
            return (mid < (double)st.max_ns ? mid : (double)st.max_ns) / 1e3;
        }
    }
    return (double)st.max_ns / 1e3;
}

/* Send the first n datagrams of sendbuf: one GSO sendmsg when it can, else sendmmsg. */
static void send_burst(int fd, int n)
{
    if (gso && n > 1) {
        union { char buf[CMSG_SPACE(sizeof(uint16_t))]; struct cmsghdr align; } ctl;
        uint16_t seg = (uint16_t)size;
        struct iovec iov = { sendbuf, (size_t)n * (size_t)size };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                             .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf };
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof seg);
        memcpy(CMSG_DATA(c), &seg, sizeof seg);
        if (sendmsg(fd, &mh, 0) >= 0)
            return;
        if (errno != EINVAL && errno != EIO && errno != EOPNOTSUPP && errno != ENOPROTOOPT) {
            st.send_errors++;   /* e.g. ECONNREFUSED: these time out as lost */
            return;
        }
        fprintf(stderr, "loadgen: no UDP GSO here (%s), sending with sendmmsg\n", strerror(errno));
        gso = 0;
    }
    for (int done = 0; done < n;) {
        int r = sendmmsg(fd, send_msgs + done, (unsigned)(n - done), 0);
        if (r <= 0)
            st.send_errors++;
        done += r > 0 ? r : 1;  /* a datagram that failed times out as lost */
    }
}

/* Put a new datagram in every idle place of flow f. */
static void refill(struct flow *f, uint64_t now)
{
    int per_send = BURST;
    if (gso && per_send * size > GSO_BYTES)
        per_send = size < GSO_BYTES ? GSO_BYTES / size : 1;
    while (f->nidle > 0) {
        int n = f->nidle < per_send ? f->nidle : per_send;
        for (int i = 0; i < n; i++) {
            int k = f->idle[--f->nidle];
            struct slot *s = &f->slots[k];
            uint64_t id = ++s->gen << SLOT_BITS | (uint64_t)k;
            s->sent_ns = now;
            s->busy = 1;
            memcpy(sendbuf + (size_t)i * size, &id, 8);
            memcpy(sendbuf + (size_t)i * size + 8, &now, 8);
        }
        send_burst(f->fd, n);
        if (measured(now))
            st.sent += (uint64_t)n;
    }
}

static void release(struct flow *f, int k)
{
    f->slots[k].busy = 0;
    f->idle[f->nidle++] = k;
}

/* Check one reply of flow f and free its place. */
static void check(struct flow *f, const unsigned char *p, size_t len, int truncated, uint64_t now)
{
    uint64_t id, sent_ns;
    if (len < HEADER) {
        st.corrupt++;
        return;
    }
    memcpy(&id, p, 8);
    memcpy(&sent_ns, p + 8, 8);
    uint64_t k = id & ((1u << SLOT_BITS) - 1), gen = id >> SLOT_BITS;
    if (k >= (uint64_t)window) {
        st.corrupt++;
        return;
    }
    struct slot *s = &f->slots[k];
    if (!s->busy || gen != s->gen) {
        if (gen >= 1 && gen <= s->gen)
            st.late++;          /* after its timeout, or a duplicate */
        else
            st.corrupt++;
        return;
    }
    int intact = !truncated && len == (size_t)size && sent_ns == s->sent_ns &&
                 !memcmp(p + HEADER, pattern, (size_t)size - HEADER);
    if (measured(s->sent_ns)) {
        if (intact) {
            uint64_t rtt = now - s->sent_ns;
            st.received++;
            st.hist[bucket(rtt)]++;
            if (rtt > st.max_ns)
                st.max_ns = rtt;
        } else {
            st.corrupt++;
        }
    }
    release(f, (int)k);
}

/* Take every reply queued on flow f, checking each and refilling the window
 * after each receive call. With wait, block for the first (up to SO_RCVTIMEO). */
static void take_replies(struct flow *f, int wait)
{
    static unsigned char *bufs;
    static struct iovec iov[BURST];
    static struct mmsghdr msgs[BURST];
    size_t cap = (size_t)size + 64;     /* room to see that a reply is too long */

    if (!bufs) {
        bufs = zalloc(BURST, cap);
        for (int i = 0; i < BURST; i++) {
            iov[i] = (struct iovec){ bufs + (size_t)i * cap, cap };
            msgs[i].msg_hdr = (struct msghdr){ .msg_iov = &iov[i], .msg_iovlen = 1 };
        }
    }
    for (;;) {
        int n = recvmmsg(f->fd, msgs, BURST, wait ? MSG_WAITFORONE : MSG_DONTWAIT, NULL);
        wait = 0;
        if (n < 0 && (errno == EINTR || errno == ECONNREFUSED))
            continue;           /* an ICMP error is reported once: read on */
        if (n <= 0)
            return;             /* nothing queued */
        uint64_t now = now_ns();
        for (int i = 0; i < n; i++)
            check(f, iov[i].iov_base, msgs[i].msg_len,
                  (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) != 0, now);
        if (now < t_end)
            refill(f, now);
        if (n < BURST)
            return;
    }
}

/* Declare lost every datagram sent before `before`; returns how many are still out. */
static int expire(struct flow *flows, uint64_t before)
{
    int out = 0;
    for (int i = 0; i < nflows; i++)
        for (int k = 0; k < window; k++) {
            struct slot *s = &flows[i].slots[k];
            if (s->busy && s->sent_ns < before) {
                if (measured(s->sent_ns))
                    st.lost++;
                release(&flows[i], k);
            }
            out += s->busy;
        }
    return out;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void usage(void)
{
    fprintf(stderr, "usage: loadgen --port N [--host ADDR] [--size B] [--window W] [--flows F]\n"
                    "               [--duration S] [--warmup S] [--timeout-ms MS] [--spin] [--no-gso] [--json]\n");
    exit(1);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *port = NULL;
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        if (!strcmp(opt, "--json")) { json = 1; continue; }
        if (!strcmp(opt, "--spin")) { spin = 1; continue; }
        if (!strcmp(opt, "--no-gso")) { gso = 0; continue; }
        if (++i >= argc)
            usage();
        const char *val = argv[i];
        if (!strcmp(opt, "--host")) host = val;
        else if (!strcmp(opt, "--port")) port = val;
        else if (!strcmp(opt, "--size")) size = atoi(val);
        else if (!strcmp(opt, "--window")) window = atoi(val);
        else if (!strcmp(opt, "--flows")) nflows = atoi(val);
        else if (!strcmp(opt, "--duration")) duration = atof(val);
        else if (!strcmp(opt, "--warmup")) warmup = atof(val);
        else if (!strcmp(opt, "--timeout-ms")) timeout_ms = atof(val);
        else usage();
    }
    if (!port || size < HEADER || size > 65507 || window < 1 || window > MAX_WINDOW ||
        nflows < 1 || nflows > 4096 || !(duration > 0) || !(warmup >= 0) || !(timeout_ms > 0))
        usage();
    timeout_ns = (uint64_t)(timeout_ms * 1e6);

    pattern = zalloc(1, (size_t)size);
    for (int i = 0; i < size - HEADER; i++)
        pattern[i] = (unsigned char)(i * 7 + 'a');
    sendbuf = zalloc(BURST, (size_t)size);
    for (int i = 0; i < BURST; i++) {
        memcpy(sendbuf + (size_t)i * size + HEADER, pattern, (size_t)size - HEADER);
        send_iov[i] = (struct iovec){ sendbuf + (size_t)i * size, (size_t)size };
        send_msgs[i].msg_hdr = (struct msghdr){ .msg_iov = &send_iov[i], .msg_iovlen = 1 };
    }

    struct addrinfo hints = { .ai_socktype = SOCK_DGRAM, .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV };
    struct addrinfo *ai;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc) {
        fprintf(stderr, "loadgen: %s port %s: %s\n", host, port, gai_strerror(rc));
        return 1;
    }
    int ep = epoll_create1(0);
    if (ep < 0)
        return perror("epoll_create1"), 1;
    struct flow *flows = zalloc((size_t)nflows, sizeof *flows);
    for (int i = 0; i < nflows; i++) {
        struct flow *f = &flows[i];
        int bytes = 4 << 20;                    /* capped by net.core.[rw]mem_max */
        struct timeval tick = { 0, 1000 };      /* a blocking receive returns every ms */
        if ((f->fd = socket(ai->ai_family, SOCK_DGRAM, 0)) < 0)
            return perror("socket"), 1;
        setsockopt(f->fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
        setsockopt(f->fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
        setsockopt(f->fd, SOL_SOCKET, SO_RCVTIMEO, &tick, sizeof tick);
        if (connect(f->fd, ai->ai_addr, ai->ai_addrlen) < 0)
            return perror("connect"), 1;
        f->slots = zalloc((size_t)window, sizeof *f->slots);
        f->idle = zalloc((size_t)window, sizeof *f->idle);
        for (int k = window - 1; k >= 0; k--)
            f->idle[f->nidle++] = k;
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = f };
        if (epoll_ctl(ep, EPOLL_CTL_ADD, f->fd, &ev) < 0)
            return perror("epoll_ctl"), 1;
    }
    freeaddrinfo(ai);
    struct epoll_event *ready = zalloc((size_t)nflows, sizeof *ready);

    uint64_t now = now_ns(), next_scan = now + SCAN_NS;
    t_start = now + (uint64_t)(warmup * 1e9);
    t_end = t_start + (uint64_t)(duration * 1e9);
    double cpu_start = 0, cpu_end = 0;
    int phase = 0;                              /* 0 warm-up, 1 measuring, 2 draining */
    for (int i = 0; i < nflows; i++)
        refill(&flows[i], now);
    for (;;) {
        now = now_ns();
        if (phase == 0 && now >= t_start) {
            phase = 1;
            cpu_start = cpu_seconds();
        }
        if (phase == 1 && now >= t_end) {
            phase = 2;
            cpu_end = cpu_seconds();
        }
        if (now >= next_scan || phase == 2) {
            int out = expire(flows, now - timeout_ns);
            if (phase == 2 && out == 0)
                break;
            for (int i = 0; i < nflows && now < t_end; i++)
                refill(&flows[i], now);
            next_scan = now + SCAN_NS;
        }
        if (spin) {
            for (int i = 0; i < nflows; i++)
                take_replies(&flows[i], 0);
        } else if (nflows == 1) {
            take_replies(&flows[0], 1);
        } else {
            int n = epoll_wait(ep, ready, nflows, 1);
            for (int i = 0; i < n; i++)
                take_replies(ready[i].data.ptr, 0);
        }
    }

    double rate = (double)st.received / duration;
    double cpu_pct = (cpu_end - cpu_start) / duration * 100;
    double p50 = quantile_us(0.50), p90 = quantile_us(0.90), p99 = quantile_us(0.99);
    double p999 = quantile_us(0.999), max_us = (double)st.max_ns / 1e3;
    fprintf(json ? stderr : stdout,
            "%s:%s size=%d window=%d flows=%d: %.0f rt/s  sent=%llu received=%llu lost=%llu "
            "corrupt=%llu late=%llu  rtt us p50=%.1f p90=%.1f p99=%.1f p99.9=%.1f max=%.1f  "
            "client_cpu=%.0f%%\n",
            host, port, size, window, nflows, rate, (unsigned long long)st.sent,
            (unsigned long long)st.received, (unsigned long long)st.lost,
            (unsigned long long)st.corrupt, (unsigned long long)st.late,
            p50, p90, p99, p999, max_us, cpu_pct);
    if (json)
        printf("{\"sent\": %llu, \"received\": %llu, \"lost\": %llu, \"corrupt\": %llu, "
               "\"late\": %llu, \"send_errors\": %llu, \"duration_s\": %.3f, \"rtt_per_s\": %.1f, "
               "\"p50_us\": %.2f, \"p90_us\": %.2f, \"p99_us\": %.2f, \"p999_us\": %.2f, "
               "\"max_us\": %.2f, \"size\": %d, \"window\": %d, \"flows\": %d, \"gso\": %s, "
               "\"client_cpu_pct\": %.1f}\n",
               (unsigned long long)st.sent, (unsigned long long)st.received,
               (unsigned long long)st.lost, (unsigned long long)st.corrupt,
               (unsigned long long)st.late, (unsigned long long)st.send_errors, duration, rate,
               p50, p90, p99, p999, max_us, size, window, nflows, gso ? "true" : "false", cpu_pct);
    return st.received + st.corrupt + st.late > 0 ? 0 : 2;
}
