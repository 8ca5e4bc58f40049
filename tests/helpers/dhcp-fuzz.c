/*
 * Test harness for bootloader/native/dhcp.c, compiled by tests/dhcp-parser.test.ts for this
 * machine with AddressSanitizer and UBSan (any out-of-bounds read aborts the run).
 *
 *   dhcp-fuzz parse XID MAC   reads packets, one hex line each, from stdin; prints one line a
 *                             packet: "OK type=2 yiaddr=... server=... mask=... router=...
 *                             dns=a,b lease=N t1=N t2=N" or the error name (E_DHCP_...)
 *   dhcp-fuzz build TYPE XID MAC CIADDR REQUESTED SERVER   prints the message in hex
 *
 * Each parse gets its own heap copy of exactly the packet's length, so a read one byte past
 * the end is caught.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dhcp.h"

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static void parse_mac(const char *s, uint8_t mac[6]) {
    unsigned v[6];
    int i;
    if (sscanf(s, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6) exit(2);
    for (i = 0; i < 6; i++) mac[i] = (uint8_t)v[i];
}

static const char *ip(uint32_t a, char *buf) {
    struct in_addr in;
    in.s_addr = a;
    return inet_ntop(AF_INET, &in, buf, INET_ADDRSTRLEN);
}

static uint32_t ip_arg(const char *s) {
    struct in_addr in;
    if (strcmp(s, "-") == 0) return 0;
    if (inet_pton(AF_INET, s, &in) != 1) exit(2);
    return in.s_addr;
}

int main(int argc, char **argv) {
    uint8_t mac[6];
    if (argc == 4 && strcmp(argv[1], "parse") == 0) {
        uint32_t xid = (uint32_t)strtoul(argv[2], NULL, 0);
        static char line[1 << 16];
        parse_mac(argv[3], mac);
        while (fgets(line, sizeof(line), stdin) != NULL) {
            size_t n = strcspn(line, "\r\n"), len = n / 2, i;
            uint8_t *p = (uint8_t *)malloc(len ? len : 1);
            dhcp_reply r;
            int rc;
            char a[INET_ADDRSTRLEN], b[INET_ADDRSTRLEN], c[INET_ADDRSTRLEN], d[INET_ADDRSTRLEN];
            if (p == NULL || n % 2 != 0) return 2;
            for (i = 0; i < len; i++) {
                int hi = hexval(line[2 * i]), lo = hexval(line[2 * i + 1]);
                if (hi < 0 || lo < 0) return 2;
                p[i] = (uint8_t)(hi * 16 + lo);
            }
            rc = dhcp_parse(p, len, xid, mac, &r);
            if (rc != DHCP_OK) {
                printf("%s\n", dhcp_error_name(rc));
            } else {
                int k;
                printf("OK type=%d yiaddr=%s server=%s mask=%s router=%s dns=", r.type, ip(r.yiaddr, a), ip(r.server_id, b), ip(r.mask, c), ip(r.router, d));
                for (k = 0; k < r.dns_count; k++) printf("%s%s", k ? "," : "", ip(r.dns[k], a));
                printf(" lease=%u t1=%u t2=%u\n", r.lease, r.t1, r.t2);
            }
            free(p);
        }
        return 0;
    }
    if (argc == 8 && strcmp(argv[1], "build") == 0) {
        uint8_t buf[DHCP_REQUEST_LEN];
        size_t n, i;
        parse_mac(argv[4], mac);
        if (dhcp_build(buf, sizeof(buf) - 1, atoi(argv[2]), 1, mac, 0, 0, 0) != 0) return 3; /* too small: refused */
        n = dhcp_build(buf, sizeof(buf), atoi(argv[2]), (uint32_t)strtoul(argv[3], NULL, 0), mac, ip_arg(argv[5]), ip_arg(argv[6]), ip_arg(argv[7]));
        for (i = 0; i < n; i++) printf("%02x", buf[i]);
        printf("\n");
        return 0;
    }
    fprintf(stderr, "usage: dhcp-fuzz parse XID MAC < hex lines | dhcp-fuzz build TYPE XID MAC CIADDR REQUESTED SERVER\n");
    return 2;
}
