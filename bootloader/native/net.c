/*
 * The guest's network, brought up by /init (PID 1) before the boot stage runs: lo, and the
 * interface /signet/network names, with a static IPv4 address or one from DHCP (dhcp.c), the
 * default route, and the DNS servers the runtime's resolver asks (sdk/runtime/dns.ts reads
 * them through signet_native.uv.netInfo()).
 *
 * /signet/network (sdk/disk/network.ts writes it):
 *   line 1   "<ifname> dhcp"  or  "<ifname> <address> <prefix> [gateway]"
 *   then     "dns <address>", at most NET_MAX_DNS lines: servers that replace DHCP's option 6
 *
 * DHCP runs on libuv's default loop, the one the services later run on: a UDP socket on port
 * 68 bound to the interface (SO_BINDTODEVICE: it has no address yet, so the kernel could not
 * route the broadcast otherwise) and a timer. The DISCOVER/REQUEST exchange runs before the boot
 * stage for at most DHCP_FIRST_BUDGET_MS; without an answer the boot goes on (the boot stage
 * needs no network) and the client keeps asking in the background, as it renews the lease at
 * T1, rebinds at T2 and drops the address when the lease runs out. Its handles are unreferenced
 * once that first phase is over, so they never keep a finished service's loop alive, and they
 * are not in host.c's handle table, so a service restart (closeAll) leaves them be.
 *
 * Failures are log lines, never fatal: host[NET] for what happened, host[WARN] for faults.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <net/route.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include "duktape.h"
#include <uv.h>

#include "dhcp.h"

#define NETWORK_CONF "/signet/network"
#define NET_MAX_DNS DHCP_MAX_DNS

/* First phase, before the boot stage: DISCOVER (or REQUEST) sent at 0, 1 and 3 s, waiting 1, 2
 * and 4 s for each answer: at most 7 s, then the boot goes on without an address. */
#define DHCP_TRIES 3
#define DHCP_FIRST_TIMEOUT_MS 1000
#define DHCP_FIRST_BUDGET_MS 8000
/* After a round without an answer, the next one starts this much later. */
#define DHCP_IDLE_MS 60000
/* While renewing or rebinding, a REQUEST at most this often (RFC 2131 §4.4.5: half the time
 * left, down to 60 s). */
#define DHCP_RENEW_RETRY_MS 60000
/* Logged refusals of answers (a hostile or broken network must not flood the console). */
#define DHCP_MAX_REFUSAL_LINES 5

typedef enum { NET_NONE, NET_STATIC, NET_DHCP } net_mode;
typedef enum { ST_OFF, ST_SELECTING, ST_REQUESTING, ST_BOUND, ST_RENEWING, ST_REBINDING } dhcp_state;

static struct {
    net_mode mode;
    char ifname[IFNAMSIZ];
    int up;                      /* the interface exists and is up */
    uint32_t address, mask, gateway; /* network order; 0: none */
    uint32_t dns[NET_MAX_DNS];   /* what the resolver asks: the board's, else DHCP's */
    int dns_count;
    uint32_t board_dns[NET_MAX_DNS];
    int board_dns_count;
} g_net;

static struct {
    dhcp_state state;
    int fd;
    uv_poll_t poll;
    uv_timer_t timer;
    uint8_t mac[6];
    uint32_t xid;
    int tries;
    int first_phase;             /* before the boot stage: handles referenced */
    int gave_up_logged;
    int refusals_logged;
    dhcp_reply lease;            /* the offer being requested, then the lease held */
    uint64_t bound_at;           /* loop time (ms) of the ACK */
    uint64_t t1_ms, t2_ms, end_ms; /* from bound_at; end_ms 0: infinite */
} g_dhcp;

static void net_log(const char *fmt, ...) {
    char line[320];
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n > sizeof(line) - 2) n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    while (write(1, line, (size_t)n) < 0 && errno == EINTR) {}
}

static const char *ip_text(uint32_t a, char *buf) {
    struct in_addr in;
    in.s_addr = a;
    inet_ntop(AF_INET, &in, buf, INET_ADDRSTRLEN);
    return buf;
}

static int mask_prefix(uint32_t mask) {
    uint32_t h = ntohl(mask);
    int n = 0;
    while (h & 0x80000000u) {
        n++;
        h <<= 1;
    }
    return n;
}

/* ---- interface ioctls ------------------------------------------------------------------- */

static int if_up(int fd, const char *name) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) != 0) return -1;
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    return ioctl(fd, SIOCSIFFLAGS, &ifr);
}

static int if_set(int fd, const char *name, unsigned long request, uint32_t a) {
    struct ifreq ifr;
    struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = a;
    return ioctl(fd, request, &ifr);
}

static int add_default_route(int fd, const char *name, uint32_t gw) {
    struct rtentry rt;
    memset(&rt, 0, sizeof(rt));
    ((struct sockaddr_in *)&rt.rt_dst)->sin_family = AF_INET;
    ((struct sockaddr_in *)&rt.rt_genmask)->sin_family = AF_INET;
    ((struct sockaddr_in *)&rt.rt_gateway)->sin_family = AF_INET;
    ((struct sockaddr_in *)&rt.rt_gateway)->sin_addr.s_addr = gw;
    rt.rt_flags = RTF_UP | RTF_GATEWAY;
    rt.rt_dev = (char *)name;
    if (ioctl(fd, SIOCADDRT, &rt) != 0 && errno != EEXIST) return -1;
    return 0;
}

/* Gives the interface address/mask (and a default route via gw when not 0); 0 on success. */
static int configure(uint32_t address, uint32_t mask, uint32_t gw) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc = 0;
    if (fd < 0) return -1;
    if (if_set(fd, g_net.ifname, SIOCSIFADDR, address) != 0 || if_set(fd, g_net.ifname, SIOCSIFNETMASK, mask) != 0 ||
        if_up(fd, g_net.ifname) != 0) {
        rc = -1;
    } else if (gw != 0 && add_default_route(fd, g_net.ifname, gw) != 0) {
        net_log("host[WARN] network: default route via %s: %s", ip_text(gw, (char[INET_ADDRSTRLEN]){0}), strerror(errno));
    }
    if (rc == 0) {
        g_net.address = address;
        g_net.mask = mask;
        g_net.gateway = gw;
    }
    close(fd);
    return rc;
}

/* Takes the address off the interface (SIOCSIFADDR 0.0.0.0 deletes it, and its routes). */
static void unconfigure(void) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return;
    if (if_set(fd, g_net.ifname, SIOCSIFADDR, 0) != 0) net_log("host[WARN] network: %s: removing the address: %s", g_net.ifname, strerror(errno));
    close(fd);
    g_net.address = g_net.mask = g_net.gateway = 0;
    if (g_net.board_dns_count == 0) g_net.dns_count = 0;
}

/* ---- DHCP client ------------------------------------------------------------------------ */

static uint32_t random_xid(void) {
    uint32_t x = 0;
    if (getrandom(&x, sizeof(x), GRND_NONBLOCK) != (ssize_t)sizeof(x)) {
        /* No entropy yet this early: the loop clock and the pid still differ per boot enough to
         * tell our answers from another client's (xid is matching, not security: chaddr too). */
        x = (uint32_t)uv_hrtime() ^ ((uint32_t)getpid() << 16);
    }
    return x;
}

static void dhcp_send(int type, uint32_t ciaddr, uint32_t requested, uint32_t server_id, uint32_t to) {
    uint8_t msg[DHCP_REQUEST_LEN];
    struct sockaddr_in dst;
    size_t n = dhcp_build(msg, sizeof(msg), type, g_dhcp.xid, g_dhcp.mac, ciaddr, requested, server_id);
    memset(&dst, 0, sizeof(dst));
    dst.sin_family = AF_INET;
    dst.sin_port = htons(DHCP_SERVER_PORT);
    dst.sin_addr.s_addr = to;
    if (sendto(g_dhcp.fd, msg, n, 0, (struct sockaddr *)&dst, sizeof(dst)) < 0 && !g_dhcp.gave_up_logged) {
        net_log("host[WARN] network: dhcp: send on %s: %s", g_net.ifname, strerror(errno));
    }
}

static void dhcp_timer_in(uint64_t ms);

/* Sends this state's message and arms the retransmission timer. */
static void dhcp_transmit(void) {
    uint64_t now = uv_now(uv_default_loop());
    switch (g_dhcp.state) {
    case ST_SELECTING:
        dhcp_send(DHCP_DISCOVER, 0, 0, 0, INADDR_BROADCAST);
        dhcp_timer_in((uint64_t)DHCP_FIRST_TIMEOUT_MS << g_dhcp.tries);
        break;
    case ST_REQUESTING:
        dhcp_send(DHCP_REQUEST, 0, g_dhcp.lease.yiaddr, g_dhcp.lease.server_id, INADDR_BROADCAST);
        dhcp_timer_in((uint64_t)DHCP_FIRST_TIMEOUT_MS << g_dhcp.tries);
        break;
    case ST_RENEWING:
    case ST_REBINDING: {
        /* Until T2 (renewing) or the lease's end (rebinding): half the time left, at least
         * DHCP_RENEW_RETRY_MS apart, and never past that point. */
        uint64_t until = g_dhcp.bound_at + (g_dhcp.state == ST_RENEWING ? g_dhcp.t2_ms : g_dhcp.end_ms);
        uint64_t left = until > now ? until - now : 0, wait = left / 2;
        if (g_dhcp.state == ST_RENEWING) dhcp_send(DHCP_REQUEST, g_net.address, 0, 0, g_dhcp.lease.server_id);
        else dhcp_send(DHCP_REQUEST, g_net.address, 0, 0, INADDR_BROADCAST);
        if (wait < DHCP_RENEW_RETRY_MS) wait = left < DHCP_RENEW_RETRY_MS ? left : DHCP_RENEW_RETRY_MS;
        dhcp_timer_in(wait);
        break;
    }
    default:
        break;
    }
    g_dhcp.tries++;
}

static void dhcp_begin(dhcp_state state) {
    g_dhcp.state = state;
    g_dhcp.tries = 0;
    if (state == ST_SELECTING || state == ST_RENEWING || state == ST_REBINDING) g_dhcp.xid = random_xid();
    dhcp_transmit();
}

/* Seconds of a lease field as loop milliseconds; 0xffffffff (infinite) is 0 = never. */
static uint64_t lease_ms(uint32_t s) {
    return s == 0xffffffffu ? 0 : (uint64_t)s * 1000;
}

static void dhcp_bound(const dhcp_reply *r) {
    char a[INET_ADDRSTRLEN], g[INET_ADDRSTRLEN], s[INET_ADDRSTRLEN], d[NET_MAX_DNS][INET_ADDRSTRLEN];
    char dns_text[3 * (INET_ADDRSTRLEN + 1) + 8] = "";
    uint32_t mask = r->mask;
    int renewed = g_dhcp.state == ST_RENEWING || g_dhcp.state == ST_REBINDING, i;
    uint64_t lease;
    if (mask == 0) {
        /* No option 1: the address's classful mask (RFC 2131 leaves it to the client). */
        uint8_t top = (uint8_t)(ntohl(r->yiaddr) >> 24);
        mask = htonl(top < 128 ? 0xff000000u : top < 192 ? 0xffff0000u : 0xffffff00u);
    }
    if (!(renewed && r->yiaddr == g_net.address && mask == g_net.mask && r->router == g_net.gateway)) {
        if (renewed) unconfigure();
        if (configure(r->yiaddr, mask, r->router) != 0) {
            net_log("host[WARN] network: %s: setting %s from DHCP: %s", g_net.ifname, ip_text(r->yiaddr, a), strerror(errno));
            dhcp_begin(ST_SELECTING);
            return;
        }
        renewed = 0;
    }
    g_dhcp.lease = *r;
    if (g_net.board_dns_count == 0) {
        g_net.dns_count = r->dns_count;
        memcpy(g_net.dns, r->dns, sizeof(g_net.dns));
    }
    for (i = 0; i < g_net.dns_count; i++) {
        size_t used = strlen(dns_text);
        snprintf(dns_text + used, sizeof(dns_text) - used, "%s%s", i ? "," : " dns=", ip_text(g_net.dns[i], d[i]));
    }
    g_dhcp.bound_at = uv_now(uv_default_loop());
    lease = lease_ms(r->lease);
    g_dhcp.end_ms = lease;
    /* T1 and T2 as the server gave them when they make sense, else RFC 2131's 1/2 and 7/8. */
    g_dhcp.t1_ms = r->t1 != 0 && (lease == 0 || lease_ms(r->t1) < lease) ? lease_ms(r->t1) : lease / 2;
    g_dhcp.t2_ms = r->t2 != 0 && (lease == 0 || lease_ms(r->t2) < lease) && lease_ms(r->t2) > g_dhcp.t1_ms ? lease_ms(r->t2) : lease - lease / 8;
    g_dhcp.state = ST_BOUND;
    g_dhcp.tries = 0;
    if (renewed) {
        net_log("host[NET] %s dhcp renewed %s lease=%us", g_net.ifname, ip_text(r->yiaddr, a), (unsigned)r->lease);
    } else {
        char lease_text[24];
        if (r->lease == 0xffffffffu) snprintf(lease_text, sizeof(lease_text), "infinite");
        else snprintf(lease_text, sizeof(lease_text), "%us", (unsigned)r->lease);
        net_log("host[NET] %s %s/%d%s%s dhcp server=%s lease=%s%s", g_net.ifname, ip_text(r->yiaddr, a), mask_prefix(mask),
                r->router ? " via " : "", r->router ? ip_text(r->router, g) : "", ip_text(r->server_id, s), lease_text, dns_text);
    }
    if (lease != 0) dhcp_timer_in(g_dhcp.t1_ms);
    else uv_timer_stop(&g_dhcp.timer);
}

static void on_dhcp_timer(uv_timer_t *t) {
    uint64_t now = uv_now(uv_default_loop());
    (void)t;
    switch (g_dhcp.state) {
    case ST_SELECTING:
    case ST_REQUESTING:
        if (g_dhcp.tries < DHCP_TRIES) {
            dhcp_transmit();
            return;
        }
        if (!g_dhcp.gave_up_logged) {
            net_log("host[NET] %s dhcp: no answer after %d tries; going on without an address, asking again every %d s", g_net.ifname,
                    DHCP_TRIES, DHCP_IDLE_MS / 1000);
            g_dhcp.gave_up_logged = 1;
        }
        g_dhcp.first_phase = 0;
        g_dhcp.state = ST_OFF; /* idle: the timer below starts the next round */
        dhcp_timer_in(DHCP_IDLE_MS);
        return;
    case ST_OFF:
        dhcp_begin(ST_SELECTING);
        return;
    case ST_BOUND:
        dhcp_begin(ST_RENEWING);
        return;
    case ST_RENEWING:
        if (now - g_dhcp.bound_at >= g_dhcp.t2_ms) dhcp_begin(ST_REBINDING);
        else dhcp_transmit();
        return;
    case ST_REBINDING:
        if (now - g_dhcp.bound_at >= g_dhcp.end_ms) {
            char a[INET_ADDRSTRLEN];
            net_log("host[WARN] network: %s: the DHCP lease of %s ran out; address removed, asking again", g_net.ifname, ip_text(g_net.address, a));
            unconfigure();
            dhcp_begin(ST_SELECTING);
        } else {
            dhcp_transmit();
        }
        return;
    }
}

static void dhcp_timer_in(uint64_t ms) {
    uv_timer_start(&g_dhcp.timer, on_dhcp_timer, ms, 0);
}

static void dhcp_answer(const uint8_t *p, size_t len) {
    dhcp_reply r;
    int rc;
    if (g_dhcp.state == ST_OFF || g_dhcp.state == ST_BOUND) return; /* nothing asked */
    rc = dhcp_parse(p, len, g_dhcp.xid, g_dhcp.mac, &r);
    if (rc != DHCP_OK) {
        /* Answers to other clients are normal on a shared network; anything else is logged. */
        if (rc != DHCP_E_XID && rc != DHCP_E_CHADDR && g_dhcp.refusals_logged < DHCP_MAX_REFUSAL_LINES) {
            g_dhcp.refusals_logged++;
            net_log("host[WARN] network: dhcp: refused an answer on %s: %s", g_net.ifname, dhcp_error_name(rc));
        }
        return;
    }
    switch (g_dhcp.state) {
    case ST_SELECTING:
        if (r.type != DHCP_OFFER) return;
        g_dhcp.lease = r;
        g_dhcp.state = ST_REQUESTING;
        g_dhcp.tries = 0;
        dhcp_transmit();
        return;
    case ST_REQUESTING:
    case ST_RENEWING:
        /* Only from the server we asked; rebinding takes any server's word. */
        if (r.server_id != g_dhcp.lease.server_id) return;
        /* fall through */
    case ST_REBINDING:
        if (r.type == DHCP_ACK) {
            if (g_dhcp.state == ST_REQUESTING && r.yiaddr != g_dhcp.lease.yiaddr) return;
            dhcp_bound(&r);
        } else if (r.type == DHCP_NAK) {
            char a[INET_ADDRSTRLEN];
            net_log("host[NET] %s dhcp: the server refused %s (NAK); asking again", g_net.ifname,
                    ip_text(g_dhcp.state == ST_REQUESTING ? g_dhcp.lease.yiaddr : g_net.address, a));
            if (g_net.address != 0) unconfigure();
            dhcp_begin(ST_SELECTING);
        }
        return;
    default:
        return;
    }
}

static void on_dhcp_readable(uv_poll_t *p, int status, int events) {
    uint8_t buf[DHCP_MAX_MESSAGE + 1];
    (void)p;
    if (status < 0 || !(events & UV_READABLE)) return;
    for (;;) {
        struct sockaddr_in from;
        socklen_t flen = sizeof(from);
        ssize_t n = recvfrom(g_dhcp.fd, buf, sizeof(buf), MSG_TRUNC, (struct sockaddr *)&from, &flen);
        if (n < 0) {
            if (errno == EINTR) continue;
            return; /* EAGAIN: all read */
        }
        /* A server answers from port 67; MSG_TRUNC gives the real length of a longer one. */
        if (flen < (socklen_t)sizeof(from) || from.sin_family != AF_INET || ntohs(from.sin_port) != DHCP_SERVER_PORT) continue;
        dhcp_answer(buf, (size_t)n > sizeof(buf) ? DHCP_MAX_MESSAGE + 1 : (size_t)n);
    }
}

/* The UDP socket on port 68 of the interface; -1 (logged) when it cannot be made. */
static int dhcp_socket(void) {
    struct sockaddr_in sa;
    int one = 1;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        net_log("host[WARN] network: dhcp: socket: %s", strerror(errno));
        return -1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(DHCP_CLIENT_PORT);
    sa.sin_addr.s_addr = htonl(INADDR_ANY);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 || setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, g_net.ifname, (socklen_t)strlen(g_net.ifname) + 1) != 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        net_log("host[WARN] network: dhcp: socket on %s port 68: %s", g_net.ifname, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static void dhcp_start(void) {
    struct ifreq ifr;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    uv_loop_t *loop = uv_default_loop();
    uint64_t deadline;
    if (fd < 0) return;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", g_net.ifname);
    if (ioctl(fd, SIOCGIFHWADDR, &ifr) != 0 || ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER) {
        net_log("host[WARN] network: %s: no Ethernet address for DHCP: %s", g_net.ifname, strerror(errno));
        close(fd);
        return;
    }
    close(fd);
    memcpy(g_dhcp.mac, ifr.ifr_hwaddr.sa_data, 6);
    g_dhcp.fd = dhcp_socket();
    if (g_dhcp.fd < 0) return;
    uv_timer_init(loop, &g_dhcp.timer);
    uv_poll_init(loop, &g_dhcp.poll, g_dhcp.fd);
    uv_poll_start(&g_dhcp.poll, UV_READABLE, on_dhcp_readable);
    g_dhcp.first_phase = 1;
    dhcp_begin(ST_SELECTING);
    /* The first phase: run the loop (only our handles are in it yet) until bound or given up. */
    deadline = uv_now(loop) + DHCP_FIRST_BUDGET_MS;
    while (g_dhcp.first_phase && g_dhcp.state != ST_BOUND && uv_now(loop) < deadline) uv_run(loop, UV_RUN_ONCE);
    g_dhcp.first_phase = 0;
    uv_unref((uv_handle_t *)&g_dhcp.timer);
    uv_unref((uv_handle_t *)&g_dhcp.poll);
}

/* ---- /init's entry and the runtime's view ------------------------------------------------ */

/* Reads NETWORK_CONF into g_net; 0 when there is a usable one. */
static int read_conf(void) {
    static char conf[512];
    char addr[64] = "", third[64] = "", gw[64] = "", *line, *next;
    int fd = open(NETWORK_CONF, O_RDONLY | O_CLOEXEC), n, prefix = -1;
    ssize_t len = 0;
    struct in_addr a, g;
    if (fd < 0) return -1;
    for (;;) {
        ssize_t r = read(fd, conf + len, sizeof(conf) - 1 - (size_t)len);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        len += r;
    }
    close(fd);
    conf[len] = '\0';
    next = strchr(conf, '\n');
    if (next != NULL) *next++ = '\0';
    n = sscanf(conf, "%15s %63s %63s %63s", g_net.ifname, addr, third, gw);
    if (n == 2 && strcmp(addr, "dhcp") == 0) {
        g_net.mode = NET_DHCP;
    } else if (n >= 3 && sscanf(third, "%d", &prefix) == 1 && prefix >= 0 && prefix <= 32 && inet_pton(AF_INET, addr, &a) == 1 &&
               (n == 3 || inet_pton(AF_INET, gw, &g) == 1)) {
        g_net.mode = NET_STATIC;
        g_net.address = a.s_addr;
        g_net.mask = htonl(prefix == 0 ? 0 : 0xffffffffu << (32 - prefix));
        g_net.gateway = n == 4 ? g.s_addr : 0;
    } else {
        net_log("host[WARN] network: cannot read " NETWORK_CONF ": %s", conf);
        return -1;
    }
    for (line = next; line != NULL && *line != '\0'; line = next) {
        char word[8], text[64];
        next = strchr(line, '\n');
        if (next != NULL) *next++ = '\0';
        if (sscanf(line, "%7s %63s", word, text) != 2 || strcmp(word, "dns") != 0 || inet_pton(AF_INET, text, &a) != 1 ||
            g_net.board_dns_count == NET_MAX_DNS) {
            net_log("host[WARN] network: " NETWORK_CONF ": ignored the line '%s'", line);
            continue;
        }
        g_net.board_dns[g_net.board_dns_count++] = a.s_addr;
    }
    g_net.dns_count = g_net.board_dns_count;
    memcpy(g_net.dns, g_net.board_dns, sizeof(g_net.dns));
    return 0;
}

void signet_net_up(void) {
    char a[INET_ADDRSTRLEN], g[INET_ADDRSTRLEN], d[INET_ADDRSTRLEN];
    char dns_text[3 * (INET_ADDRSTRLEN + 1) + 8] = "";
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), i;
    g_dhcp.fd = -1;
    if (fd < 0) {
        net_log("host[WARN] network: socket: %s", strerror(errno));
        return;
    }
    if (if_up(fd, "lo") != 0) net_log("host[WARN] network: lo: %s", strerror(errno));
    if (read_conf() != 0) {
        close(fd);
        return;
    }
    /* No such interface: the machine has no network card (QEMU -nic none), not a fault. */
    if (if_up(fd, g_net.ifname) != 0) {
        if (errno == ENODEV) net_log("host[NET] no network: %s: %s", g_net.ifname, strerror(errno));
        else net_log("host[WARN] network: %s: %s", g_net.ifname, strerror(errno));
        close(fd);
        g_net.mode = NET_NONE;
        return;
    }
    close(fd);
    g_net.up = 1;
    if (g_net.mode == NET_DHCP) {
        dhcp_start();
        return;
    }
    if (configure(g_net.address, g_net.mask, g_net.gateway) != 0) {
        net_log("host[WARN] network: %s: %s", g_net.ifname, strerror(errno));
        return;
    }
    for (i = 0; i < g_net.dns_count; i++) {
        size_t used = strlen(dns_text);
        snprintf(dns_text + used, sizeof(dns_text) - used, "%s%s", i ? "," : " dns=", ip_text(g_net.dns[i], d));
    }
    net_log("host[NET] %s %s/%d%s%s%s", g_net.ifname, ip_text(g_net.address, a), mask_prefix(g_net.mask), g_net.gateway ? " via " : "",
            g_net.gateway ? ip_text(g_net.gateway, g) : "", dns_text);
}

static void put_ip(duk_context *ctx, const char *name, uint32_t a) {
    char t[INET_ADDRSTRLEN];
    if (a == 0) duk_push_null(ctx);
    else duk_push_string(ctx, ip_text(a, t));
    duk_put_prop_string(ctx, -2, name);
}

/* netInfo() -> { interface, source: 'dhcp' | 'static', address, prefix, gateway, dns: [..],
 * dhcpServer, leaseSeconds } as things are now (address null while DHCP has none), or null
 * when /init brought up no interface (no card, host mode). */
static duk_ret_t n_net_info(duk_context *ctx) {
    char t[INET_ADDRSTRLEN];
    int i;
    if (!g_net.up) {
        duk_push_null(ctx);
        return 1;
    }
    duk_push_object(ctx);
    duk_push_string(ctx, g_net.ifname);
    duk_put_prop_string(ctx, -2, "interface");
    duk_push_string(ctx, g_net.mode == NET_DHCP ? "dhcp" : "static");
    duk_put_prop_string(ctx, -2, "source");
    put_ip(ctx, "address", g_net.address);
    if (g_net.address != 0) duk_push_int(ctx, mask_prefix(g_net.mask));
    else duk_push_null(ctx);
    duk_put_prop_string(ctx, -2, "prefix");
    put_ip(ctx, "gateway", g_net.gateway);
    duk_push_array(ctx);
    for (i = 0; i < g_net.dns_count; i++) {
        duk_push_string(ctx, ip_text(g_net.dns[i], t));
        duk_put_prop_index(ctx, -2, (duk_uarridx_t)i);
    }
    duk_put_prop_string(ctx, -2, "dns");
    if (g_net.mode == NET_DHCP && g_dhcp.state >= ST_BOUND) {
        put_ip(ctx, "dhcpServer", g_dhcp.lease.server_id);
        duk_push_number(ctx, g_dhcp.lease.lease == 0xffffffffu ? -1 : (double)g_dhcp.lease.lease);
        duk_put_prop_string(ctx, -2, "leaseSeconds");
    }
    return 1;
}

/* Adds netInfo to the object on top of the stack (signet_native.uv). */
void signet_register_net(duk_context *ctx) {
    duk_push_c_function(ctx, n_net_info, 0);
    duk_put_prop_string(ctx, -2, "netInfo");
}
