/*
 * signet-host: a small C host embedding Duktape, used as the guest's /init.
 *
 * Host mode:   signet-host <script.js> [args...]
 * PID 1 mode:  mounts /proc, /sys, /dev, loads the kernel modules listed in
 *              /signet/modules, runs /signet/boot.js with the kernel
 *              command-line arguments after "--", and powers off when the
 *              script ends (a PID 1 must never exit).
 *
 * The script sees one global object, signet_native; see README.md beside
 * this file. Duktape's default configuration is kept; the engine source comes
 * from Debian's duktape-dev package, and ed25519 verification from Debian's
 * libsodium-dev (libsodium.a, linked statically; bootloader/native/build.ts).
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

#include "duktape.h"
#include <sodium.h>

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
    { "evalScript", n_eval_script, DUK_VARARGS },
    { "powerOff", n_power_off, 0 },
    { "reboot", n_reboot, 0 },
    { "exit", n_exit, DUK_VARARGS },
    { NULL, NULL, 0 }
};

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
    const char *nl;
    duk_dup(ctx, 0);
    write_line(fd, "host[ERROR] ", duk_safe_to_string(ctx, -1));
    if (duk_is_error(ctx, 0)) {
        duk_get_prop_string(ctx, 0, "stack");
        if (duk_is_string(ctx, -1)) {
            nl = strchr(duk_get_string(ctx, -1), '\n');
            if (nl != NULL) write_line(fd, "", nl + 1);
        }
    }
    return 0;
}

static void fatal_handler(void *udata, const char *msg) {
    (void)udata;
    write_line(2, "host[ERROR] fatal: ", msg ? msg : "(no message)");
    if (g_is_pid1) host_shutdown(0);
    flush_stdio();
    _exit(EXIT_UNCAUGHT);
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

    ctx = duk_create_heap(NULL, NULL, NULL, NULL, fatal_handler);
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
    duk_destroy_heap(ctx);
    host_exit(0);
    return 0;
}
