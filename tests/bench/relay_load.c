/*
 * relay_load: paced G.711-sized RTP load for the DeskPBX relay benchmark.
 *
 * Opens 2*N UDP sockets on 127.0.0.1 on ports the kernel picks (socket 2i is
 * phone A of call i, socket 2i+1 is phone B) and prints them as one line,
 * "ports P0 P1 ...", so the relay under test can be told where the phones
 * are. Then it reads 2*N target ports from stdin; socket k sends RTP to
 * 127.0.0.1:target[k] at RATE packets/s, all streams evenly interleaved. Each packet carries, after
 * its 12-byte RTP header, the CLOCK_MONOTONIC send time (ns) and the sending
 * socket's index; the receiver checks that a packet arriving on socket k came
 * from socket k^1 (its call partner) and records the one-way latency in a
 * 1-microsecond histogram. Latency ends at the kernel's receive timestamp
 * (SO_TIMESTAMPNS, CLOCK_REALTIME, so the send stamp uses that clock too):
 * when the generator itself is late to read, that does not count against
 * the relay.
 *
 * Packets sent during the first WARMUP seconds are neither counted nor timed
 * (latching, learning). Sending stops after DURATION seconds; receiving goes
 * on for DRAIN ms. One JSON line goes to stdout. Every loop is bounded by the
 * duration. Usage:
 *   relay_load -n CALLS [-d DURATION_S] [-w WARMUP_S] [-r RATE] [-s SIZE]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#define HIST_US 100000
#define BATCH 32
#define MAX_SIZE 1500

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t wall_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t hist[HIST_US + 1];

static double percentile(uint64_t total, double q) {
    uint64_t want = (uint64_t)(q * (double)total), seen = 0;
    for (int i = 0; i <= HIST_US; i++) {
        seen += hist[i];
        if (seen > want) return (double)i;
    }
    return (double)HIST_US;
}

int main(int argc, char **argv) {
    int calls = 0, rate = 50, size = 172, opt;
    double duration = 5.0, warmup = 1.0, drain = 0.3;
    while ((opt = getopt(argc, argv, "n:d:w:r:s:")) != -1) {
        switch (opt) {
        case 'n': calls = atoi(optarg); break;
        case 'd': duration = atof(optarg); break;
        case 'w': warmup = atof(optarg); break;
        case 'r': rate = atoi(optarg); break;
        case 's': size = atoi(optarg); break;
        default: fprintf(stderr, "usage: relay_load -n CALLS [-d S] [-w S] [-r PPS] [-s BYTES]\n"); return 2;
        }
    }
    if (calls <= 0 || size < 24 || size > MAX_SIZE || rate <= 0) {
        fprintf(stderr, "relay_load: need -n > 0, 24 <= -s <= %d, -r > 0\n", MAX_SIZE);
        return 2;
    }
    int streams = 2 * calls;
    int *fds = calloc(streams, sizeof(int));
    struct sockaddr_in *targets = calloc(streams, sizeof(struct sockaddr_in));
    uint16_t *seqs = calloc(streams, sizeof(uint16_t));
    int ep = epoll_create1(0);
    printf("ports");
    for (int k = 0; k < streams; k++) {
        struct sockaddr_in me = {.sin_family = AF_INET, .sin_port = 0};
        me.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof me;
        fds[k] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        if (fds[k] < 0 || bind(fds[k], (struct sockaddr *)&me, sizeof me) != 0 ||
            getsockname(fds[k], (struct sockaddr *)&me, &len) != 0) {
            fprintf(stderr, "relay_load: socket %d: %s\n", k, strerror(errno));
            return 1;
        }
        printf(" %d", ntohs(me.sin_port));
        int buffer = 1 << 20; /* ride out scheduling gaps when other work shares the core */
        if (setsockopt(fds[k], SOL_SOCKET, SO_RCVBUFFORCE, &buffer, sizeof buffer) != 0)
            setsockopt(fds[k], SOL_SOCKET, SO_RCVBUF, &buffer, sizeof buffer);
        int on = 1;
        setsockopt(fds[k], SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)k};
        epoll_ctl(ep, EPOLL_CTL_ADD, fds[k], &ev);
    }
    printf("\n");
    fflush(stdout);
    for (int k = 0; k < streams; k++) {
        int port;
        if (scanf("%d", &port) != 1) {
            fprintf(stderr, "relay_load: expected %d target ports on stdin, got %d\n", streams, k);
            return 2;
        }
        targets[k].sin_family = AF_INET;
        targets[k].sin_port = htons((uint16_t)port);
        targets[k].sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    }

    unsigned char packet[MAX_SIZE];
    memset(packet, 0xff, sizeof packet);
    packet[0] = 0x80;
    packet[1] = 0x00;
    static unsigned char rbuf[BATCH][MAX_SIZE];
    struct mmsghdr msgs[BATCH];
    struct iovec iovs[BATCH];
    static char controls[BATCH][CMSG_SPACE(sizeof(struct timespec))];
    for (int i = 0; i < BATCH; i++) {
        iovs[i].iov_base = rbuf[i];
        iovs[i].iov_len = MAX_SIZE;
        memset(&msgs[i], 0, sizeof msgs[i]);
        msgs[i].msg_hdr.msg_iov = &iovs[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_control = controls[i];
        msgs[i].msg_hdr.msg_controllen = sizeof controls[i];
    }

    uint64_t start = now_ns() + 20000000ull;
    uint64_t gap = (uint64_t)(1e9 / rate / streams);
    uint64_t warm_end = start + (uint64_t)(warmup * 1e9);
    uint64_t wall_warm_end = wall_ns() + (warm_end - now_ns()); /* the same instant, wall clock */
    uint64_t send_end = start + (uint64_t)(duration * 1e9);
    uint64_t stop = send_end + (uint64_t)(drain * 1e9);
    uint64_t next = 0, sent = 0, received = 0, misrouted = 0, send_errors = 0, late = 0;
    uint64_t max_lag = 0, timed = 0, received_all = 0;
    struct epoll_event events[256];

    for (;;) {
        uint64_t now = now_ns();
        if (now >= stop) break;
        /* send everything that is due, at most one round of all streams per pass */
        for (int burst = 0; burst < streams && now < send_end; burst++) {
            uint64_t due = start + next * gap;
            if (due > now) break;
            if (now - due > max_lag) max_lag = now - due;
            if (now - due > 5000000ull) late++;
            int k = (int)(next % (uint64_t)streams);
            uint16_t seq = seqs[k]++;
            uint32_t ts = (uint32_t)seq * 160u, ssrc = (uint32_t)k;
            packet[2] = seq >> 8; packet[3] = seq & 0xff;
            packet[4] = ts >> 24; packet[5] = ts >> 16; packet[6] = ts >> 8; packet[7] = ts;
            packet[8] = ssrc >> 24; packet[9] = ssrc >> 16; packet[10] = ssrc >> 8; packet[11] = ssrc;
            uint64_t stamp = wall_ns();
            memcpy(packet + 12, &stamp, 8);
            memcpy(packet + 20, &ssrc, 4);
            if (sendto(fds[k], packet, (size_t)size, 0, (struct sockaddr *)&targets[k], sizeof targets[k]) < 0)
                send_errors++;
            else if (stamp >= wall_warm_end)
                sent++;
            next++;
        }
        /* sleep (not spin) until the next send is due: a sleeper keeps its place in the
           scheduler when other processes share the core, a spinner loses it */
        uint64_t due = start + next * gap, wait = 0;
        now = now_ns();
        if (now >= send_end) wait = 1000000ull;
        else if (due > now) wait = due - now;
        struct timespec tmo = {.tv_sec = (time_t)(wait / 1000000000ull),
                               .tv_nsec = (long)(wait % 1000000000ull)};
        int ready = epoll_pwait2(ep, events, 256, &tmo, NULL);
        for (int e = 0; e < ready; e++) {
            int k = (int)events[e].data.u32;
            for (int m = 0; m < BATCH; m++) msgs[m].msg_hdr.msg_controllen = sizeof controls[m];
            int got = recvmmsg(fds[k], msgs, BATCH, MSG_DONTWAIT, NULL);
            if (got <= 0) continue;
            uint64_t fallback = wall_ns();
            for (int m = 0; m < got; m++) {
                uint64_t stamp, arrival = fallback;
                uint32_t from;
                struct cmsghdr *c = CMSG_FIRSTHDR(&msgs[m].msg_hdr);
                for (; c != NULL; c = CMSG_NXTHDR(&msgs[m].msg_hdr, c)) {
                    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
                        struct timespec ts;
                        memcpy(&ts, CMSG_DATA(c), sizeof ts);
                        arrival = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
                    }
                }
                if (msgs[m].msg_len < 24) { misrouted++; continue; }
                memcpy(&stamp, rbuf[m] + 12, 8);
                memcpy(&from, rbuf[m] + 20, 4);
                if ((int)from != (k ^ 1)) { misrouted++; continue; }
                received_all++;
                if (stamp < wall_warm_end) continue;
                received++;
                uint64_t us = arrival > stamp ? (arrival - stamp) / 1000ull : 0;
                hist[us > HIST_US ? HIST_US : us]++;
                timed++;
            }
        }
    }
    double loss = sent ? 1.0 - (double)received / (double)sent : 1.0;
    double measured = duration - warmup;
    printf("{\"calls\": %d, \"streams\": %d, \"seconds\": %.3f, \"sent\": %llu, \"received\": %llu, "
           "\"loss\": %.6f, \"pps\": %.1f, \"misrouted\": %llu, \"send_errors\": %llu, "
           "\"late_sends\": %llu, \"max_lag_us\": %.1f, \"p50_us\": %.0f, \"p99_us\": %.0f, "
           "\"p999_us\": %.0f, \"received_all\": %llu}\n",
           calls, streams, measured, (unsigned long long)sent, (unsigned long long)received, loss,
           (double)received / measured, (unsigned long long)misrouted,
           (unsigned long long)send_errors, (unsigned long long)late, (double)max_lag / 1000.0,
           percentile(timed, 0.50), percentile(timed, 0.99), percentile(timed, 0.999),
           (unsigned long long)received_all);
    return 0;
}
