/*
 * Open-loop HTTP/1.1 load generator for bench/run.sh: sends POST requests at a fixed rate,
 * evenly spaced (request k is due at start + k / rate), over a pool of keep-alive connections,
 * and measures each answer's latency from the time it was DUE, not from the time it was sent,
 * so that a server that falls behind is charged for the wait (no coordinated omission, as in
 * wrk2). Pacing uses a timerfd with an absolute deadline and 1 ns timer slack, so requests
 * leave within a few microseconds of their slot instead of in 1 ms bursts (wrk's delay()).
 *
 * Usage: openloop HOST PORT PATH RATE SECONDS CONNECTIONS
 * Environment: BENCH_TOKEN (bearer key, optional), BENCH_BODY (JSON body).
 * Prints one line, the same fields as bench/wrk-post.lua's, plus:
 *   late=N        requests sent more than 1 ms after their slot (no free connection)
 *   sent_p50_us / sent_p99_us  latency from the actual send (what wrk would report)
 *   lag_p50_us / lag_p99_us    how long after its slot each request was written (pacing accuracy)
 *
 * One thread, epoll. Answers are framed by Content-Length or chunked encoding (the end of a
 * chunked body is found by its terminating "0\r\n\r\n"). Single file, no dependencies:
 * `cc -O2 -o openloop openloop.c`.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define BUF 65536

typedef struct {
  int fd;
  int busy;          /* a request is in flight */
  uint64_t due_ns;   /* slot of the request in flight */
  uint64_t sent_ns;  /* when it was written */
  size_t len;        /* bytes of the answer buffered */
  char buf[BUF];
} conn_t;

static const char *host;
static int port;
static char *request;
static size_t request_len;
static uint64_t connect_err, read_err, write_err, timeout_err, non2xx, late;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int open_conn(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  struct sockaddr_in addr = {0};
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)port);
  inet_pton(AF_INET, host, &addr.sin_addr);
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) { close(fd); return -1; }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

/* Growable array of latencies in microseconds. */
typedef struct { uint32_t *v; size_t n, cap; } lat_t;
static void push(lat_t *l, uint64_t us) {
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 1 << 16;
    l->v = realloc(l->v, l->cap * sizeof *l->v);
    if (!l->v) { perror("realloc"); exit(1); }
  }
  l->v[l->n++] = us > 0xffffffffu ? 0xffffffffu : (uint32_t)us;
}
static int cmp(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return (x > y) - (x < y);
}
static uint32_t pct(lat_t *l, double p) {
  if (!l->n) return 0;
  size_t i = (size_t)(p / 100.0 * (double)l->n + 0.999999);
  if (i < 1) i = 1;
  if (i > l->n) i = l->n;
  return l->v[i - 1];
}

/* Length of a complete answer at the start of buf, 0 if incomplete, -1 if malformed. */
static long complete(const char *buf, size_t len, int *status) {
  const char *end = memmem(buf, len, "\r\n\r\n", 4);
  if (!end) return 0;
  size_t head = (size_t)(end - buf) + 4;
  if (len < 12 || strncmp(buf, "HTTP/1.", 7) != 0) return -1;
  *status = atoi(buf + 9);
  const char *p = buf;
  while (p < end) {
    const char *eol = memmem(p, (size_t)(end + 2 - p), "\r\n", 2);
    if (!eol) break;
    if ((size_t)(eol - p) > 15 && strncasecmp(p, "content-length:", 15) == 0) {
      long n = atol(p + 15);
      return len >= head + (size_t)n ? (long)(head + (size_t)n) : 0;
    }
    if ((size_t)(eol - p) > 18 && strncasecmp(p, "transfer-encoding:", 18) == 0 && memmem(p, (size_t)(eol - p), "chunked", 7)) {
      const char *fin = memmem(buf + head, len - head, "0\r\n\r\n", 5);
      /* the terminating chunk starts a line */
      while (fin && fin != buf + head && !(fin[-1] == '\n')) {
        fin = memmem(fin + 1, len - (size_t)(fin + 1 - buf), "0\r\n\r\n", 5);
      }
      return fin ? (long)(fin + 5 - buf) : 0;
    }
    p = eol + 2;
  }
  return (long)head; /* no body */
}

int main(int argc, char **argv) {
  if (argc != 7) {
    fprintf(stderr, "usage: %s HOST PORT PATH RATE SECONDS CONNECTIONS\n", argv[0]);
    return 2;
  }
  host = argv[1];
  port = atoi(argv[2]);
  const char *path = argv[3];
  double rate = atof(argv[4]);
  double secs = atof(argv[5]);
  int nconn = atoi(argv[6]);
  if (rate <= 0 || secs <= 0 || nconn <= 0) { fprintf(stderr, "bad arguments\n"); return 2; }
  const char *token = getenv("BENCH_TOKEN");
  const char *body = getenv("BENCH_BODY");
  if (!body) body = "{}";
  size_t cap = strlen(body) + strlen(path) + (token ? strlen(token) : 0) + 512;
  request = malloc(cap);
  int n = snprintf(request, cap,
                   "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n%s%s%s"
                   "Content-Length: %zu\r\n\r\n%s",
                   path, host, port, token && *token ? "Authorization: Bearer " : "",
                   token && *token ? token : "", token && *token ? "\r\n" : "", strlen(body), body);
  request_len = (size_t)n;

  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
  int ep = epoll_create1(0);
  int tfd = timerfd_create(CLOCK_MONOTONIC, 0);
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)-1};
  epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);

  conn_t *conns = calloc((size_t)nconn, sizeof *conns);
  int *idle = malloc((size_t)nconn * sizeof *idle);
  int nidle = 0;
  for (int i = 0; i < nconn; i++) {
    conns[i].fd = open_conn();
    if (conns[i].fd < 0) { connect_err++; continue; }
    ev.events = EPOLLIN;
    ev.data.u64 = (uint64_t)i;
    epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
    idle[nidle++] = i;
  }
  if (nidle == 0) { fprintf(stderr, "openloop: cannot connect to %s:%d\n", host, port); return 1; }

  lat_t due_lat = {0}, sent_lat = {0}, lag = {0};
  double total_us = 0;
  uint64_t interval = (uint64_t)(1e9 / rate);
  uint64_t start = now_ns() + 1000000; /* first slot 1 ms from now */
  uint64_t stop = start + (uint64_t)(secs * 1e9);
  uint64_t next = start; /* next slot not yet sent */
  uint64_t inflight = 0, max_us = 0;
  struct epoll_event events[256];

  for (;;) {
    uint64_t now = now_ns();
    /* Send every due slot while a connection is free. */
    while (next < stop && next <= now && nidle > 0) {
      int i = idle[--nidle];
      conn_t *c = &conns[i];
      size_t off = 0;
      while (off < request_len) {
        ssize_t w = write(c->fd, request + off, request_len - off);
        if (w < 0) { if (errno == EINTR) continue; break; }
        off += (size_t)w;
      }
      if (off < request_len) {
        write_err++;
        close(c->fd);
        c->fd = open_conn();
        if (c->fd < 0) { connect_err++; continue; }
        ev.events = EPOLLIN; ev.data.u64 = (uint64_t)i;
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
        idle[nidle++] = i;
        continue;
      }
      uint64_t sent = now_ns();
      if (sent > next + 1000000) late++;
      push(&lag, sent > next ? (sent - next) / 1000 : 0);
      c->busy = 1; c->due_ns = next; c->sent_ns = sent; c->len = 0;
      inflight++;
      next += interval;
    }
    if (next >= stop && inflight == 0) break;
    if (now > stop + 2000000000ull) { timeout_err += inflight; break; } /* 2 s grace at the end */
    /* Sleep until the next slot (if a connection is free for it) or until an answer arrives. */
    if (next < stop && nidle > 0) {
      struct itimerspec its = {0};
      uint64_t at = next > now ? next : now + 1000;
      its.it_value.tv_sec = (time_t)(at / 1000000000ull);
      its.it_value.tv_nsec = (long)(at % 1000000000ull);
      timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
    }
    int k = epoll_wait(ep, events, 256, next >= stop ? 100 : -1);
    for (int e = 0; e < k; e++) {
      if (events[e].data.u64 == (uint64_t)-1) {
        uint64_t x;
        ssize_t r = read(tfd, &x, sizeof x);
        (void)r;
        continue;
      }
      int i = (int)events[e].data.u64;
      conn_t *c = &conns[i];
      ssize_t r = read(c->fd, c->buf + c->len, BUF - c->len);
      if (r <= 0) {
        if (r < 0 && errno == EINTR) continue;
        read_err++;
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        if (c->busy) { c->busy = 0; inflight--; }
        c->fd = open_conn();
        if (c->fd < 0) { connect_err++; continue; }
        ev.events = EPOLLIN; ev.data.u64 = (uint64_t)i;
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
        idle[nidle++] = i;
        continue;
      }
      c->len += (size_t)r;
      int status = 0;
      long done = complete(c->buf, c->len, &status);
      if (done == 0 && c->len < BUF) continue;
      uint64_t t = now_ns();
      if (done < 0 || (done == 0 && c->len >= BUF)) { read_err++; status = 0; }
      if (status < 200 || status > 299) non2xx++;
      if (c->busy) {
        uint64_t d = (t - c->due_ns) / 1000, s = (t - c->sent_ns) / 1000;
        if (c->due_ns >= start) { push(&due_lat, d); push(&sent_lat, s); total_us += (double)d; }
        if (d > max_us) max_us = d;
        c->busy = 0;
        inflight--;
      }
      c->len = 0;
      idle[nidle++] = i;
    }
  }
  uint64_t end = now_ns();
  if (end > stop) end = stop; /* the run lasts until the last slot; stragglers are not time */
  double dur_us = (double)(end - start) / 1000.0;
  qsort(due_lat.v, due_lat.n, sizeof *due_lat.v, cmp);
  qsort(sent_lat.v, sent_lat.n, sizeof *sent_lat.v, cmp);
  qsort(lag.v, lag.n, sizeof *lag.v, cmp);
  printf("RESULT requests=%zu duration_us=%.0f rps=%.1f p50_us=%u p90_us=%u p99_us=%u max_us=%llu "
         "mean_us=%.1f non2xx=%llu connect_err=%llu read_err=%llu write_err=%llu timeout_err=%llu "
         "late=%llu sent_p50_us=%u sent_p99_us=%u lag_p50_us=%u lag_p99_us=%u\n",
         due_lat.n, dur_us, (double)due_lat.n / (dur_us / 1e6), pct(&due_lat, 50), pct(&due_lat, 90),
         pct(&due_lat, 99), (unsigned long long)max_us, due_lat.n ? total_us / (double)due_lat.n : 0.0,
         (unsigned long long)non2xx, (unsigned long long)connect_err, (unsigned long long)read_err,
         (unsigned long long)write_err, (unsigned long long)timeout_err, (unsigned long long)late,
         pct(&sent_lat, 50), pct(&sent_lat, 99), pct(&lag, 50), pct(&lag, 99));
  return 0;
}
