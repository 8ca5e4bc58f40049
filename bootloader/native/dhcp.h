/*
 * DHCP (RFC 2131, options RFC 2132) messages for the guest's IPv4 client: building the
 * client's DISCOVER and REQUEST, and checking a server's answer. Pure functions over byte
 * buffers, no I/O: net.c runs the exchange, tests/dhcp-parser.test.ts compiles this file
 * with a fuzzing harness (tests/helpers/dhcp-fuzz.c) under AddressSanitizer.
 *
 * The parser faces the network: every read is bounds-checked against the received length,
 * every option we use has its exact length checked, and anything else is a refusal with a
 * stable code (dhcp_error_name). Addresses are kept in network byte order.
 */
#ifndef SIGNET_DHCP_H
#define SIGNET_DHCP_H

#include <stddef.h>
#include <stdint.h>

#define DHCP_CLIENT_PORT 68
#define DHCP_SERVER_PORT 67
/* The fixed BOOTP part (op .. file) and the magic cookie that starts the options. */
#define DHCP_FIXED_LEN 236
#define DHCP_COOKIE_LEN 4
/* What the client sends: libslirp's server ignores a request shorter than the fixed part plus
 * BOOTP's 312-byte vendor area (its struct bootp_t), so requests are padded to this. */
#define DHCP_REQUEST_LEN 548
/* The largest answer read; an answer longer than this is refused, not cut. */
#define DHCP_MAX_MESSAGE 1500
#define DHCP_MAX_DNS 3

enum {
    DHCP_DISCOVER = 1,
    DHCP_OFFER = 2,
    DHCP_REQUEST = 3,
    DHCP_DECLINE = 4,
    DHCP_ACK = 5,
    DHCP_NAK = 6,
    DHCP_RELEASE = 7
};

/* Why an answer was refused (dhcp_parse's result; DHCP_OK is 0). */
enum {
    DHCP_OK = 0,
    DHCP_E_SHORT = -1,    /* shorter than the fixed part and the cookie */
    DHCP_E_LONG = -2,     /* longer than DHCP_MAX_MESSAGE */
    DHCP_E_HEADER = -3,   /* op is not BOOTREPLY, htype/hlen not Ethernet */
    DHCP_E_XID = -4,      /* not an answer to our transaction */
    DHCP_E_CHADDR = -5,   /* not for our hardware address */
    DHCP_E_COOKIE = -6,   /* no DHCP magic cookie */
    DHCP_E_OPTION = -7,   /* an option runs past the end, or no end option */
    DHCP_E_LENGTH = -8,   /* an option we use has the wrong length */
    DHCP_E_REPEAT = -9,   /* an option we use appears twice */
    DHCP_E_TYPE = -10,    /* no message type, or not OFFER, ACK or NAK */
    DHCP_E_ADDRESS = -11, /* yiaddr, server id, mask or router not usable */
    DHCP_E_MISSING = -12  /* an OFFER or ACK without a server id */
};

typedef struct {
    uint8_t type;                /* DHCP_OFFER, DHCP_ACK or DHCP_NAK */
    uint32_t yiaddr;             /* the address offered (OFFER, ACK) */
    uint32_t server_id;          /* option 54 */
    uint32_t mask;               /* option 1, 0 when absent */
    uint32_t router;             /* option 3, the first one; 0 when absent */
    uint32_t dns[DHCP_MAX_DNS];  /* option 6, at most DHCP_MAX_DNS kept */
    int dns_count;
    uint32_t lease;              /* option 51, seconds; 0 when absent; 0xffffffff: infinite */
    uint32_t t1, t2;             /* options 58, 59, seconds; 0 when absent */
} dhcp_reply;

/* Checks `len` bytes from the network as an answer to transaction `xid` for `mac`; fills
 * *out and returns DHCP_OK, or returns a DHCP_E_* code (then *out is undefined). */
int dhcp_parse(const uint8_t *p, size_t len, uint32_t xid, const uint8_t mac[6], dhcp_reply *out);

/* Writes a DISCOVER or REQUEST of DHCP_REQUEST_LEN bytes into buf (cap >= DHCP_REQUEST_LEN)
 * and returns its length, or 0 when buf is too small. `requested` and `server_id` (network
 * order, 0: left out) are options 50 and 54; `ciaddr` is set when renewing. */
size_t dhcp_build(uint8_t *buf, size_t cap, int type, uint32_t xid, const uint8_t mac[6],
                  uint32_t ciaddr, uint32_t requested, uint32_t server_id);

/* "E_DHCP_XID", ... for a DHCP_E_* code. */
const char *dhcp_error_name(int code);

#endif
