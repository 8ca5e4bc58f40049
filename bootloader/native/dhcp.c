/*
 * DHCP messages: see dhcp.h. No I/O and no allocation; safe to fuzz.
 */
#include "dhcp.h"

#include <string.h>

/* Offsets in the fixed BOOTP part (RFC 2131 §2, figure 1). */
#define OFF_OP 0
#define OFF_HTYPE 1
#define OFF_HLEN 2
#define OFF_XID 4
#define OFF_FLAGS 10
#define OFF_CIADDR 12
#define OFF_YIADDR 16
#define OFF_CHADDR 28
#define OFF_COOKIE 236
#define OFF_OPTIONS 240

#define BOOTREQUEST 1
#define BOOTREPLY 2
#define HTYPE_ETHERNET 1
#define FLAG_BROADCAST 0x80

/* Option codes (RFC 2132) this client reads or writes. */
#define OPT_PAD 0
#define OPT_SUBNET_MASK 1
#define OPT_ROUTER 3
#define OPT_DNS 6
#define OPT_REQUESTED_IP 50
#define OPT_LEASE_TIME 51
#define OPT_MESSAGE_TYPE 53
#define OPT_SERVER_ID 54
#define OPT_PARAMETER_LIST 55
#define OPT_MAX_SIZE 57
#define OPT_RENEWAL_T1 58
#define OPT_REBINDING_T2 59
#define OPT_END 255

static const uint8_t COOKIE[DHCP_COOKIE_LEN] = { 99, 130, 83, 99 };

static uint32_t be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

/* An address as the bytes on the wire, kept in network byte order (as in struct in_addr). */
static uint32_t addr_at(const uint8_t *p) {
    uint32_t a;
    memcpy(&a, p, 4);
    return a;
}

/* Host-order view of a network-order address. */
static uint32_t host_order(uint32_t a) {
    const uint8_t *b = (const uint8_t *)&a;
    return be32(b);
}

/* A unicast address a host may use: not 0/8, 127/8, multicast, reserved or broadcast. */
static int usable_host(uint32_t a) {
    uint32_t h = host_order(a);
    uint8_t top = (uint8_t)(h >> 24);
    return top != 0 && top != 127 && top < 224;
}

/* A netmask whose ones come first, from /8 to /30 (a /31 or /32 has no room for a router). */
static int usable_mask(uint32_t m) {
    uint32_t h = host_order(m);
    uint32_t inv = ~h;
    return (inv & (inv + 1)) == 0 && h >= 0xff000000u && h <= 0xfffffffcu;
}

const char *dhcp_error_name(int code) {
    switch (code) {
    case DHCP_OK: return "OK";
    case DHCP_E_SHORT: return "E_DHCP_SHORT";
    case DHCP_E_LONG: return "E_DHCP_LONG";
    case DHCP_E_HEADER: return "E_DHCP_HEADER";
    case DHCP_E_XID: return "E_DHCP_XID";
    case DHCP_E_CHADDR: return "E_DHCP_CHADDR";
    case DHCP_E_COOKIE: return "E_DHCP_COOKIE";
    case DHCP_E_OPTION: return "E_DHCP_OPTION";
    case DHCP_E_LENGTH: return "E_DHCP_LENGTH";
    case DHCP_E_REPEAT: return "E_DHCP_REPEAT";
    case DHCP_E_TYPE: return "E_DHCP_TYPE";
    case DHCP_E_ADDRESS: return "E_DHCP_ADDRESS";
    case DHCP_E_MISSING: return "E_DHCP_MISSING";
    default: return "E_DHCP_UNKNOWN";
    }
}

int dhcp_parse(const uint8_t *p, size_t len, uint32_t xid, const uint8_t mac[6], dhcp_reply *out) {
    /* Options used at most once each: one bit per code we read. */
    uint32_t seen = 0;
    int have_server = 0, have_lease = 0, ended = 0;
    size_t i;

    if (p == NULL || len < OFF_OPTIONS) return DHCP_E_SHORT;
    if (len > DHCP_MAX_MESSAGE) return DHCP_E_LONG;
    if (p[OFF_OP] != BOOTREPLY || p[OFF_HTYPE] != HTYPE_ETHERNET || p[OFF_HLEN] != 6) return DHCP_E_HEADER;
    if (be32(p + OFF_XID) != xid) return DHCP_E_XID;
    if (memcmp(p + OFF_CHADDR, mac, 6) != 0) return DHCP_E_CHADDR;
    if (memcmp(p + OFF_COOKIE, COOKIE, DHCP_COOKIE_LEN) != 0) return DHCP_E_COOKIE;

    memset(out, 0, sizeof(*out));
    out->yiaddr = addr_at(p + OFF_YIADDR);

    /* The options: code, length, value; PAD and END have no length. The sname and file
     * fields are not read for options (no overload, option 52): what we need must be here. */
    for (i = OFF_OPTIONS; i < len;) {
        uint8_t code = p[i], olen;
        const uint8_t *v;
        int bit = -1;
        if (code == OPT_PAD) {
            i++;
            continue;
        }
        if (code == OPT_END) {
            ended = 1;
            break;
        }
        if (i + 1 >= len) return DHCP_E_OPTION;
        olen = p[i + 1];
        if ((size_t)olen > len - (i + 2)) return DHCP_E_OPTION;
        v = p + i + 2;
        switch (code) {
        case OPT_SUBNET_MASK: bit = 0; break;
        case OPT_ROUTER: bit = 1; break;
        case OPT_DNS: bit = 2; break;
        case OPT_LEASE_TIME: bit = 3; break;
        case OPT_MESSAGE_TYPE: bit = 4; break;
        case OPT_SERVER_ID: bit = 5; break;
        case OPT_RENEWAL_T1: bit = 6; break;
        case OPT_REBINDING_T2: bit = 7; break;
        default: break; /* an option we do not use: skipped whole */
        }
        if (bit >= 0) {
            if (seen & (1u << bit)) return DHCP_E_REPEAT;
            seen |= 1u << bit;
        }
        switch (code) {
        case OPT_SUBNET_MASK:
            if (olen != 4) return DHCP_E_LENGTH;
            out->mask = addr_at(v);
            break;
        case OPT_ROUTER:
            if (olen < 4 || olen % 4 != 0) return DHCP_E_LENGTH;
            out->router = addr_at(v); /* the first is the preferred one */
            break;
        case OPT_DNS: {
            int k;
            if (olen < 4 || olen % 4 != 0) return DHCP_E_LENGTH;
            for (k = 0; k < olen / 4; k++) {
                uint32_t a = addr_at(v + 4 * k);
                /* A server the network names must be a unicast address off this host. */
                if (usable_host(a) && out->dns_count < DHCP_MAX_DNS) out->dns[out->dns_count++] = a;
            }
            break;
        }
        case OPT_LEASE_TIME:
            if (olen != 4) return DHCP_E_LENGTH;
            out->lease = be32(v);
            have_lease = 1;
            break;
        case OPT_MESSAGE_TYPE:
            if (olen != 1) return DHCP_E_LENGTH;
            out->type = v[0];
            break;
        case OPT_SERVER_ID:
            if (olen != 4) return DHCP_E_LENGTH;
            out->server_id = addr_at(v);
            have_server = 1;
            break;
        case OPT_RENEWAL_T1:
            if (olen != 4) return DHCP_E_LENGTH;
            out->t1 = be32(v);
            break;
        case OPT_REBINDING_T2:
            if (olen != 4) return DHCP_E_LENGTH;
            out->t2 = be32(v);
            break;
        default:
            break;
        }
        i += 2 + (size_t)olen;
    }
    if (!ended) return DHCP_E_OPTION;

    if (out->type != DHCP_OFFER && out->type != DHCP_ACK && out->type != DHCP_NAK) return DHCP_E_TYPE;
    if (!have_server) return DHCP_E_MISSING;
    if (!usable_host(out->server_id)) return DHCP_E_ADDRESS;
    if (out->type == DHCP_NAK) return DHCP_OK;

    /* OFFER and ACK: an address we can take, a sane subnet, a router inside it. */
    if (!usable_host(out->yiaddr)) return DHCP_E_ADDRESS;
    if (out->mask != 0 && !usable_mask(out->mask)) return DHCP_E_ADDRESS;
    if (out->router != 0) {
        uint32_t m = out->mask != 0 ? host_order(out->mask) : 0xffffff00u;
        if (!usable_host(out->router) || out->router == out->yiaddr ||
            ((host_order(out->router) ^ host_order(out->yiaddr)) & m) != 0) {
            return DHCP_E_ADDRESS;
        }
    }
    /* RFC 2131 §3.3: the server gives the lease in an ACK; without one we could not renew. */
    if (out->type == DHCP_ACK && (!have_lease || out->lease == 0)) return DHCP_E_MISSING;
    return DHCP_OK;
}

size_t dhcp_build(uint8_t *buf, size_t cap, int type, uint32_t xid, const uint8_t mac[6],
                  uint32_t ciaddr, uint32_t requested, uint32_t server_id) {
    static const uint8_t params[] = { OPT_SUBNET_MASK, OPT_ROUTER, OPT_DNS, OPT_LEASE_TIME, OPT_RENEWAL_T1, OPT_REBINDING_T2 };
    uint8_t *o;
    if (buf == NULL || cap < DHCP_REQUEST_LEN) return 0;
    memset(buf, 0, DHCP_REQUEST_LEN);
    buf[OFF_OP] = BOOTREQUEST;
    buf[OFF_HTYPE] = HTYPE_ETHERNET;
    buf[OFF_HLEN] = 6;
    buf[OFF_XID] = (uint8_t)(xid >> 24);
    buf[OFF_XID + 1] = (uint8_t)(xid >> 16);
    buf[OFF_XID + 2] = (uint8_t)(xid >> 8);
    buf[OFF_XID + 3] = (uint8_t)xid;
    /* Without an address the answer cannot be unicast to us: ask for a broadcast one. */
    if (ciaddr == 0) buf[OFF_FLAGS] = FLAG_BROADCAST;
    memcpy(buf + OFF_CIADDR, &ciaddr, 4);
    memcpy(buf + OFF_CHADDR, mac, 6);
    memcpy(buf + OFF_COOKIE, COOKIE, DHCP_COOKIE_LEN);
    o = buf + OFF_OPTIONS;
    *o++ = OPT_MESSAGE_TYPE;
    *o++ = 1;
    *o++ = (uint8_t)type;
    if (requested != 0) {
        *o++ = OPT_REQUESTED_IP;
        *o++ = 4;
        memcpy(o, &requested, 4);
        o += 4;
    }
    if (server_id != 0) {
        *o++ = OPT_SERVER_ID;
        *o++ = 4;
        memcpy(o, &server_id, 4);
        o += 4;
    }
    *o++ = OPT_PARAMETER_LIST;
    *o++ = (uint8_t)sizeof(params);
    memcpy(o, params, sizeof(params));
    o += sizeof(params);
    *o++ = OPT_MAX_SIZE;
    *o++ = 2;
    *o++ = (uint8_t)(DHCP_MAX_MESSAGE >> 8);
    *o++ = (uint8_t)(DHCP_MAX_MESSAGE & 0xff);
    *o = OPT_END;
    return DHCP_REQUEST_LEN;
}
