/*
 * TLS for signet-host: Debian's mbed TLS 2.28 (libmbedtls.a, libmbedx509.a,
 * libmbedcrypto.a from libmbedtls-dev, linked statically; build.ts), driven
 * through memory buffers. The JavaScript runtime (sdk/runtime/tls.ts) reads
 * ciphertext from a libuv TCP stream and hands it to tlsPush; whatever the
 * engine wants to send comes back from tlsPush/tlsWrite/tlsEnd as bytes the
 * runtime writes to the same stream. The engine never touches a socket.
 *
 * Policy, fixed here: TLS 1.2 only (mbed TLS 2.28 has no 1.3), ECDHE key
 * exchange with AEAD ciphers (AES-GCM, ChaCha20-Poly1305), no renegotiation,
 * entropy straight from getrandom(2). A client session must have a CA and a
 * server name: the chain is verified against that CA and the certificate must
 * name the server (subjectAltName dNSName or CN). A clock that was never set
 * (before 2020) cannot judge validity dates, so only then are the
 * expired/not-yet-valid flags ignored; everything else still fails closed.
 *
 * Registered on signet_native.uv (README.md beside this file):
 *   tlsConfig(isServer, certPem, keyPem, caPem) -> config object (a client may give
 *     certPem and keyPem too: its certificate for mutual TLS)
 *   tlsSession(config, serverName) -> session object
 *   tlsPush(session, bytes|null) -> [state, plaintext|null, out|null, code, message]
 *   tlsWrite(session, bytes) -> out,  tlsEnd(session) -> out
 * Config and session objects free their C state in a Duktape finalizer.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/random.h>

#include "duktape.h"
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>
#include <mbedtls/pk.h>
#include <mbedtls/error.h>

#define TLS_STATE_HANDSHAKE 0
#define TLS_STATE_OPEN 1
#define TLS_STATE_CLOSED 2 /* the peer sent close_notify */
#define TLS_STATE_FAILED 3
#define TLS_MAX_PEM (256 * 1024)
#define TLS_CLOCK_SET_AFTER 1577836800L

void signet_register_tls(duk_context *ctx);

static const int tls_suites[] = {
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    0
};

typedef struct {
    mbedtls_ssl_config conf;
    mbedtls_x509_crt ca;
    mbedtls_x509_crt cert;
    mbedtls_pk_context key;
    int server;
} tls_config;

typedef struct {
    uint8_t *p;
    size_t len, off, cap;
} tls_buf;

typedef struct {
    mbedtls_ssl_context ssl;
    tls_buf in;   /* ciphertext from the peer, not yet read by the engine */
    tls_buf out;  /* ciphertext the engine wants sent */
    int state;
} tls_session;

static int tls_random(void *unused, unsigned char *p, size_t n) {
    size_t done = 0;
    (void)unused;
    while (done < n) {
        ssize_t r = getrandom(p + done, n - done, 0);
        if (r < 0) {
            if (errno == EINTR) continue;
            return MBEDTLS_ERR_SSL_INTERNAL_ERROR;
        }
        done += (size_t)r;
    }
    return 0;
}

static int buf_append(tls_buf *b, const uint8_t *p, size_t n) {
    if (b->off > 0 && b->off == b->len) b->off = b->len = 0;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        uint8_t *q;
        while (cap < b->len + n) cap *= 2;
        q = realloc(b->p, cap);
        if (q == NULL) return -1;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

static void buf_free(tls_buf *b) {
    free(b->p);
    memset(b, 0, sizeof(*b));
}

static int bio_send(void *v, const unsigned char *p, size_t n) {
    tls_session *s = v;
    if (buf_append(&s->out, p, n) != 0) return MBEDTLS_ERR_SSL_ALLOC_FAILED;
    return (int)n;
}

static int bio_recv(void *v, unsigned char *p, size_t n) {
    tls_session *s = v;
    size_t have = s->in.len - s->in.off;
    if (have == 0) return MBEDTLS_ERR_SSL_WANT_READ;
    if (n > have) n = have;
    memcpy(p, s->in.p + s->in.off, n);
    s->in.off += n;
    return (int)n;
}

/* A clock never set cannot tell expired from valid: drop only the date flags then. */
static int verify_dates(void *unused, mbedtls_x509_crt *crt, int depth, uint32_t *flags) {
    (void)unused;
    (void)crt;
    (void)depth;
    if (time(NULL) < TLS_CLOCK_SET_AFTER) *flags &= ~(uint32_t)(MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCERT_FUTURE);
    return 0;
}

static void *get_ptr(duk_context *ctx, duk_idx_t idx, const char *what) {
    void *p = NULL;
    if (duk_is_object(ctx, idx)) {
        duk_get_prop_string(ctx, idx, DUK_HIDDEN_SYMBOL("tls"));
        p = duk_get_pointer(ctx, -1);
        duk_pop(ctx);
    }
    if (p == NULL) (void)duk_type_error(ctx, "%s: not a live TLS %s", what, what);
    return p;
}

static duk_ret_t throw_tls(duk_context *ctx, const char *code, const char *what, int rc) {
    char msg[160];
    mbedtls_strerror(rc, msg, sizeof(msg));
    duk_push_error_object(ctx, DUK_ERR_ERROR, "%s: %s", what, msg);
    duk_push_string(ctx, code);
    duk_put_prop_string(ctx, -2, "code");
    return duk_throw(ctx);
}

/* A PEM argument copied with its NUL (mbed TLS wants the terminator counted). */
static int pem_arg(duk_context *ctx, duk_idx_t idx, uint8_t **out, size_t *len) {
    const char *s;
    duk_size_t n;
    if (duk_is_null_or_undefined(ctx, idx)) return 0;
    if (duk_is_buffer_data(ctx, idx)) {
        void *b = duk_get_buffer_data(ctx, idx, &n);
        s = b;
    } else {
        s = duk_require_lstring(ctx, idx, &n);
    }
    if (n == 0 || n > TLS_MAX_PEM) (void)duk_range_error(ctx, "PEM of %lu bytes (1..%d allowed)", (unsigned long)n, TLS_MAX_PEM);
    *out = malloc(n + 1);
    if (*out == NULL) (void)duk_error(ctx, DUK_ERR_ERROR, "out of memory");
    memcpy(*out, s, n);
    (*out)[n] = 0;
    *len = n + 1;
    return 1;
}

static duk_ret_t config_finalizer(duk_context *ctx) {
    tls_config *c;
    duk_get_prop_string(ctx, 0, DUK_HIDDEN_SYMBOL("tls"));
    c = duk_get_pointer(ctx, -1);
    if (c != NULL) {
        mbedtls_ssl_config_free(&c->conf);
        mbedtls_x509_crt_free(&c->ca);
        mbedtls_x509_crt_free(&c->cert);
        mbedtls_pk_free(&c->key);
        free(c);
        duk_push_pointer(ctx, NULL);
        duk_put_prop_string(ctx, 0, DUK_HIDDEN_SYMBOL("tls"));
    }
    return 0;
}

/* tlsConfig(isServer, certPem, keyPem, caPem): everything parsed and checked here, once. */
static duk_ret_t n_tls_config(duk_context *ctx) {
    int server = duk_to_boolean(ctx, 0);
    uint8_t *cert = NULL, *key = NULL, *ca = NULL;
    size_t cert_len = 0, key_len = 0, ca_len = 0;
    int have_cert = pem_arg(ctx, 1, &cert, &cert_len);
    int have_key = pem_arg(ctx, 2, &key, &key_len);
    int have_ca = pem_arg(ctx, 3, &ca, &ca_len);
    const char *code = NULL, *what = NULL;
    int rc = 0;
    tls_config *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        free(cert); free(key); free(ca);
        return duk_error(ctx, DUK_ERR_ERROR, "out of memory");
    }
    c->server = server;
    mbedtls_ssl_config_init(&c->conf);
    mbedtls_x509_crt_init(&c->ca);
    mbedtls_x509_crt_init(&c->cert);
    mbedtls_pk_init(&c->key);

    /* Push the object first so the finalizer frees whatever fails below. */
    duk_push_object(ctx);
    duk_push_pointer(ctx, c);
    duk_put_prop_string(ctx, -2, DUK_HIDDEN_SYMBOL("tls"));
    duk_push_c_function(ctx, config_finalizer, 1);
    duk_set_finalizer(ctx, -2);

    if ((rc = mbedtls_ssl_config_defaults(&c->conf, server ? MBEDTLS_SSL_IS_SERVER : MBEDTLS_SSL_IS_CLIENT,
                                          MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT)) != 0) {
        code = "E_TLS_CONFIG"; what = "TLS defaults";
        goto fail;
    }
    mbedtls_ssl_conf_min_version(&c->conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_max_version(&c->conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_ciphersuites(&c->conf, tls_suites);
#if defined(MBEDTLS_SSL_RENEGOTIATION) /* the device's own config (mbedtls-config.h) leaves it out */
    mbedtls_ssl_conf_renegotiation(&c->conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
#endif
    mbedtls_ssl_conf_legacy_renegotiation(&c->conf, MBEDTLS_SSL_LEGACY_NO_RENEGOTIATION);
#if defined(MBEDTLS_SSL_SESSION_TICKETS) && defined(MBEDTLS_SSL_CLI_C)
    mbedtls_ssl_conf_session_tickets(&c->conf, MBEDTLS_SSL_SESSION_TICKETS_DISABLED);
#endif
    mbedtls_ssl_conf_rng(&c->conf, tls_random, NULL);
    if (server) {
        if (!have_cert || !have_key) {
            code = "E_TLS_CONFIG"; what = "a TLS server needs a certificate and a key";
            rc = MBEDTLS_ERR_SSL_BAD_INPUT_DATA;
            goto fail;
        }
        if ((rc = mbedtls_x509_crt_parse(&c->cert, cert, cert_len)) != 0) {
            code = "E_TLS_CERT_PARSE"; what = "the certificate";
            goto fail;
        }
        if ((rc = mbedtls_pk_parse_key(&c->key, key, key_len, NULL, 0)) != 0) {
            code = "E_TLS_KEY_PARSE"; what = "the private key";
            goto fail;
        }
        if ((rc = mbedtls_ssl_conf_own_cert(&c->conf, &c->cert, &c->key)) != 0) {
            code = "E_TLS_CONFIG"; what = "the certificate and key";
            goto fail;
        }
        mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_NONE);
    } else {
        if (!have_ca) {
            code = "E_TLS_NO_CA"; what = "a TLS client needs the CA to verify the server against";
            rc = MBEDTLS_ERR_SSL_BAD_INPUT_DATA;
            goto fail;
        }
        if ((rc = mbedtls_x509_crt_parse(&c->ca, ca, ca_len)) != 0) {
            code = "E_TLS_CERT_PARSE"; what = "the CA certificate";
            goto fail;
        }
        mbedtls_ssl_conf_ca_chain(&c->conf, &c->ca, NULL);
        /* Mutual TLS: a client certificate and key, both or neither (a device's identity). */
        if (have_cert != have_key) {
            code = "E_TLS_CONFIG"; what = "a TLS client certificate needs its key (and a key its certificate)";
            rc = MBEDTLS_ERR_SSL_BAD_INPUT_DATA;
            goto fail;
        }
        if (have_cert) {
            if ((rc = mbedtls_x509_crt_parse(&c->cert, cert, cert_len)) != 0) {
                code = "E_TLS_CERT_PARSE"; what = "the client certificate";
                goto fail;
            }
            if ((rc = mbedtls_pk_parse_key(&c->key, key, key_len, NULL, 0)) != 0) {
                code = "E_TLS_KEY_PARSE"; what = "the client private key";
                goto fail;
            }
            if ((rc = mbedtls_ssl_conf_own_cert(&c->conf, &c->cert, &c->key)) != 0) {
                code = "E_TLS_CONFIG"; what = "the client certificate and key";
                goto fail;
            }
        }
        mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
        mbedtls_ssl_conf_verify(&c->conf, verify_dates, NULL);
    }
    free(cert); free(key); free(ca);
    return 1;
fail:
    free(cert); free(key); free(ca);
    return throw_tls(ctx, code, what, rc);
}

static duk_ret_t session_finalizer(duk_context *ctx) {
    tls_session *s;
    duk_get_prop_string(ctx, 0, DUK_HIDDEN_SYMBOL("tls"));
    s = duk_get_pointer(ctx, -1);
    if (s != NULL) {
        mbedtls_ssl_free(&s->ssl);
        buf_free(&s->in);
        buf_free(&s->out);
        free(s);
        duk_push_pointer(ctx, NULL);
        duk_put_prop_string(ctx, 0, DUK_HIDDEN_SYMBOL("tls"));
    }
    return 0;
}

/* tlsSession(config, serverName): a client's serverName is required (SNI and the name check). */
static duk_ret_t n_tls_session(duk_context *ctx) {
    tls_config *c = get_ptr(ctx, 0, "config");
    const char *name = duk_is_null_or_undefined(ctx, 1) ? NULL : duk_require_string(ctx, 1);
    int rc;
    tls_session *s;
    if (!c->server && (name == NULL || name[0] == 0)) {
        duk_push_error_object(ctx, DUK_ERR_ERROR, "a TLS client needs the server's name to check its certificate against");
        duk_push_string(ctx, "E_TLS_NO_SERVERNAME");
        duk_put_prop_string(ctx, -2, "code");
        return duk_throw(ctx);
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) return duk_error(ctx, DUK_ERR_ERROR, "out of memory");
    mbedtls_ssl_init(&s->ssl);
    duk_push_object(ctx);
    duk_push_pointer(ctx, s);
    duk_put_prop_string(ctx, -2, DUK_HIDDEN_SYMBOL("tls"));
    duk_dup(ctx, 0); /* the config lives as long as its sessions */
    duk_put_prop_string(ctx, -2, DUK_HIDDEN_SYMBOL("config"));
    duk_push_c_function(ctx, session_finalizer, 1);
    duk_set_finalizer(ctx, -2);
    if ((rc = mbedtls_ssl_setup(&s->ssl, &c->conf)) != 0) return throw_tls(ctx, "E_TLS_CONFIG", "TLS session", rc);
    if (name != NULL && (rc = mbedtls_ssl_set_hostname(&s->ssl, name)) != 0) return throw_tls(ctx, "E_TLS_CONFIG", "server name", rc);
    mbedtls_ssl_set_bio(&s->ssl, s, bio_send, bio_recv, NULL);
    return 1;
}

/* Pushes the pending ciphertext as a Uint8Array (or null) and empties the buffer. */
static void push_out(duk_context *ctx, tls_session *s) {
    size_t n = s->out.len - s->out.off;
    if (n == 0) {
        duk_push_null(ctx);
    } else {
        void *p = duk_push_fixed_buffer(ctx, n);
        memcpy(p, s->out.p + s->out.off, n);
        duk_push_buffer_object(ctx, -1, 0, n, DUK_BUFOBJ_UINT8ARRAY);
        duk_remove(ctx, -2);
    }
    s->out.len = s->out.off = 0;
}

/* What went wrong in a handshake or read, as a stable code and a sentence. */
static void describe_failure(tls_session *s, int rc, const char **code, char *msg, size_t cap) {
    if (rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
        uint32_t flags = mbedtls_ssl_get_verify_result(&s->ssl);
        char info[256];
        int n = mbedtls_x509_crt_verify_info(info, sizeof(info), "", flags & ~(uint32_t)MBEDTLS_X509_BADCERT_NOT_TRUSTED);
        char *nl;
        if (n < 0) info[0] = 0;
        while ((nl = strchr(info, '\n')) != NULL) *nl = (nl[1] ? ';' : 0);
        if (flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED) {
            *code = "E_TLS_UNTRUSTED";
            snprintf(msg, cap, "the server's certificate is not from the CA this client trusts");
        } else if (flags & MBEDTLS_X509_BADCERT_CN_MISMATCH) {
            *code = "E_TLS_HOSTNAME";
            snprintf(msg, cap, "the server's certificate does not name the host it was asked for");
        } else {
            *code = "E_TLS_CERT";
            snprintf(msg, cap, "the server's certificate was refused: %s", info[0] ? info : "verification failed");
        }
        return;
    }
    if (rc == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE) {
        *code = "E_TLS_ALERT";
        snprintf(msg, cap, "the peer ended the handshake with an alert");
        return;
    }
    *code = s->state == TLS_STATE_HANDSHAKE ? "E_TLS_HANDSHAKE" : "E_TLS_PROTOCOL";
    mbedtls_strerror(rc, msg, cap);
}

/*
 * tlsPush(session, bytes|null): feeds ciphertext, runs the handshake or reads, and returns
 * [state, plaintext|null, out|null, code, message]; code/message only when state is 3 (failed).
 */
static duk_ret_t n_tls_push(duk_context *ctx) {
    tls_session *s = get_ptr(ctx, 0, "session");
    tls_buf plain = { 0 };
    const char *code = NULL;
    char msg[200] = "";
    int rc;
    if (!duk_is_null_or_undefined(ctx, 1)) {
        duk_size_t n;
        void *p = duk_require_buffer_data(ctx, 1, &n);
        if (n > 0 && buf_append(&s->in, p, n) != 0) return duk_error(ctx, DUK_ERR_ERROR, "out of memory");
    }
    if (s->state == TLS_STATE_HANDSHAKE) {
        rc = mbedtls_ssl_handshake(&s->ssl);
        if (rc == 0) {
            s->state = TLS_STATE_OPEN;
        } else if (rc != MBEDTLS_ERR_SSL_WANT_READ && rc != MBEDTLS_ERR_SSL_WANT_WRITE) {
            describe_failure(s, rc, &code, msg, sizeof(msg));
            s->state = TLS_STATE_FAILED;
        }
    }
    while (s->state == TLS_STATE_OPEN) {
        uint8_t chunk[4096];
        rc = mbedtls_ssl_read(&s->ssl, chunk, sizeof(chunk));
        if (rc > 0) {
            if (buf_append(&plain, chunk, (size_t)rc) != 0) {
                buf_free(&plain);
                return duk_error(ctx, DUK_ERR_ERROR, "out of memory");
            }
            continue;
        }
        if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE) break;
        if (rc == 0 || rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
            s->state = TLS_STATE_CLOSED;
            break;
        }
        describe_failure(s, rc, &code, msg, sizeof(msg));
        s->state = TLS_STATE_FAILED;
    }
    duk_push_array(ctx);
    duk_push_int(ctx, s->state);
    duk_put_prop_index(ctx, -2, 0);
    if (plain.len > 0) {
        void *p = duk_push_fixed_buffer(ctx, plain.len);
        memcpy(p, plain.p, plain.len);
        duk_push_buffer_object(ctx, -1, 0, plain.len, DUK_BUFOBJ_UINT8ARRAY);
        duk_remove(ctx, -2);
    } else {
        duk_push_null(ctx);
    }
    buf_free(&plain);
    duk_put_prop_index(ctx, -2, 1);
    push_out(ctx, s);
    duk_put_prop_index(ctx, -2, 2);
    if (code != NULL) {
        duk_push_string(ctx, code);
        duk_put_prop_index(ctx, -2, 3);
        duk_push_string(ctx, msg);
        duk_put_prop_index(ctx, -2, 4);
    }
    return 1;
}

/* tlsWrite(session, bytes) -> ciphertext. Only once the handshake is done. */
static duk_ret_t n_tls_write(duk_context *ctx) {
    tls_session *s = get_ptr(ctx, 0, "session");
    duk_size_t n, done = 0;
    const uint8_t *p = duk_require_buffer_data(ctx, 1, &n);
    if (s->state != TLS_STATE_OPEN) return duk_error(ctx, DUK_ERR_ERROR, "tlsWrite: the session is not open");
    while (done < n) {
        int rc = mbedtls_ssl_write(&s->ssl, p + done, n - done);
        if (rc < 0) return throw_tls(ctx, "E_TLS_PROTOCOL", "TLS write", rc);
        done += (duk_size_t)rc;
    }
    push_out(ctx, s);
    return 1;
}

/* tlsEnd(session) -> the close_notify alert to send (null when there is nothing to say). */
static duk_ret_t n_tls_end(duk_context *ctx) {
    tls_session *s = get_ptr(ctx, 0, "session");
    if (s->state == TLS_STATE_OPEN || s->state == TLS_STATE_CLOSED) (void)mbedtls_ssl_close_notify(&s->ssl);
    push_out(ctx, s);
    return 1;
}

static const duk_function_list_entry tls_functions[] = {
    { "tlsConfig", n_tls_config, 4 },
    { "tlsSession", n_tls_session, 2 },
    { "tlsPush", n_tls_push, 2 },
    { "tlsWrite", n_tls_write, 2 },
    { "tlsEnd", n_tls_end, 1 },
    { NULL, NULL, 0 }
};

/* Adds the tls* functions to the object on top of the stack (signet_native.uv). */
void signet_register_tls(duk_context *ctx) {
    duk_put_function_list(ctx, -1, tls_functions);
}
