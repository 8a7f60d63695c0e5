/*
 * refserver.c - the reference UDP echo server of udp-echo's benchmark kit.
 *
 * Plain C at the speed the kernel allows, one row per I/O style, so that
 * udp-echo-server's figures read as ratios to what this machine can do:
 *
 *   --mode simple  one recvfrom and one sendto per datagram
 *   --mode mmsg    recvmmsg/sendmmsg, up to --batch datagrams per call (32)
 *   --mode gro     mmsg with UDP_GRO on the socket: a burst of same-size
 *                  datagrams from one source arrives as one buffer (a control
 *                  message gives the segment size) and goes back as one entry
 *                  with UDP_SEGMENT, which the kernel splits into the same
 *                  datagrams again (Linux >= 5.0)
 *
 * Other options: --host ADDR (127.0.0.1; IPv6 literals too), --port N (0, the
 * default, lets the kernel choose), --threads N (N sockets on one port with
 * SO_REUSEPORT, a thread each), --rcvbuf BYTES (SO_RCVBUF).
 *
 * Prints "listening on HOST:PORT" on stdout once bound. On SIGINT or SIGTERM
 * it prints "refserver: echoed N datagrams" on stderr and exits 0. Empty
 * datagrams are not echoed.
 *
 * Build: cc -O2 -Wall -Wextra -pthread -o refserver refserver.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

#define MAX_DGRAM 65536     /* one datagram, or one GRO buffer */
#define CTL_LEN 64          /* room for one UDP_GRO or UDP_SEGMENT control message */

enum mode { SIMPLE, MMSG, GRO };

struct worker {
    pthread_t thread;
    int fd;
    unsigned long long echoed;
};

static enum mode mode = SIMPLE;
static int batch = 32;
static atomic_int stopping;     /* set by main on SIGINT/SIGTERM */

static void fail(const char *what)
{
    perror(what);
    exit(1);
}

static void *zalloc(size_t n, size_t each)
{
    void *p = calloc(n, each);
    if (!p)
        fail("calloc");
    return p;
}

/* One datagram per syscall each way: the baseline the other rows are read against. */
static void echo_simple(struct worker *w)
{
    unsigned char *buf = zalloc(1, MAX_DGRAM);
    while (!atomic_load_explicit(&stopping, memory_order_relaxed)) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof peer;
        ssize_t n = recvfrom(w->fd, buf, MAX_DGRAM, 0, (struct sockaddr *)&peer, &plen);
        if (n > 0 && sendto(w->fd, buf, (size_t)n, 0, (struct sockaddr *)&peer, plen) == n)
            w->echoed++;
    }
    free(buf);
}

/* The segment size of a GRO buffer, or 0 when it holds a single datagram. */
static int gro_segment(struct msghdr *mh)
{
    int seg = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c))
        if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO)
            memcpy(&seg, CMSG_DATA(c), sizeof seg);
    return seg;
}

/* Ask the kernel to cut mh's buffer into datagrams of seg bytes. */
static void set_segment(struct msghdr *mh, unsigned char *ctl, int seg)
{
    uint16_t seg16 = (uint16_t)seg;
    memset(ctl, 0, CTL_LEN);
    mh->msg_control = ctl;
    mh->msg_controllen = CMSG_SPACE(sizeof seg16);
    struct cmsghdr *c = CMSG_FIRSTHDR(mh);
    c->cmsg_level = SOL_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof seg16);
    memcpy(CMSG_DATA(c), &seg16, sizeof seg16);
}

/* Wait for one datagram, take whatever else is queued (up to --batch), send
 * it all back with sendmmsg. In gro mode an entry may carry several datagrams. */
static void echo_batch(struct worker *w)
{
    int gro = mode == GRO, one = 1;
    if (gro && setsockopt(w->fd, SOL_UDP, UDP_GRO, &one, sizeof one) < 0)
        fail("setsockopt(UDP_GRO)");
    unsigned char *data = zalloc((size_t)batch, MAX_DGRAM);
    unsigned char *rctl = zalloc((size_t)batch, CTL_LEN), *sctl = zalloc((size_t)batch, CTL_LEN);
    struct sockaddr_storage *peers = zalloc((size_t)batch, sizeof *peers);
    struct iovec *riov = zalloc((size_t)batch, sizeof *riov), *siov = zalloc((size_t)batch, sizeof *siov);
    struct mmsghdr *in = zalloc((size_t)batch, sizeof *in), *out = zalloc((size_t)batch, sizeof *out);
    unsigned *count = zalloc((size_t)batch, sizeof *count);  /* datagrams in out[k] */

    while (!atomic_load_explicit(&stopping, memory_order_relaxed)) {
        for (int i = 0; i < batch; i++) {   /* the kernel overwrites lengths and flags */
            riov[i] = (struct iovec){ data + (size_t)i * MAX_DGRAM, MAX_DGRAM };
            in[i].msg_hdr = (struct msghdr){
                .msg_name = &peers[i], .msg_namelen = sizeof peers[i],
                .msg_iov = &riov[i], .msg_iovlen = 1,
                .msg_control = gro ? rctl + (size_t)i * CTL_LEN : NULL,
                .msg_controllen = gro ? CTL_LEN : 0,
            };
        }
        int n = recvmmsg(w->fd, in, (unsigned)batch, MSG_WAITFORONE, NULL);
        int k = 0;
        for (int i = 0; i < n; i++) {
            unsigned len = in[i].msg_len;
            if (len == 0)
                continue;
            siov[k] = (struct iovec){ riov[i].iov_base, len };
            out[k].msg_hdr = (struct msghdr){
                .msg_name = &peers[i], .msg_namelen = in[i].msg_hdr.msg_namelen,
                .msg_iov = &siov[k], .msg_iovlen = 1,
            };
            int seg = gro ? gro_segment(&in[i].msg_hdr) : 0;
            count[k] = 1;
            if (seg > 0 && (unsigned)seg < len) {
                set_segment(&out[k].msg_hdr, sctl + (size_t)k * CTL_LEN, seg);
                count[k] = (len + (unsigned)seg - 1) / (unsigned)seg;
            }
            k++;
        }
        /* sendmmsg stops at the first entry it cannot send: skip that one */
        for (int done = 0; done < k;) {
            int sent = sendmmsg(w->fd, out + done, (unsigned)(k - done), 0);
            for (int j = 0; j < sent; j++)
                w->echoed += count[done + j];
            done += sent > 0 ? sent : 1;
        }
    }
    free(data); free(rctl); free(sctl); free(peers);
    free(riov); free(siov); free(in); free(out); free(count);
}

static void *run(void *arg)
{
    struct worker *w = arg;
    if (mode == SIMPLE)
        echo_simple(w);
    else
        echo_batch(w);
    return NULL;
}

static int open_socket(const struct sockaddr *addr, socklen_t len, int reuseport, int rcvbuf)
{
    int one = 1;
    int fd = socket(addr->sa_family, SOCK_DGRAM, 0);
    if (fd < 0)
        fail("socket");
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
        fail("setsockopt(SO_REUSEPORT)");
    if (rcvbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) < 0)
        fail("setsockopt(SO_RCVBUF)");
    if (bind(fd, addr, len) < 0)
        fail("bind");
    return fd;
}

static void usage(void)
{
    fprintf(stderr, "usage: refserver [--host ADDR] [--port N] [--mode simple|mmsg|gro] "
                    "[--batch N] [--threads N] [--rcvbuf BYTES]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *port = "0";
    int threads = 1, rcvbuf = 0;

    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc)
            usage();
        const char *opt = argv[i], *val = argv[i + 1];
        if (!strcmp(opt, "--host")) host = val;
        else if (!strcmp(opt, "--port")) port = val;
        else if (!strcmp(opt, "--batch")) batch = atoi(val);
        else if (!strcmp(opt, "--threads")) threads = atoi(val);
        else if (!strcmp(opt, "--rcvbuf")) rcvbuf = atoi(val);
        else if (!strcmp(opt, "--mode") && !strcmp(val, "simple")) mode = SIMPLE;
        else if (!strcmp(opt, "--mode") && !strcmp(val, "mmsg")) mode = MMSG;
        else if (!strcmp(opt, "--mode") && !strcmp(val, "gro")) mode = GRO;
        else usage();
    }
    if (batch < 1 || batch > 1024 || threads < 1 || threads > 1024)
        usage();

    struct addrinfo hints = { .ai_socktype = SOCK_DGRAM, .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV };
    struct addrinfo *ai;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc) {
        fprintf(stderr, "refserver: %s port %s: %s\n", host, port, gai_strerror(rc));
        return 1;
    }

    /* Only main takes the stop signals (sigwait below); workers inherit the mask. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

    /* The first socket gets the port (maybe a free one), the others share it. */
    struct worker *workers = zalloc((size_t)threads, sizeof *workers);
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    workers[0].fd = open_socket(ai->ai_addr, ai->ai_addrlen, threads > 1, rcvbuf);
    if (getsockname(workers[0].fd, (struct sockaddr *)&bound, &blen) < 0)
        fail("getsockname");
    for (int i = 1; i < threads; i++)
        workers[i].fd = open_socket((struct sockaddr *)&bound, blen, 1, rcvbuf);
    freeaddrinfo(ai);

    char addr[NI_MAXHOST], serv[NI_MAXSERV];
    getnameinfo((struct sockaddr *)&bound, blen, addr, sizeof addr, serv, sizeof serv,
                NI_NUMERICHOST | NI_NUMERICSERV);
    printf(bound.ss_family == AF_INET6 ? "listening on [%s]:%s\n" : "listening on %s:%s\n", addr, serv);
    fflush(stdout);

    for (int i = 0; i < threads; i++)
        if ((errno = pthread_create(&workers[i].thread, NULL, run, &workers[i])))
            fail("pthread_create");
    int sig;
    sigwait(&stop_signals, &sig);
    atomic_store(&stopping, 1);
    /* Wake the workers blocked in a receive: on Linux, shutdown(SHUT_RD) of a
     * UDP socket (even unconnected, where it also says ENOTCONN) wakes its
     * readers, and every later receive returns at once. Receives wait without
     * a timeout, so an idle wait costs no timer. */
    for (int i = 0; i < threads; i++)
        shutdown(workers[i].fd, SHUT_RD);

    unsigned long long total = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(workers[i].thread, NULL);
        close(workers[i].fd);
        total += workers[i].echoed;
    }
    fprintf(stderr, "refserver: echoed %llu datagrams\n", total);
    free(workers);
    return 0;
}
