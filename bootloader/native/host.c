/*
 * signet-host: a small C host embedding Duktape, used as the guest's /init.
 *
 * Host mode:   signet-host <script.js> [args...]
 * PID 1 mode:  mounts /proc, /sys, /dev, loads the kernel modules listed in
 *              /signet/modules, brings up lo and the interface /signet/network
 *              names (net.c: a static address or DHCP), runs /signet/boot.js with the kernel
 *              command-line arguments after "--", and powers off when the
 *              script ends (a PID 1 must never exit).
 *
 * The script sees one global object, signet_native; see README.md beside
 * this file. Duktape's default configuration is kept; the engine source comes
 * from Debian's duktape-dev package, ed25519 verification from Debian's
 * libsodium-dev (libsodium.a) and the event loop (timers, TCP, UDP) from
 * Debian's libuv1-dev (libuv_a.a), both linked statically
 * (bootloader/native/build.ts). When the script returns, the host runs the
 * event loop until no handle keeps it alive.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <linux/watchdog.h>

#include "duktape.h"
#include <sodium.h>
#include <uv.h>
#include <mbedtls/rsa.h>
#include <mbedtls/md.h>

/* <linux/fs.h> clashes with <sys/mount.h> on glibc 2.36; this is its value. */
#ifndef BLKGETSIZE64
#define BLKGETSIZE64 _IOR(0x12, 114, size_t)
#endif

#if defined(__x86_64__)
#define HOST_ARCH "x86_64"
#elif defined(__aarch64__)
#define HOST_ARCH "aarch64"
#elif defined(__arm__) && defined(__ARM_PCS_VFP)
#define HOST_ARCH "armhf"
#else
#error "signet-host supports x86_64, aarch64 and armhf only"
#endif

#define EXIT_UNCAUGHT 70        /* EX_SOFTWARE */
#define EXIT_USAGE 64           /* EX_USAGE */
#define EXIT_REBOOT_HOSTMODE 3  /* reboot() outside PID 1: lets tests tell it from powerOff() */
#define BOOT_SCRIPT "/signet/boot.js"
#define BOOT_BYTECODE "/signet/boot.dukbc" /* boot.js precompiled (--compile); preferred when present */
#define MODULE_LIST "/signet/modules" /* initramfs paths of kernel modules, one a line, in load order */
#define MAX_HANDLES 64
#define MAX_IO_LENGTH 0x7fffffffUL
#define MAX_RANDOM_LENGTH (64UL * 1024 * 1024)
#define MAX_SAFE_INTEGER 9007199254740991.0
#define CLOCK_SET_AFTER 1577836800L /* 2020-01-01T00:00:00Z: earlier means the RTC was never set */

static int g_is_pid1 = 0;
static int g_fds[MAX_HANDLES];

/* ------------------------------------------------------------------------ */
/* SHA-256 (FIPS 180-4)                                                      */
/* ------------------------------------------------------------------------ */

typedef struct {
    uint32_t state[8];
    uint64_t total_len;
    uint8_t block[64];
    size_t block_len;
} sha256_ctx;

static const uint32_t SHA256_K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROTR32(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_compress(uint32_t state[8], const uint8_t *p) {
    uint32_t w[64];
    uint32_t a, b, c, d, e, f, g, h;
    int i;
    for (i = 0; i < 16; i++) {
        w[i] = ((uint32_t)p[4 * i] << 24) | ((uint32_t)p[4 * i + 1] << 16) |
               ((uint32_t)p[4 * i + 2] << 8) | (uint32_t)p[4 * i + 3];
    }
    for (i = 16; i < 64; i++) {
        uint32_t s0 = ROTR32(w[i - 15], 7) ^ ROTR32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROTR32(w[i - 2], 17) ^ ROTR32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    a = state[0]; b = state[1]; c = state[2]; d = state[3];
    e = state[4]; f = state[5]; g = state[6]; h = state[7];
    for (i = 0; i < 64; i++) {
        uint32_t S1 = ROTR32(e, 6) ^ ROTR32(e, 11) ^ ROTR32(e, 25);
        uint32_t ch = (e & f) ^ (~e & g);
        uint32_t t1 = h + S1 + ch + SHA256_K[i] + w[i];
        uint32_t S0 = ROTR32(a, 2) ^ ROTR32(a, 13) ^ ROTR32(a, 22);
        uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
        uint32_t t2 = S0 + maj;
        h = g; g = f; f = e; e = d + t1;
        d = c; c = b; b = a; a = t1 + t2;
    }
    state[0] += a; state[1] += b; state[2] += c; state[3] += d;
    state[4] += e; state[5] += f; state[6] += g; state[7] += h;
}

static void sha256_init(sha256_ctx *s) {
    static const uint32_t iv[8] = {
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    };
    memcpy(s->state, iv, sizeof(iv));
    s->total_len = 0;
    s->block_len = 0;
}

static void sha256_update(sha256_ctx *s, const uint8_t *data, size_t len) {
    s->total_len += len;
    if (s->block_len > 0) {
        size_t take = 64 - s->block_len;
        if (take > len) take = len;
        memcpy(s->block + s->block_len, data, take);
        s->block_len += take;
        data += take;
        len -= take;
        if (s->block_len < 64) return;
        sha256_compress(s->state, s->block);
        s->block_len = 0;
    }
    while (len >= 64) {
        sha256_compress(s->state, data);
        data += 64;
        len -= 64;
    }
    memcpy(s->block, data, len);
    s->block_len = len;
}

static void sha256_final(sha256_ctx *s, uint8_t out[32]) {
    uint64_t bits = s->total_len * 8;
    int i;
    s->block[s->block_len++] = 0x80;
    if (s->block_len > 56) {
        memset(s->block + s->block_len, 0, 64 - s->block_len);
        sha256_compress(s->state, s->block);
        s->block_len = 0;
    }
    memset(s->block + s->block_len, 0, 56 - s->block_len);
    for (i = 0; i < 8; i++) s->block[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
    sha256_compress(s->state, s->block);
    for (i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(s->state[i] >> 24);
        out[4 * i + 1] = (uint8_t)(s->state[i] >> 16);
        out[4 * i + 2] = (uint8_t)(s->state[i] >> 8);
        out[4 * i + 3] = (uint8_t)s->state[i];
    }
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

static void write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

static void write_line(int fd, const char *prefix, const char *msg) {
    write_all(fd, prefix, strlen(prefix));
    write_all(fd, msg, strlen(msg));
    write_all(fd, "\n", 1);
}

/* Pushes a new Uint8Array of n zero bytes and returns its data pointer. */
static uint8_t *push_uint8array(duk_context *ctx, duk_size_t n) {
    uint8_t *p = (uint8_t *)duk_push_fixed_buffer(ctx, n);
    duk_push_buffer_object(ctx, -1, 0, n, DUK_BUFOBJ_UINT8ARRAY);
    duk_remove(ctx, -2);
    return p;
}

/* A JS number that must be a non-negative integer no larger than max. */
static double require_uint(duk_context *ctx, duk_idx_t idx, double max, const char *what) {
    double v = duk_require_number(ctx, idx);
    if (!(v >= 0) || v > max || floor(v) != v) {
        (void)duk_range_error(ctx, "%s must be an integer in [0, %.0f], got %f", what, max, v);
    }
    return v;
}

static int require_handle(duk_context *ctx, duk_idx_t idx) {
    double v = duk_require_number(ctx, idx);
    int h;
    if (!(v >= 0 && v < MAX_HANDLES) || floor(v) != v || g_fds[(int)v] < 0) {
        (void)duk_type_error(ctx, "invalid block handle %f", v);
    }
    h = (int)v;
    return h;
}

static void flush_stdio(void) {
    fflush(stdout);
    fflush(stderr);
}

/* Never returns. As PID 1 the kernel must not see us exit, so we ask it to
 * power off or reboot; outside PID 1 (host tests) we just exit. */
static void host_shutdown(int want_reboot) {
    flush_stdio();
    if (g_is_pid1) {
        sync();
        reboot(want_reboot ? RB_AUTOBOOT : RB_POWER_OFF);
        write_line(2, "host[ERROR] reboot(2) failed: ", strerror(errno));
        for (;;) pause();
    }
    exit(want_reboot ? EXIT_REBOOT_HOSTMODE : 0);
}

static void host_exit(int code) {
    if (g_is_pid1) {
        char line[64];
        snprintf(line, sizeof(line), "host[EXIT] code=%d", code);
        write_line(1, "", line);
        host_shutdown(0);
    }
    flush_stdio();
    exit(code);
}

/* ------------------------------------------------------------------------ */
/* signet_native functions                                                   */
/* ------------------------------------------------------------------------ */

static duk_ret_t n_print(duk_context *ctx) {
    duk_idx_t n = duk_get_top(ctx), i;
    for (i = 0; i < n; i++) {
        duk_size_t len;
        const char *s = duk_safe_to_lstring(ctx, i, &len);
        if (i > 0) write_all(1, " ", 1);
        write_all(1, s, len);
    }
    write_all(1, "\n", 1);
    return 0;
}

static duk_ret_t n_block_open(duk_context *ctx) {
    const char *path = duk_require_string(ctx, 0);
    int writable = duk_to_boolean(ctx, 1);
    int h, fd;
    for (h = 0; h < MAX_HANDLES && g_fds[h] >= 0; h++) {}
    if (h == MAX_HANDLES) return duk_range_error(ctx, "blockOpen %s: all %d handles in use", path, MAX_HANDLES);
    fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) return duk_error(ctx, DUK_ERR_ERROR, "blockOpen %s: %s", path, strerror(errno));
    g_fds[h] = fd;
    duk_push_int(ctx, h);
    return 1;
}

static duk_ret_t n_block_size(duk_context *ctx) {
    int h = require_handle(ctx, 0);
    struct stat st;
    if (fstat(g_fds[h], &st) != 0) return duk_error(ctx, DUK_ERR_ERROR, "blockSize: %s", strerror(errno));
    if (S_ISBLK(st.st_mode)) {
        uint64_t size = 0;
        if (ioctl(g_fds[h], BLKGETSIZE64, &size) != 0) {
            return duk_error(ctx, DUK_ERR_ERROR, "blockSize: BLKGETSIZE64: %s", strerror(errno));
        }
        duk_push_number(ctx, (double)size);
    } else {
        duk_push_number(ctx, (double)st.st_size);
    }
    return 1;
}

static duk_ret_t n_block_read(duk_context *ctx) {
    int h = require_handle(ctx, 0);
    off_t offset = (off_t)require_uint(ctx, 1, MAX_SAFE_INTEGER, "blockRead offset");
    size_t length = (size_t)require_uint(ctx, 2, (double)MAX_IO_LENGTH, "blockRead length");
    uint8_t *p = push_uint8array(ctx, length);
    size_t done = 0;
    while (done < length) {
        ssize_t r = pread(g_fds[h], p + done, length - done, offset + (off_t)done);
        if (r < 0) {
            if (errno == EINTR) continue;
            return duk_error(ctx, DUK_ERR_ERROR, "blockRead at %lld: %s", (long long)(offset + (off_t)done), strerror(errno));
        }
        if (r == 0) {
            return duk_range_error(ctx, "blockRead: short read at offset %lld: got %lu of %lu bytes",
                                   (long long)offset, (unsigned long)done, (unsigned long)length);
        }
        done += (size_t)r;
    }
    return 1;
}

static duk_ret_t n_block_write(duk_context *ctx) {
    int h = require_handle(ctx, 0);
    off_t offset = (off_t)require_uint(ctx, 1, MAX_SAFE_INTEGER, "blockWrite offset");
    duk_size_t length;
    const uint8_t *p = (const uint8_t *)duk_require_buffer_data(ctx, 2, &length);
    size_t done = 0;
    while (done < length) {
        ssize_t w = pwrite(g_fds[h], p + done, length - done, offset + (off_t)done);
        if (w < 0) {
            if (errno == EINTR) continue;
            return duk_error(ctx, DUK_ERR_ERROR, "blockWrite at %lld: %s", (long long)(offset + (off_t)done), strerror(errno));
        }
        if (w == 0) return duk_error(ctx, DUK_ERR_ERROR, "blockWrite at %lld: device full", (long long)(offset + (off_t)done));
        done += (size_t)w;
    }
    return 0;
}

static duk_ret_t n_block_flush(duk_context *ctx) {
    int h = require_handle(ctx, 0);
    if (fsync(g_fds[h]) != 0) return duk_error(ctx, DUK_ERR_ERROR, "blockFlush: %s", strerror(errno));
    return 0;
}

static duk_ret_t n_block_close(duk_context *ctx) {
    int h = require_handle(ctx, 0);
    int fd = g_fds[h];
    g_fds[h] = -1;
    if (close(fd) != 0) return duk_error(ctx, DUK_ERR_ERROR, "blockClose: %s", strerror(errno));
    return 0;
}

static duk_ret_t n_read_file(duk_context *ctx) {
    const char *path = duk_require_string(ctx, 0);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    uint8_t *buf = NULL, *out;
    size_t len = 0, cap = 0;
    if (fd < 0) return duk_error(ctx, DUK_ERR_ERROR, "readFile %s: %s", path, strerror(errno));
    /* Read until EOF rather than trusting st_size: /proc files report 0. */
    for (;;) {
        ssize_t r;
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 65536;
            uint8_t *nbuf = (uint8_t *)realloc(buf, ncap);
            if (nbuf == NULL) {
                free(buf);
                close(fd);
                return duk_error(ctx, DUK_ERR_RANGE_ERROR, "readFile %s: out of memory", path);
            }
            buf = nbuf;
            cap = ncap;
        }
        r = read(fd, buf + len, cap - len);
        if (r < 0) {
            int e = errno;
            if (e == EINTR) continue;
            free(buf);
            close(fd);
            return duk_error(ctx, DUK_ERR_ERROR, "readFile %s: %s", path, strerror(e));
        }
        if (r == 0) break;
        len += (size_t)r;
    }
    close(fd);
    out = push_uint8array(ctx, len);
    if (len > 0) memcpy(out, buf, len);
    free(buf);
    return 1;
}

static duk_ret_t n_monotonic_ms(duk_context *ctx) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    duk_push_number(ctx, (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6);
    return 1;
}

static duk_ret_t n_now_seconds(duk_context *ctx) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    duk_push_number(ctx, ts.tv_sec < CLOCK_SET_AFTER ? -1.0 : (double)ts.tv_sec);
    return 1;
}

static int fill_random(uint8_t *p, size_t n) {
    size_t done = 0;
    while (done < n) {
        ssize_t r = getrandom(p + done, n - done, 0);
        if (r < 0) {
            if (errno == EINTR) continue;
            if (errno != ENOSYS) return -1;
            break; /* kernel < 3.17: fall back to /dev/urandom */
        }
        done += (size_t)r;
    }
    if (done < n) {
        int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
        if (fd < 0) return -1;
        while (done < n) {
            ssize_t r = read(fd, p + done, n - done);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) {
                close(fd);
                return -1;
            }
            done += (size_t)r;
        }
        close(fd);
    }
    return 0;
}

static duk_ret_t n_random(duk_context *ctx) {
    size_t n = (size_t)require_uint(ctx, 0, (double)MAX_RANDOM_LENGTH, "random length");
    uint8_t *p = push_uint8array(ctx, n);
    if (fill_random(p, n) != 0) return duk_error(ctx, DUK_ERR_ERROR, "random: %s", strerror(errno));
    return 1;
}

static duk_ret_t n_sha256(duk_context *ctx) {
    duk_size_t len;
    const uint8_t *data = (const uint8_t *)duk_require_buffer_data(ctx, 0, &len);
    sha256_ctx s;
    uint8_t digest[32];
    sha256_init(&s);
    sha256_update(&s, data, len);
    sha256_final(&s, digest);
    memcpy(push_uint8array(ctx, 32), digest, 32);
    return 1;
}

/* ed25519Verify(signature, message, publicKey) -> boolean: plain Ed25519 (RFC 8032,
 * no context) with libsodium's crypto_sign_ed25519_verify_detached, which also
 * refuses S >= L, small-order R or A and a non-canonical A (docs/boot-state.md).
 * Never throws: anything that is not three buffers of the right sizes is false.
 * sodium_init() is not called: it seeds libsodium's RNG (getrandom(2) can block
 * early in boot) and picks CPU-specific code for primitives other than this one;
 * verification uses neither. */
static duk_ret_t n_ed25519_verify(duk_context *ctx) {
    static const unsigned char empty[1] = { 0 };
    duk_size_t sig_len = 0, msg_len = 0, pub_len = 0;
    const unsigned char *sig, *msg, *pub;
    int ok = 0;
    if (duk_is_buffer_data(ctx, 0) && duk_is_buffer_data(ctx, 1) && duk_is_buffer_data(ctx, 2)) {
        sig = (const unsigned char *)duk_get_buffer_data(ctx, 0, &sig_len);
        msg = (const unsigned char *)duk_get_buffer_data(ctx, 1, &msg_len);
        pub = (const unsigned char *)duk_get_buffer_data(ctx, 2, &pub_len);
        if (sig != NULL && pub != NULL && sig_len == crypto_sign_ed25519_BYTES &&
            pub_len == crypto_sign_ed25519_PUBLICKEYBYTES) {
            /* A zero-length message may come back as NULL. */
            ok = crypto_sign_ed25519_verify_detached(sig, msg != NULL ? msg : empty,
                                                     (unsigned long long)msg_len, pub) == 0;
        }
    }
    duk_push_boolean(ctx, ok);
    return 1;
}

/* rsaVerify(modulus, exponent, digest, signature) -> boolean: RSASSA-PKCS1-v1_5 with
 * SHA-256 over a precomputed digest (RFC 8017 8.2.2), as U-Boot's rsa_verify() checks a
 * FIT configuration signature, with mbed TLS (linked for TLS already). Fails closed, never
 * throws: anything but four buffers, an RSA-2048 modulus (256 bytes, top bit set, odd), an
 * odd exponent of 1..4 bytes that is at least 3, a 32-byte digest and a 256-byte signature
 * is false before any arithmetic (sdk/ota/boot-target-fit.ts rsaInputsAcceptable makes the
 * same checks on Node); mbed TLS refuses a signature >= n and any padding but the exact
 * EMSA-PKCS1-v1_5 encoding with the SHA-256 DigestInfo. */
static duk_ret_t n_rsa_verify(duk_context *ctx) {
    duk_size_t n_len = 0, e_len = 0, d_len = 0, s_len = 0;
    const unsigned char *n, *e, *d, *sig;
    mbedtls_rsa_context rsa;
    int ok = 0;
    duk_idx_t i;
    for (i = 0; i < 4; i++) {
        if (!duk_is_buffer_data(ctx, i)) {
            duk_push_false(ctx);
            return 1;
        }
    }
    n = (const unsigned char *)duk_get_buffer_data(ctx, 0, &n_len);
    e = (const unsigned char *)duk_get_buffer_data(ctx, 1, &e_len);
    d = (const unsigned char *)duk_get_buffer_data(ctx, 2, &d_len);
    sig = (const unsigned char *)duk_get_buffer_data(ctx, 3, &s_len);
    if (n == NULL || e == NULL || d == NULL || sig == NULL || n_len != 256 || s_len != 256 || d_len != 32 ||
        e_len < 1 || e_len > 4 || n[0] < 0x80 || (n[255] & 1) == 0 || e[0] == 0 || (e[e_len - 1] & 1) == 0 ||
        (e_len == 1 && e[0] < 3)) {
        duk_push_false(ctx);
        return 1;
    }
    mbedtls_rsa_init(&rsa, MBEDTLS_RSA_PKCS_V15, MBEDTLS_MD_SHA256);
    if (mbedtls_rsa_import_raw(&rsa, n, n_len, NULL, 0, NULL, 0, NULL, 0, e, e_len) == 0 &&
        mbedtls_rsa_complete(&rsa) == 0 && mbedtls_rsa_check_pubkey(&rsa) == 0 &&
        mbedtls_rsa_get_len(&rsa) == 256) {
        ok = mbedtls_rsa_pkcs1_verify(&rsa, NULL, NULL, MBEDTLS_RSA_PUBLIC, MBEDTLS_MD_SHA256, 32, d, sig) == 0;
    }
    mbedtls_rsa_free(&rsa);
    duk_push_boolean(ctx, ok);
    return 1;
}

/* Compiles as global program code (so `var` makes globals) and runs it;
 * compile and runtime errors propagate as the original error objects. */
static duk_ret_t n_eval_script(duk_context *ctx) {
    duk_require_string(ctx, 0);
    duk_push_string(ctx, duk_get_top(ctx) > 1 && !duk_is_undefined(ctx, 1) ? duk_require_string(ctx, 1) : "evalScript");
    duk_dup(ctx, 0);
    duk_swap_top(ctx, -2);
    duk_compile(ctx, 0);
    duk_call(ctx, 0);
    return 1;
}

static duk_ret_t n_power_off(duk_context *ctx) {
    (void)ctx;
    host_shutdown(0);
    return 0;
}

static duk_ret_t n_reboot(duk_context *ctx) {
    (void)ctx;
    host_shutdown(1);
    return 0;
}

static duk_ret_t n_exit(duk_context *ctx) {
    host_exit(duk_get_top(ctx) > 0 ? duk_require_int(ctx, 0) : 0);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Event loop: libuv timers, TCP and UDP (signet_native.uv)                  */
/* ------------------------------------------------------------------------ */

/*
 * Every libuv handle the script opens is a small record in a slot table; the
 * script sees an id (slot + 65536 * generation, so a stale id never reaches a
 * reused slot). Each handle has one JS handler, kept in the heap stash until
 * libuv has closed the handle, called as handler(event, ...args). The JS side
 * (sdk/runtime) builds the Node-like API on these events:
 *
 *   timer: 'timeout'
 *   tcp:   'connection' id | 'connect' [code, message] | 'data' bytes | 'end'
 *          | 'written' [code, message] | 'shutdown' [code, message] | 'error' code, message
 *   udp:   'message' bytes, address, port | 'sent' [code, message] | 'error' code, message
 *   all:   'close' (last event; the id is invalid afterwards)
 *
 * An exception thrown by a handler is reported (host[ERROR] with the handler's
 * file and line, then the stack) and the loop goes on; in host mode the exit
 * status becomes 70.
 */
#define UV_SLOT_BITS 16
#define UV_MAX_SLOTS (1u << UV_SLOT_BITS)
#define UV_READ_BUFFER 65536
#define UV_STASH_KEY "uvHandlers"

enum { UVH_TIMER = 1, UVH_TCP, UVH_UDP };

typedef struct uvh {
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_timer_t timer;
        uv_tcp_t tcp;
        uv_udp_t udp;
    } u;
    double id;
    int kind;
    int closing;
    int oneshot; /* timer without repeat: closed after it fires */
} uvh;

typedef struct {
    uv_write_t req;
    uvh *h;
    /* the bytes follow */
} uv_write_ctx;

typedef struct {
    uv_udp_send_t req;
    uvh *h;
} uv_send_ctx;

static duk_context *g_ctx;
static uvh **g_uv_slots;
static uint32_t *g_uv_gens;
static uint32_t g_uv_cap;
static int g_uv_running;
static int g_uncaught_in_loop;
static int g_threw_in_run;     /* a handler threw during the current run() */
static int g_stop_on_error;    /* run(true): stop the loop when a handler throws */
static char g_uv_readbuf[UV_READ_BUFFER];

static duk_ret_t report_error(duk_context *ctx, void *udata);

/* A new handle record in a free slot, or NULL (no slot, no memory). Never throws: it also runs
 * in libuv callbacks, outside any protected call, where a Duktape error would be fatal. */
static uvh *uvh_alloc(int kind) {
    uint32_t i;
    uvh *h;
    for (i = 0; i < g_uv_cap && g_uv_slots[i] != NULL; i++) {}
    if (i == g_uv_cap) {
        uint32_t ncap = g_uv_cap ? g_uv_cap * 2 : 64;
        uvh **ns;
        uint32_t *ng;
        if (ncap > UV_MAX_SLOTS) return NULL;
        ns = (uvh **)realloc(g_uv_slots, ncap * sizeof(*ns));
        if (ns == NULL) return NULL;
        g_uv_slots = ns;
        ng = (uint32_t *)realloc(g_uv_gens, ncap * sizeof(*ng));
        if (ng == NULL) return NULL;
        g_uv_gens = ng;
        memset(g_uv_slots + g_uv_cap, 0, (ncap - g_uv_cap) * sizeof(*ns));
        memset(g_uv_gens + g_uv_cap, 0, (ncap - g_uv_cap) * sizeof(*ng));
        g_uv_cap = ncap;
    }
    h = (uvh *)calloc(1, sizeof(*h));
    if (h == NULL) return NULL;
    g_uv_gens[i]++;
    h->id = (double)g_uv_gens[i] * UV_MAX_SLOTS + i;
    h->kind = kind;
    h->u.handle.data = h;
    g_uv_slots[i] = h;
    return h;
}

static uvh *uvh_new(duk_context *ctx, int kind) {
    uvh *h = uvh_alloc(kind);
    if (h == NULL) (void)duk_range_error(ctx, "uv: no room for another handle (at most %u, or out of memory)", UV_MAX_SLOTS);
    return h;
}

static void free_refused(uv_handle_t *handle) {
    free(handle);
}

static uvh *uvh_lookup(double id) {
    uint32_t i;
    if (!(id >= 0) || floor(id) != id || id > MAX_SAFE_INTEGER) return NULL;
    i = (uint32_t)fmod(id, (double)UV_MAX_SLOTS);
    if (i >= g_uv_cap || g_uv_slots[i] == NULL || g_uv_slots[i]->id != id) return NULL;
    return g_uv_slots[i];
}

/* The open (not closing) handle with the id at idx, of one of the kinds in mask. */
static uvh *require_uvh(duk_context *ctx, duk_idx_t idx, int kind_mask) {
    double id = duk_require_number(ctx, idx);
    uvh *h = uvh_lookup(id);
    if (h == NULL || h->closing || !((1 << h->kind) & kind_mask)) (void)duk_type_error(ctx, "uv: invalid or closed handle %.0f", id);
    return h;
}

static void stash_handlers(duk_context *ctx) {
    duk_push_global_stash(ctx);
    if (!duk_get_prop_string(ctx, -1, UV_STASH_KEY)) {
        duk_pop(ctx);
        duk_push_object(ctx);
        duk_dup_top(ctx);
        duk_put_prop_string(ctx, -3, UV_STASH_KEY);
    }
    duk_remove(ctx, -2);
}

static void set_handler(duk_context *ctx, uvh *h, duk_idx_t fn_idx) {
    fn_idx = duk_normalize_index(ctx, fn_idx);
    stash_handlers(ctx);
    duk_push_number(ctx, h->id);
    duk_dup(ctx, fn_idx);
    duk_put_prop(ctx, -3);
    duk_pop(ctx);
}

static void drop_handler(duk_context *ctx, uvh *h) {
    stash_handlers(ctx);
    duk_push_number(ctx, h->id);
    duk_del_prop(ctx, -2);
    duk_pop(ctx);
}

/* "host[ERROR] uncaught in a <event> handler at <file>:<line>: <String(err)>", then the stack. */
static duk_ret_t report_callback_error(duk_context *ctx, void *udata) {
    const char *event = (const char *)udata;
    int fd = g_is_pid1 ? 1 : 2;
    /* duk_safe_call shows the caller's whole value stack: the error is on top, not at 0. */
    duk_idx_t err = duk_get_top(ctx) - 1;
    char where[320];
    where[0] = '\0';
    if (duk_is_object(ctx, err)) {
        const char *file;
        double line;
        duk_get_prop_string(ctx, err, "fileName");
        duk_get_prop_string(ctx, err, "lineNumber");
        file = duk_is_string(ctx, -2) ? duk_get_string(ctx, -2) : NULL;
        line = duk_is_number(ctx, -1) ? duk_get_number(ctx, -1) : 0;
        if (file != NULL) {
            snprintf(where, sizeof(where), " at %s:%.0f", file, line);
            /* signet_native.where(file, line), when the boot stage set one, names the line the
             * service's author wrote (src/main.ts:42), from the image's line table. */
            duk_get_global_string(ctx, "signet_native");
            if (duk_is_object(ctx, -1)) {
                duk_get_prop_string(ctx, -1, "where");
                if (duk_is_function(ctx, -1)) {
                    duk_push_string(ctx, file);
                    duk_push_number(ctx, line);
                    if (duk_pcall(ctx, 2) == DUK_EXEC_SUCCESS && duk_is_string(ctx, -1)) {
                        snprintf(where, sizeof(where), " at %s", duk_get_string(ctx, -1));
                    }
                }
                duk_pop(ctx);
            }
            duk_pop(ctx);
        }
        duk_pop_2(ctx);
    }
    duk_push_sprintf(ctx, "host[ERROR] uncaught in a '%s' handler%s: ", event, where);
    duk_dup(ctx, err);
    duk_safe_to_string(ctx, -1);
    duk_concat(ctx, 2);
    write_line(fd, "", duk_get_string(ctx, -1));
    duk_pop(ctx);
    if (duk_is_error(ctx, err)) {
        duk_get_prop_string(ctx, err, "stack");
        if (duk_is_string(ctx, -1)) {
            const char *nl = strchr(duk_get_string(ctx, -1), '\n');
            if (nl != NULL) write_line(fd, "", nl + 1);
        }
        duk_pop(ctx);
    }
    return 0;
}

/* Pushes h's handler and the event name; returns 0 (nothing pushed) if it has none. */
static int emit_begin(uvh *h, const char *event) {
    duk_context *ctx = g_ctx;
    stash_handlers(ctx);
    duk_push_number(ctx, h->id);
    duk_get_prop(ctx, -2);
    duk_remove(ctx, -2);
    if (!duk_is_function(ctx, -1)) {
        duk_pop(ctx);
        return 0;
    }
    duk_push_string(ctx, event);
    return 1;
}

/* Calls the handler pushed by emit_begin with `nargs` more values; reports a throw. */
static void emit_end(const char *event, duk_idx_t nargs) {
    duk_context *ctx = g_ctx;
    if (duk_pcall(ctx, nargs + 1) != DUK_EXEC_SUCCESS) {
        g_uncaught_in_loop = 1;
        g_threw_in_run = 1;
        if (g_stop_on_error) uv_stop(uv_default_loop());
        if (duk_safe_call(ctx, report_callback_error, (void *)event, 1, 1) != DUK_EXEC_SUCCESS) {
            write_line(g_is_pid1 ? 1 : 2, "host[ERROR] ", "(error while reporting an error)");
        }
    }
    duk_pop(ctx);
}

static void emit0(uvh *h, const char *event) {
    if (emit_begin(h, event)) emit_end(event, 0);
}

/* event(code, message) for a libuv error, event() for status 0. */
static void emit_status(uvh *h, const char *event, int status) {
    if (!emit_begin(h, event)) return;
    if (status < 0) {
        duk_push_string(g_ctx, uv_err_name(status));
        duk_push_string(g_ctx, uv_strerror(status));
        emit_end(event, 2);
    } else {
        emit_end(event, 0);
    }
}

static void on_uv_close(uv_handle_t *handle) {
    uvh *h = (uvh *)handle->data;
    uint32_t i = (uint32_t)fmod(h->id, (double)UV_MAX_SLOTS);
    emit0(h, "close");
    drop_handler(g_ctx, h);
    g_uv_slots[i] = NULL;
    free(h);
}

static void uvh_close(uvh *h) {
    if (h->closing) return;
    h->closing = 1;
    uv_close(&h->u.handle, on_uv_close);
}

/* Throws an Error whose .code is libuv's name for rc (EADDRINUSE...). */
static duk_ret_t throw_uv(duk_context *ctx, int rc, const char *what) {
    duk_push_error_object(ctx, DUK_ERR_ERROR, "%s: %s (%s)", what, uv_strerror(rc), uv_err_name(rc));
    duk_push_string(ctx, uv_err_name(rc));
    duk_put_prop_string(ctx, -2, "code");
    return duk_throw(ctx);
}

/* A numeric IPv4 or IPv6 address and a port; no name lookups. */
static void require_sockaddr(duk_context *ctx, duk_idx_t host_idx, duk_idx_t port_idx, struct sockaddr_storage *out) {
    const char *host = duk_require_string(ctx, host_idx);
    int port = (int)require_uint(ctx, port_idx, 65535, "port");
    memset(out, 0, sizeof(*out));
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)out) == 0) return;
    if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)out) == 0) return;
    (void)duk_type_error(ctx, "'%s' is not a numeric IPv4 or IPv6 address", host);
}

/* Pushes { address, port, family } for a socket address. */
static void push_sockaddr(duk_context *ctx, const struct sockaddr *sa) {
    char name[64] = "";
    int port = 0;
    const char *family = "IPv4";
    if (sa->sa_family == AF_INET6) {
        uv_ip6_name((const struct sockaddr_in6 *)sa, name, sizeof(name));
        port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
        family = "IPv6";
    } else {
        uv_ip4_name((const struct sockaddr_in *)sa, name, sizeof(name));
        port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
    }
    duk_push_object(ctx);
    duk_push_string(ctx, name);
    duk_put_prop_string(ctx, -2, "address");
    duk_push_int(ctx, port);
    duk_put_prop_string(ctx, -2, "port");
    duk_push_string(ctx, family);
    duk_put_prop_string(ctx, -2, "family");
}

static void require_handler(duk_context *ctx, duk_idx_t idx) {
    if (!duk_is_function(ctx, idx)) (void)duk_type_error(ctx, "uv: the handler must be a function");
}

/* --- timers --- */

static void on_timer(uv_timer_t *t) {
    uvh *h = (uvh *)t->data;
    emit0(h, "timeout");
    if (h->oneshot) uvh_close(h);
}

/* timerStart(handler, timeoutMs, repeatMs) -> id. repeatMs 0: one shot, closed after it fires. */
static duk_ret_t n_uv_timer_start(duk_context *ctx) {
    double timeout, repeat;
    uvh *h;
    require_handler(ctx, 0);
    timeout = require_uint(ctx, 1, MAX_SAFE_INTEGER, "timer timeout");
    repeat = require_uint(ctx, 2, MAX_SAFE_INTEGER, "timer repeat");
    h = uvh_new(ctx, UVH_TIMER);
    uv_timer_init(uv_default_loop(), &h->u.timer);
    set_handler(ctx, h, 0);
    h->oneshot = repeat == 0;
    uv_update_time(uv_default_loop()); /* the loop's clock is cached; the script may have run long */
    uv_timer_start(&h->u.timer, on_timer, (uint64_t)timeout, (uint64_t)repeat);
    duk_push_number(ctx, h->id);
    return 1;
}

/* --- TCP --- */

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
    (void)handle;
    (void)suggested;
    /* One buffer serves every stream: read callbacks run one at a time and
     * copy what they got into a new Uint8Array before returning. */
    buf->base = g_uv_readbuf;
    buf->len = sizeof(g_uv_readbuf);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
    uvh *h = (uvh *)stream->data;
    if (nread > 0) {
        if (!emit_begin(h, "data")) return;
        memcpy(push_uint8array(g_ctx, (duk_size_t)nread), buf->base, (size_t)nread);
        emit_end("data", 1);
    } else if (nread == UV_EOF) {
        uv_read_stop(stream);
        emit0(h, "end");
    } else if (nread < 0) {
        uv_read_stop(stream);
        emit_status(h, "error", (int)nread);
    }
}

static void on_connection(uv_stream_t *server, int status) {
    uvh *h = (uvh *)server->data;
    uvh *c;
    int rc;
    if (status < 0) {
        emit_status(h, "error", status);
        return;
    }
    c = uvh_alloc(UVH_TCP);
    if (c == NULL) {
        /* Accept and close at once: a connection libuv offers must be taken, or it stops
         * offering more. The listener hears why. */
        uv_tcp_t *refused = (uv_tcp_t *)malloc(sizeof(*refused));
        if (refused != NULL) {
            uv_tcp_init(uv_default_loop(), refused);
            (void)uv_accept(server, (uv_stream_t *)refused);
            uv_close((uv_handle_t *)refused, free_refused);
        }
        emit_status(h, "error", UV_EMFILE);
        return;
    }
    uv_tcp_init(uv_default_loop(), &c->u.tcp);
    rc = uv_accept(server, &c->u.stream);
    if (rc < 0) {
        uvh_close(c);
        emit_status(h, "error", rc);
        return;
    }
    if (!emit_begin(h, "connection")) {
        uvh_close(c);
        return;
    }
    duk_push_number(g_ctx, c->id);
    emit_end("connection", 1);
}

/* tcpListen(handler, host, port, backlog) -> id. The handler gets 'connection' with the new
 * connection's id, whose handler is set with setHandler before readStart. */
static duk_ret_t n_uv_tcp_listen(duk_context *ctx) {
    struct sockaddr_storage sa;
    int backlog, rc;
    uvh *h;
    require_handler(ctx, 0);
    require_sockaddr(ctx, 1, 2, &sa);
    backlog = (int)require_uint(ctx, 3, 65535, "backlog");
    h = uvh_new(ctx, UVH_TCP);
    uv_tcp_init(uv_default_loop(), &h->u.tcp);
    set_handler(ctx, h, 0);
    rc = uv_tcp_bind(&h->u.tcp, (const struct sockaddr *)&sa, 0);
    if (rc == 0) rc = uv_listen(&h->u.stream, backlog > 0 ? backlog : 128, on_connection);
    if (rc < 0) {
        drop_handler(ctx, h); /* the call throws: no events for a handle the script never got */
        uvh_close(h);
        duk_push_sprintf(ctx, "listen %s:%d", duk_get_string(ctx, 1), duk_get_int(ctx, 2));
        return throw_uv(ctx, rc, duk_get_string(ctx, -1));
    }
    duk_push_number(ctx, h->id);
    return 1;
}

static void on_connect(uv_connect_t *req, int status) {
    uvh *h = (uvh *)req->data;
    free(req);
    emit_status(h, "connect", status);
}

/* tcpConnect(handler, host, port) -> id; the handler gets 'connect' (with code, message on failure). */
static duk_ret_t n_uv_tcp_connect(duk_context *ctx) {
    struct sockaddr_storage sa;
    uv_connect_t *req;
    int rc;
    uvh *h;
    require_handler(ctx, 0);
    require_sockaddr(ctx, 1, 2, &sa);
    req = (uv_connect_t *)malloc(sizeof(*req));
    if (req == NULL) return duk_range_error(ctx, "uv: out of memory");
    h = uvh_new(ctx, UVH_TCP);
    uv_tcp_init(uv_default_loop(), &h->u.tcp);
    set_handler(ctx, h, 0);
    req->data = h;
    rc = uv_tcp_connect(req, &h->u.tcp, (const struct sockaddr *)&sa, on_connect);
    if (rc < 0) {
        free(req);
        drop_handler(ctx, h); /* the call throws: no events for a handle the script never got */
        uvh_close(h);
        duk_push_sprintf(ctx, "connect %s:%d", duk_get_string(ctx, 1), duk_get_int(ctx, 2));
        return throw_uv(ctx, rc, duk_get_string(ctx, -1));
    }
    duk_push_number(ctx, h->id);
    return 1;
}

static duk_ret_t n_uv_set_handler(duk_context *ctx) {
    uvh *h = require_uvh(ctx, 0, (1 << UVH_TIMER) | (1 << UVH_TCP) | (1 << UVH_UDP));
    require_handler(ctx, 1);
    set_handler(ctx, h, 1);
    return 0;
}

static duk_ret_t n_uv_read_start(duk_context *ctx) {
    uvh *h = require_uvh(ctx, 0, 1 << UVH_TCP);
    int rc = uv_read_start(&h->u.stream, on_alloc, on_read);
    if (rc < 0 && rc != UV_EALREADY) return throw_uv(ctx, rc, "readStart");
    return 0;
}

static duk_ret_t n_uv_read_stop(duk_context *ctx) {
    uvh *h = require_uvh(ctx, 0, 1 << UVH_TCP);
    uv_read_stop(&h->u.stream);
    return 0;
}

static void on_write(uv_write_t *req, int status) {
    uv_write_ctx *w = (uv_write_ctx *)req;
    uvh *h = w->h;
    free(w);
    emit_status(h, "written", status);
}

/* write(id, bytes): queued in order; the handler gets one 'written' per call, in order. */
static duk_ret_t n_uv_write(duk_context *ctx) {
    uvh *h = require_uvh(ctx, 0, 1 << UVH_TCP);
    duk_size_t len;
    const void *p = duk_require_buffer_data(ctx, 1, &len);
    uv_write_ctx *w;
    uv_buf_t buf;
    int rc;
    if (len > MAX_IO_LENGTH) return duk_range_error(ctx, "write: %lu bytes is too many", (unsigned long)len);
    w = (uv_write_ctx *)malloc(sizeof(*w) + len);
    if (w == NULL) return duk_range_error(ctx, "write: out of memory");
    w->h = h;
    if (len > 0) memcpy(w + 1, p, len);
    buf = uv_buf_init((char *)(w + 1), (unsigned int)len);
    rc = uv_write(&w->req, &h->u.stream, &buf, 1, on_write);
    if (rc < 0) {
        free(w);
        return throw_uv(ctx, rc, "write");
    }
    duk_push_number(ctx, (double)h->u.stream.write_queue_size);
    return 1;
}

static void on_shutdown(uv_shutdown_t *req, int status) {
    uvh *h = (uvh *)req->data;
    free(req);
    emit_status(h, "shutdown", status);
}

/* shutdown(id): half-close after queued writes; the handler gets 'shutdown'. */
static duk_ret_t n_uv_shutdown(duk_context *ctx) {
    uvh *h = require_uvh(ctx, 0, 1 << UVH_TCP);
    uv_shutdown_t *req = (uv_shutdown_t *)malloc(sizeof(*req));
    int rc;
    if (req == NULL) return duk_range_error(ctx, "shutdown: out of memory");
    req->data = h;
    rc = uv_shutdown(req, &h->u.stream, on_shutdown);
    if (rc < 0) {
        free(req);
        return throw_uv(ctx, rc, "shutdown");
    }
    return 0;
}

static duk_ret_t n_uv_no_delay(duk_context *ctx) {
    uvh *h = require_uvh(ctx, 0, 1 << UVH_TCP);
    int rc = uv_tcp_nodelay(&h->u.tcp, duk_to_boolean(ctx, 1));
    if (rc < 0) return throw_uv(ctx, rc, "setNoDelay");
    return 0;
}

/* address(id) / remoteAddress(id) -> { address, port, family } */
static duk_ret_t uv_name(duk_context *ctx, int peer) {
    uvh *h = require_uvh(ctx, 0, (1 << UVH_TCP) | (1 << UVH_UDP));
    struct sockaddr_storage sa;
    int len = sizeof(sa), rc;
    memset(&sa, 0, sizeof(sa));
    if (h->kind == UVH_UDP) rc = peer ? UV_ENOTSUP : uv_udp_getsockname(&h->u.udp, (struct sockaddr *)&sa, &len);
    else rc = peer ? uv_tcp_getpeername(&h->u.tcp, (struct sockaddr *)&sa, &len) : uv_tcp_getsockname(&h->u.tcp, (struct sockaddr *)&sa, &len);
    if (rc < 0) return throw_uv(ctx, rc, peer ? "remoteAddress" : "address");
    push_sockaddr(ctx, (const struct sockaddr *)&sa);
    return 1;
}

static duk_ret_t n_uv_address(duk_context *ctx) { return uv_name(ctx, 0); }
static duk_ret_t n_uv_remote_address(duk_context *ctx) { return uv_name(ctx, 1); }

/* --- UDP --- */

static void on_udp_recv(uv_udp_t *udp, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr, unsigned flags) {
    uvh *h = (uvh *)udp->data;
    (void)flags;
    if (nread < 0) {
        emit_status(h, "error", (int)nread);
        return;
    }
    if (addr == NULL) return; /* nothing more to read now */
    if (!emit_begin(h, "message")) return;
    memcpy(push_uint8array(g_ctx, (duk_size_t)nread), buf->base, (size_t)nread);
    push_sockaddr(g_ctx, addr);
    duk_get_prop_string(g_ctx, -1, "address");
    duk_get_prop_string(g_ctx, -2, "port");
    duk_remove(g_ctx, -3);
    emit_end("message", 3);
}

/* udpBind(handler, host, port) -> id, receiving at once: 'message' bytes, address, port. */
static duk_ret_t n_uv_udp_bind(duk_context *ctx) {
    struct sockaddr_storage sa;
    int rc;
    uvh *h;
    require_handler(ctx, 0);
    require_sockaddr(ctx, 1, 2, &sa);
    h = uvh_new(ctx, UVH_UDP);
    uv_udp_init(uv_default_loop(), &h->u.udp);
    set_handler(ctx, h, 0);
    rc = uv_udp_bind(&h->u.udp, (const struct sockaddr *)&sa, 0);
    if (rc == 0) rc = uv_udp_recv_start(&h->u.udp, on_alloc, on_udp_recv);
    if (rc < 0) {
        drop_handler(ctx, h); /* the call throws: no events for a handle the script never got */
        uvh_close(h);
        duk_push_sprintf(ctx, "bind udp %s:%d", duk_get_string(ctx, 1), duk_get_int(ctx, 2));
        return throw_uv(ctx, rc, duk_get_string(ctx, -1));
    }
    duk_push_number(ctx, h->id);
    return 1;
}

static void on_udp_send(uv_udp_send_t *req, int status) {
    uv_send_ctx *s = (uv_send_ctx *)req;
    uvh *h = s->h;
    free(s);
    emit_status(h, "sent", status);
}

/* udpSend(id, bytes, host, port): one datagram; the handler gets one 'sent' per call, in order. */
static duk_ret_t n_uv_udp_send(duk_context *ctx) {
    uvh *h = require_uvh(ctx, 0, 1 << UVH_UDP);
    struct sockaddr_storage sa;
    duk_size_t len;
    const void *p = duk_require_buffer_data(ctx, 1, &len);
    uv_send_ctx *s;
    uv_buf_t buf;
    int rc;
    require_sockaddr(ctx, 2, 3, &sa);
    if (len > 65535) return duk_range_error(ctx, "udpSend: %lu bytes do not fit a datagram", (unsigned long)len);
    s = (uv_send_ctx *)malloc(sizeof(*s) + len);
    if (s == NULL) return duk_range_error(ctx, "udpSend: out of memory");
    s->h = h;
    if (len > 0) memcpy(s + 1, p, len);
    buf = uv_buf_init((char *)(s + 1), (unsigned int)len);
    rc = uv_udp_send(&s->req, &h->u.udp, &buf, 1, (const struct sockaddr *)&sa, on_udp_send);
    if (rc < 0) {
        free(s);
        return throw_uv(ctx, rc, "udpSend");
    }
    return 0;
}

/* --- every kind --- */

/* close(id): the handler's last event is 'close'. Closing twice is a no-op. */
static duk_ret_t n_uv_close(duk_context *ctx) {
    uvh *h = uvh_lookup(duk_require_number(ctx, 0));
    if (h != NULL) uvh_close(h);
    return 0;
}

/* ref(id, bool): whether the handle keeps the loop (and so the host) running. */
static duk_ret_t n_uv_ref(duk_context *ctx) {
    uvh *h = require_uvh(ctx, 0, (1 << UVH_TIMER) | (1 << UVH_TCP) | (1 << UVH_UDP));
    if (duk_to_boolean(ctx, 1)) uv_ref(&h->u.handle);
    else uv_unref(&h->u.handle);
    return 0;
}

static duk_ret_t n_uv_now(duk_context *ctx) {
    duk_push_number(ctx, (double)uv_now(uv_default_loop()));
    return 1;
}

/* Runs the loop until no handle keeps it alive. Not from inside a handler. */
static void run_loop(void) {
    g_uv_running = 1;
    uv_run(uv_default_loop(), UV_RUN_DEFAULT);
    g_uv_running = 0;
}

/* run(stopOnError) -> whether a handler threw during this run. With stopOnError the loop stops
 * at the first handler that throws (the boot stage then restarts the service). */
static duk_ret_t n_uv_run(duk_context *ctx) {
    int stop = duk_to_boolean(ctx, 0);
    if (g_uv_running) return duk_error(ctx, DUK_ERR_ERROR, "uv.run: the loop is already running");
    g_threw_in_run = 0;
    g_stop_on_error = stop;
    run_loop();
    g_stop_on_error = 0;
    duk_push_boolean(ctx, g_threw_in_run);
    return 1;
}

/* closeAll(): closes every handle without telling its handler (a service being restarted:
 * its code must not run again). The closes complete in the loop's next run. */
static duk_ret_t n_uv_close_all(duk_context *ctx) {
    uint32_t i;
    for (i = 0; i < g_uv_cap; i++) {
        uvh *h = g_uv_slots[i];
        if (h == NULL || h->closing) continue;
        drop_handler(ctx, h);
        uvh_close(h);
    }
    return 0;
}

static const duk_function_list_entry uv_functions[] = {
    { "timerStart", n_uv_timer_start, 3 },
    { "tcpListen", n_uv_tcp_listen, 4 },
    { "tcpConnect", n_uv_tcp_connect, 3 },
    { "setHandler", n_uv_set_handler, 2 },
    { "readStart", n_uv_read_start, 1 },
    { "readStop", n_uv_read_stop, 1 },
    { "write", n_uv_write, 2 },
    { "shutdown", n_uv_shutdown, 1 },
    { "setNoDelay", n_uv_no_delay, 2 },
    { "address", n_uv_address, 1 },
    { "remoteAddress", n_uv_remote_address, 1 },
    { "udpBind", n_uv_udp_bind, 3 },
    { "udpSend", n_uv_udp_send, 4 },
    { "close", n_uv_close, 1 },
    { "ref", n_uv_ref, 2 },
    { "now", n_uv_now, 0 },
    { "run", n_uv_run, 1 },
    { "closeAll", n_uv_close_all, 0 },
    { "random", n_random, 1 }, /* the runtime's DNS query ids (sdk/runtime/dns.ts) */
    { NULL, NULL, 0 }
};

static const duk_function_list_entry native_functions[] = {
    { "print", n_print, DUK_VARARGS },
    { "blockOpen", n_block_open, 2 },
    { "blockSize", n_block_size, 1 },
    { "blockRead", n_block_read, 3 },
    { "blockWrite", n_block_write, 3 },
    { "blockFlush", n_block_flush, 1 },
    { "blockClose", n_block_close, 1 },
    { "readFile", n_read_file, 1 },
    { "monotonicMs", n_monotonic_ms, 0 },
    { "nowSeconds", n_now_seconds, 0 },
    { "random", n_random, 1 },
    { "sha256", n_sha256, 1 },
    { "ed25519Verify", n_ed25519_verify, 3 },
    { "rsaVerify", n_rsa_verify, 4 },
    { "evalScript", n_eval_script, DUK_VARARGS },
    { "powerOff", n_power_off, 0 },
    { "reboot", n_reboot, 0 },
    { "exit", n_exit, DUK_VARARGS },
    { NULL, NULL, 0 }
};

void signet_register_tls(duk_context *ctx); /* tls.c (mbed TLS) */
void signet_register_net(duk_context *ctx); /* net.c: netInfo */
void signet_net_up(void);                   /* net.c: lo, the interface, DHCP */

static void register_native(duk_context *ctx, char **args, int nargs) {
    int i;
    duk_push_object(ctx);
    duk_put_function_list(ctx, -1, native_functions);
    duk_push_array(ctx);
    for (i = 0; i < nargs; i++) {
        duk_push_string(ctx, args[i]);
        duk_put_prop_index(ctx, -2, (duk_uarridx_t)i);
    }
    duk_put_prop_string(ctx, -2, "args");
    duk_push_boolean(ctx, g_is_pid1);
    duk_put_prop_string(ctx, -2, "isPid1");
    duk_push_string(ctx, HOST_ARCH);
    duk_put_prop_string(ctx, -2, "arch");
    duk_push_object(ctx);
    duk_put_function_list(ctx, -1, uv_functions);
    signet_register_tls(ctx); /* tls.c: tlsConfig, tlsSession, tlsPush, tlsWrite, tlsEnd */
    signet_register_net(ctx); /* net.c: netInfo */
    duk_put_prop_string(ctx, -2, "uv");
    duk_put_global_string(ctx, "signet_native");
}

/* ------------------------------------------------------------------------ */
/* Running the script and reporting                                          */
/* ------------------------------------------------------------------------ */

static const char *g_script_path;
static const char *g_compile_out; /* --compile: where to write the bytecode */

/* Pushes the program in `path`, compiled: Duktape bytecode (as --compile writes
 * it, recognised by its first byte, 0xBF, which no UTF-8 text starts with) is
 * loaded as it is; anything else is compiled as ES5 program code named `name`.
 * Bytecode is trusted like source (it comes from the same signed initramfs):
 * Duktape does not validate it. */
static void push_program(duk_context *ctx, const char *path, const char *name) {
    duk_size_t len;
    const uint8_t *p;
    duk_push_c_function(ctx, n_read_file, 1);
    duk_push_string(ctx, path);
    duk_call(ctx, 1);
    p = (const uint8_t *)duk_get_buffer_data(ctx, -1, &len);
    if (len > 0 && p[0] == 0xbf) {
        /* duk_load_function() wants a plain buffer, readFile made a Uint8Array. */
        memcpy(duk_push_fixed_buffer(ctx, len), p, len);
        duk_remove(ctx, -2);
        duk_load_function(ctx);
        return;
    }
    duk_buffer_to_string(ctx, -1);
    duk_push_string(ctx, name);
    duk_compile(ctx, 0);
}

static duk_ret_t run_script(duk_context *ctx, void *udata) {
    (void)udata;
    if (g_is_pid1 && access(BOOT_BYTECODE, R_OK) == 0) push_program(ctx, BOOT_BYTECODE, BOOT_SCRIPT);
    else if (g_is_pid1 && access(BOOT_SCRIPT, R_OK) != 0)
        /* The initramfs carries boot.js only when it has no bytecode (sdk/disk/initramfs.ts). */
        return duk_error(ctx, DUK_ERR_ERROR, "E_BOOT_STAGE_MISSING: the initramfs has neither " BOOT_BYTECODE " nor " BOOT_SCRIPT " — rebuild the boot image (signet build)");
    else push_program(ctx, g_script_path, g_script_path);
    duk_call(ctx, 0);
    return 0;
}

/* --compile <script.js> <out> [name]: compiles the script as program code
 * named `name` (default: the script's path) and writes Duktape's bytecode dump
 * of it. The dump is byte-order neutral (big-endian throughout), so a build
 * machine can make it for a board. */
static duk_ret_t compile_script(duk_context *ctx, void *udata) {
    const char *name = (const char *)udata;
    duk_size_t len;
    const void *p;
    int fd;
    size_t done = 0;
    push_program(ctx, g_script_path, name);
    duk_dump_function(ctx);
    p = duk_get_buffer_data(ctx, -1, &len);
    fd = open(g_compile_out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return duk_error(ctx, DUK_ERR_ERROR, "compile: %s: %s", g_compile_out, strerror(errno));
    while (done < len) {
        ssize_t w = write(fd, (const uint8_t *)p + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = errno;
            close(fd);
            return duk_error(ctx, DUK_ERR_ERROR, "compile: %s: %s", g_compile_out, strerror(e));
        }
        done += (size_t)w;
    }
    if (close(fd) != 0) return duk_error(ctx, DUK_ERR_ERROR, "compile: %s: %s", g_compile_out, strerror(errno));
    return 0;
}

/* Prints "host[ERROR] <String(err)>" then the stack frames, if any. */
static duk_ret_t report_error(duk_context *ctx, void *udata) {
    int fd = *(int *)udata;
    duk_idx_t err = duk_get_top(ctx) - 1; /* the caller's stack is visible: the error is on top */
    const char *nl;
    duk_dup(ctx, err);
    write_line(fd, "host[ERROR] ", duk_safe_to_string(ctx, -1));
    if (duk_is_error(ctx, err)) {
        duk_get_prop_string(ctx, err, "stack");
        if (duk_is_string(ctx, -1)) {
            nl = strchr(duk_get_string(ctx, -1), '\n');
            if (nl != NULL) write_line(fd, "", nl + 1);
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Duktape's heap: freed blocks kept for reuse                              */
/* ------------------------------------------------------------------------ */

/* Duktape allocates and frees blocks all the time. musl's allocator (the device's
 * C library) hands memory back to the kernel as soon as a group of slots or a
 * large block is free, and maps it again when it is needed: one boot stage made
 * ~300 mmap and ~120 munmap calls (glibc's heap: 17 brk), each a page-table
 * change plus fresh zeroed pages, which doubled the stage's time under
 * emulation. So freed blocks are kept for the next block of their class, and
 * the heap keeps its peak, as glibc's does:
 * - up to HEAP_SMALL_MAX bytes, classes of HEAP_ALIGN bytes, cut from
 *   HEAP_SLAB-byte slabs taken from malloc;
 * - up to HEAP_MEDIUM_MAX, classes of powers of two, each block from malloc;
 * - larger blocks go to malloc and back to free.
 * Every block starts after a header holding its capacity, as large as the most
 * aligned type so the block stays aligned for any type. */
#define HEAP_ALIGN 16
#define HEAP_SMALL_MAX 4096
#define HEAP_SLAB (256 * 1024)
#define HEAP_MEDIUM_SHIFT_MAX 20 /* 1 MiB */
#define HEAP_MEDIUM_MAX ((size_t)1 << HEAP_MEDIUM_SHIFT_MAX)

typedef union heap_hdr {
    size_t cap;
    long double align_ld; /* the strictest alignment of any type (16 bytes on aarch64) */
    long long align_ll;
    void *align_p;
} heap_hdr;

static void *g_heap_small[HEAP_SMALL_MAX / HEAP_ALIGN + 1];
static void *g_heap_medium[HEAP_MEDIUM_SHIFT_MAX + 1];
static unsigned char *g_heap_next, *g_heap_end;

/* The free list a block of capacity `cap` goes back to, or NULL for malloc's. */
static void **heap_list(size_t cap) {
    unsigned shift = 0;
    if (cap <= HEAP_SMALL_MAX) return &g_heap_small[cap / HEAP_ALIGN];
    if (cap > HEAP_MEDIUM_MAX || (cap & (cap - 1)) != 0) return NULL;
    while (((size_t)1 << shift) < cap) shift++;
    return &g_heap_medium[shift];
}

static void *heap_alloc(void *udata, duk_size_t size) {
    heap_hdr *h;
    size_t cap;
    void **list;
    (void)udata;
    if (size <= HEAP_SMALL_MAX) {
        cap = size == 0 ? HEAP_ALIGN : (size + HEAP_ALIGN - 1) & ~(size_t)(HEAP_ALIGN - 1);
    } else if (size <= HEAP_MEDIUM_MAX) {
        for (cap = HEAP_SMALL_MAX * 2; cap < size; cap *= 2) {}
    } else {
        if (size > SIZE_MAX - sizeof(heap_hdr)) return NULL;
        cap = size;
    }
    list = heap_list(cap);
    if (list != NULL && *list != NULL) {
        void *p = *list;
        *list = *(void **)p;
        return p;
    }
    if (cap <= HEAP_SMALL_MAX) {
        size_t need = sizeof(heap_hdr) + cap;
        if ((size_t)(g_heap_end - g_heap_next) < need) {
            unsigned char *slab = malloc(HEAP_SLAB); /* what is left of the last slab (< one block) stays unused */
            if (slab == NULL) return NULL;
            g_heap_next = slab;
            g_heap_end = slab + HEAP_SLAB;
        }
        h = (heap_hdr *)(void *)g_heap_next;
        g_heap_next += need;
    } else {
        h = malloc(sizeof(heap_hdr) + cap);
        if (h == NULL) return NULL;
    }
    h->cap = cap;
    return h + 1;
}

static void heap_free(void *udata, void *ptr) {
    heap_hdr *h;
    void **list;
    (void)udata;
    if (ptr == NULL) return;
    h = (heap_hdr *)ptr - 1;
    list = heap_list(h->cap);
    if (list == NULL) {
        free(h);
        return;
    }
    *(void **)ptr = *list;
    *list = ptr;
}

static void *heap_realloc(void *udata, void *ptr, duk_size_t size) {
    heap_hdr *h;
    void *q;
    if (ptr == NULL) return heap_alloc(udata, size);
    if (size == 0) {
        heap_free(udata, ptr);
        return NULL;
    }
    h = (heap_hdr *)ptr - 1;
    if (size <= h->cap && (h->cap <= HEAP_MEDIUM_MAX || size > HEAP_MEDIUM_MAX)) return ptr; /* still fits */
    if (h->cap > HEAP_MEDIUM_MAX && size > HEAP_MEDIUM_MAX) {
        heap_hdr *n;
        if (size > SIZE_MAX - sizeof(heap_hdr)) return NULL;
        n = realloc(h, sizeof(heap_hdr) + size);
        if (n == NULL) return NULL;
        n->cap = size;
        return n + 1;
    }
    q = heap_alloc(udata, size); /* into another class, or between a class and malloc */
    if (q == NULL) return NULL;
    memcpy(q, ptr, h->cap < size ? h->cap : size);
    heap_free(udata, ptr);
    return q;
}

static void fatal_handler(void *udata, const char *msg) {
    (void)udata;
    write_line(2, "host[ERROR] fatal: ", msg ? msg : "(no message)");
    if (g_is_pid1) host_shutdown(0);
    flush_stdio();
    _exit(EXIT_UNCAUGHT);
}

/* ------------------------------------------------------------------------ */
/* Watchdog (PID 1): a hang is a failed try (docs/boot-state.md "A hang is   */
/* a failure too")                                                            */
/* ------------------------------------------------------------------------ */

/* WATCHDOG_TIMEOUT_S: the longest the guest may go without running its event loop before the
 * watchdog resets it. A healthy boot runs the loop within a few seconds of /init starting (a TCG
 * guest: ~2-5 s from /init to the app's first loop turn, up to 3x that when the host is loaded,
 * the host's clock running on meanwhile); the longest stretch a healthy device spends outside the
 * loop is a synchronous slot write and verify (a boot image, ~11 MB). 30 s, the i6300esb driver's
 * default, leaves that a wide margin, and is what a hang costs before the reset. Fed every
 * WATCHDOG_FEED_MS from a timer of the event loop, so only a loop that turns feeds it. */
#define WATCHDOG_DEVICE "/dev/watchdog"
#define WATCHDOG_TIMEOUT_S 30
#define WATCHDOG_FEED_MS 5000

static int g_watchdog_fd = -1;
static int g_watchdog_feed_failed;
static uv_timer_t g_watchdog_timer;

static void watchdog_feed(uv_timer_t *t) {
    (void)t;
    if (ioctl(g_watchdog_fd, WDIOC_KEEPALIVE, 0) != 0 && !g_watchdog_feed_failed) {
        char line[160];
        g_watchdog_feed_failed = 1;
        snprintf(line, sizeof(line), "reason=E_WATCHDOG_FEED detail=%s", strerror(errno));
        write_line(1, "host[WATCHDOG] ", line);
    }
}

/* Opens the watchdog when the machine has one (QEMU: -device i6300esb), which starts it, sets
 * its timeout and feeds it from the event loop's timer (unreferenced: it keeps no loop alive).
 * It is never closed and never disarmed on purpose: no magic close ('V'), so nothing this process
 * does short of feeding it stops it; the kernel stops it on reboot() and power-off (the driver's
 * stop-on-reboot), and a reset re-enters U-Boot with it stopped. No watchdog: nothing is printed
 * and the boot goes on unchanged. */
static void watchdog_start(void) {
    char line[160];
    int timeout = WATCHDOG_TIMEOUT_S;
    uint64_t feed_ms = WATCHDOG_FEED_MS;
    g_watchdog_fd = open(WATCHDOG_DEVICE, O_WRONLY | O_CLOEXEC);
    if (g_watchdog_fd < 0) {
        if (errno == ENOENT || errno == ENODEV || errno == ENXIO) return;
        snprintf(line, sizeof(line), "reason=E_WATCHDOG_OPEN detail=%s", strerror(errno));
        write_line(1, "host[WATCHDOG] ", line);
        return;
    }
    if (ioctl(g_watchdog_fd, WDIOC_SETTIMEOUT, &timeout) != 0) {
        /* Running at the driver's own timeout: said, and fed all the same. */
        snprintf(line, sizeof(line), "reason=E_WATCHDOG_TIMEOUT detail=%s", strerror(errno));
        write_line(1, "host[WATCHDOG] ", line);
        if (ioctl(g_watchdog_fd, WDIOC_GETTIMEOUT, &timeout) != 0) timeout = 0;
    }
    /* A driver stuck at a short timeout of its own is fed three times within it. */
    if (timeout > 0 && (uint64_t)timeout * 1000 / 3 < feed_ms) feed_ms = (uint64_t)timeout * 1000 / 3;
    uv_timer_init(uv_default_loop(), &g_watchdog_timer);
    uv_timer_start(&g_watchdog_timer, watchdog_feed, feed_ms, feed_ms);
    uv_unref((uv_handle_t *)&g_watchdog_timer);
    snprintf(line, sizeof(line), "device=%s timeout_s=%d feed_ms=%llu", WATCHDOG_DEVICE, timeout, (unsigned long long)feed_ms);
    write_line(1, "host[WATCHDOG] ", line);
}

/* ------------------------------------------------------------------------ */
/* PID 1 setup                                                               */
/* ------------------------------------------------------------------------ */

static void mount_early(const char *source, const char *target, const char *type) {
    mkdir(target, 0755);
    if (mount(source, target, type, MS_NOSUID | MS_NOEXEC | (strcmp(type, "devtmpfs") ? MS_NODEV : 0), NULL) != 0 &&
        errno != EBUSY) {
        char line[160];
        snprintf(line, sizeof(line), "mount %s on %s: %s", type, target, strerror(errno));
        write_line(2, "host[WARN] ", line);
    }
}

static void ensure_console(void) {
    int fd;
    if (fcntl(0, F_GETFD) >= 0 && fcntl(1, F_GETFD) >= 0 && fcntl(2, F_GETFD) >= 0) return;
    fd = open("/dev/console", O_RDWR | O_NOCTTY);
    if (fd < 0) return;
    if (fcntl(0, F_GETFD) < 0) dup2(fd, 0);
    if (fcntl(1, F_GETFD) < 0) dup2(fd, 1);
    if (fcntl(2, F_GETFD) < 0) dup2(fd, 2);
    if (fd > 2) close(fd);
}

/* Loads the kernel modules listed in MODULE_LIST, in order (the initramfs
 * builder puts dependencies first), so that the boot stage finds its flash
 * device. No list: nothing to do. A module already loaded or built in is fine;
 * any other failure is reported and the boot goes on (the stage then reports
 * the missing device with its own code). */
static void load_modules(void) {
    static char list[8192];
    int fd = open(MODULE_LIST, O_RDONLY | O_CLOEXEC);
    ssize_t len = 0;
    char *line, *next;
    if (fd < 0) return;
    for (;;) {
        ssize_t r = read(fd, list + len, sizeof(list) - 1 - (size_t)len);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        len += r;
    }
    close(fd);
    list[len] = '\0';
    for (line = list; *line != '\0'; line = next) {
        int mfd;
        next = strchr(line, '\n');
        if (next != NULL) *next++ = '\0';
        else next = line + strlen(line);
        if (*line == '\0') continue;
        mfd = open(line, O_RDONLY | O_CLOEXEC);
        if (mfd < 0 || (syscall(SYS_finit_module, mfd, "", 0) != 0 && errno != EEXIST)) {
            char msg[320];
            snprintf(msg, sizeof(msg), "module %s: %s", line, strerror(errno));
            write_line(1, "host[WARN] ", msg);
        }
        if (mfd >= 0) close(mfd);
    }
}

/* ------------------------------------------------------------------------ */
/* Network bring-up (PID 1): net.c (static address or DHCP, DNS servers)     */
/* ------------------------------------------------------------------------ */

/* Splits the kernel command line the way the kernel does (whitespace, double
 * quotes group) and returns the words after "--"; *count receives their number. */
static char **cmdline_args(int *count) {
    static char buf[4096];
    static char *words[256];
    int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC), n = 0, after = 0;
    ssize_t len = 0;
    char *p;
    *count = 0;
    if (fd < 0) return words;
    for (;;) {
        ssize_t r = read(fd, buf + len, sizeof(buf) - 1 - (size_t)len);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        len += r;
    }
    close(fd);
    buf[len] = '\0';
    p = buf;
    while (*p != '\0' && n < (int)(sizeof(words) / sizeof(words[0]))) {
        char *word, *out;
        int quoted = 0;
        while (*p == ' ' || *p == '\t' || *p == '\n') p++;
        if (*p == '\0') break;
        word = out = p;
        while (*p != '\0' && (quoted || (*p != ' ' && *p != '\t' && *p != '\n'))) {
            if (*p == '"') quoted = !quoted;
            else *out++ = *p;
            p++;
        }
        if (*p != '\0') p++;
        *out = '\0';
        if (after) words[n++] = word;
        else if (strcmp(word, "--") == 0) after = 1;
    }
    *count = n;
    return words;
}

int main(int argc, char **argv) {
    duk_context *ctx;
    char **args;
    const char *compile_name = NULL;
    int nargs, i, err_fd;

    for (i = 0; i < MAX_HANDLES; i++) g_fds[i] = -1;
    g_is_pid1 = getpid() == 1;

    if (g_is_pid1) {
        /* /dev first: without /dev/console nothing below could be reported. */
        mount_early("devtmpfs", "/dev", "devtmpfs");
        ensure_console();
        mount_early("proc", "/proc", "proc");
        mount_early("sysfs", "/sys", "sysfs");
        load_modules();
        watchdog_start();
        signet_net_up();
        g_script_path = BOOT_SCRIPT;
        args = cmdline_args(&nargs);
    } else {
        if (argc < 2 || (strcmp(argv[1], "--compile") == 0 && (argc < 4 || argc > 5))) {
            write_line(2, "", "usage: signet-host <script.js|bytecode> [args...]");
            write_line(2, "", "       signet-host --compile <script.js> <out.dukbc> [name]");
            return EXIT_USAGE;
        }
        signal(SIGPIPE, SIG_IGN);
        if (strcmp(argv[1], "--compile") == 0) {
            g_script_path = argv[2];
            g_compile_out = argv[3];
            compile_name = argc == 5 ? argv[4] : argv[2];
            args = argv + argc;
            nargs = 0;
        } else {
            g_script_path = argv[1];
            args = argv + 2;
            nargs = argc - 2;
        }
    }

    ctx = duk_create_heap(heap_alloc, heap_realloc, heap_free, NULL, fatal_handler);
    g_ctx = ctx;
    if (ctx == NULL) {
        write_line(2, "host[ERROR] ", "cannot create the Duktape heap");
        if (g_is_pid1) host_shutdown(0);
        return EXIT_UNCAUGHT;
    }
    register_native(ctx, args, nargs);

    if (g_compile_out != NULL) {
        if (duk_safe_call(ctx, compile_script, (void *)compile_name, 0, 1) != DUK_EXEC_SUCCESS) {
            err_fd = 2;
            duk_dup_top(ctx);
            if (duk_safe_call(ctx, report_error, &err_fd, 1, 1) != DUK_EXEC_SUCCESS) {
                write_line(err_fd, "host[ERROR] ", "(error while reporting an error)");
            }
            unlink(g_compile_out);
            return EXIT_UNCAUGHT;
        }
        duk_destroy_heap(ctx);
        return 0;
    }

    if (duk_safe_call(ctx, run_script, NULL, 0, 1) != DUK_EXEC_SUCCESS) {
        err_fd = g_is_pid1 ? 1 : 2;
        duk_dup_top(ctx);
        if (duk_safe_call(ctx, report_error, &err_fd, 1, 1) != DUK_EXEC_SUCCESS) {
            write_line(err_fd, "host[ERROR] ", "(error while reporting an error)");
        }
        if (g_is_pid1) host_shutdown(0);
        flush_stdio();
        return EXIT_UNCAUGHT;
    }
    duk_pop(ctx);
    /* The script has set up its timers and sockets: serve until none is left. */
    run_loop();
    duk_destroy_heap(ctx);
    host_exit(g_uncaught_in_loop && !g_is_pid1 ? EXIT_UNCAUGHT : 0);
    return 0;
}
