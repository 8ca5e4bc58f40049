/*
 * mbed TLS 2.28 configuration for the device's signet-host (arm64, armhf): only what
 * tls.c (TLS 1.2 client and server with the six ECDHE AEAD suites in its list, X.509
 * chains in PEM) and host.c (mbedtls_rsa_pkcs1_verify of the FIT signature) call.
 * Everything not named here is off: no DES, Camellia, ARIA, ARC4, Blowfish, CCM, CBC or
 * other cipher modes, MD5/SHA-1/RIPEMD, DTLS, TLS < 1.2, session tickets, renegotiation,
 * SSL cache/cookies, net sockets, file I/O, entropy/DRBG modules (tls.c passes
 * getrandom(2) as the RNG), PSA crypto, self tests, debug. Used with
 * -DMBEDTLS_CONFIG_FILE="mbedtls-config.h" when building mbed TLS and everything
 * that includes its headers (bootloader/native/build.ts).
 */
#ifndef SIGNET_MBEDTLS_CONFIG_H
#define SIGNET_MBEDTLS_CONFIG_H

/* System support */
#define MBEDTLS_HAVE_ASM            /* bignum inline assembly: RSA/ECP speed (TCG runs every instruction) */
#define MBEDTLS_HAVE_TIME           /* time() for the TLS handshake's timestamps */
#define MBEDTLS_HAVE_TIME_DATE      /* gmtime_r: certificate validity (tls.c reports EXPIRED/FUTURE) */
#define MBEDTLS_NO_PLATFORM_ENTROPY /* no entropy module: the RNG is tls.c's getrandom(2) callback */

/* Key exchanges: exactly those of tls.c's six suites */
#define MBEDTLS_KEY_EXCHANGE_ECDHE_ECDSA_ENABLED /* TLS-ECDHE-ECDSA-WITH-{AES-*-GCM,CHACHA20-POLY1305} */
#define MBEDTLS_KEY_EXCHANGE_ECDHE_RSA_ENABLED   /* TLS-ECDHE-RSA-WITH-{AES-*-GCM,CHACHA20-POLY1305}: the RSA device/server certificates */

/* Curves: ECDHE groups and ECDSA certificate keys */
#define MBEDTLS_ECP_DP_SECP256R1_ENABLED  /* P-256: the group every client offers; ECDSA P-256 keys */
#define MBEDTLS_ECP_DP_SECP384R1_ENABLED  /* P-384: ECDSA P-384 keys (the AES-256 suites' usual pairing) */
#define MBEDTLS_ECP_DP_CURVE25519_ENABLED /* X25519: the first group curl/Node offer, the cheapest ECDHE */
#define MBEDTLS_ECP_NIST_OPTIM            /* fast reduction for the NIST curves: handshake time under TCG */

/* Signatures */
#define MBEDTLS_PKCS1_V15 /* RSA PKCS#1 v1.5: certificate signatures, ECDHE-RSA, host.c's FIT verify */

/* TLS */
#define MBEDTLS_SSL_PROTO_TLS1_2           /* TLS 1.2 only (tls.c sets min = max = 3.3) */
#define MBEDTLS_SSL_CLI_C                  /* the agent's HTTPS client */
#define MBEDTLS_SSL_SRV_C                  /* the router admin's HTTPS server */
#define MBEDTLS_SSL_TLS_C                  /* the record layer both need */
#define MBEDTLS_SSL_EXTENDED_MASTER_SECRET /* RFC 7627: binds the master secret to the handshake */
#define MBEDTLS_SSL_SERVER_NAME_INDICATION /* SNI from mbedtls_ssl_set_hostname (virtual-hosted servers) */
#define MBEDTLS_SSL_ALL_ALERT_MESSAGES     /* send the peer the reason for a failed handshake */

/* Symmetric crypto for the suites */
#define MBEDTLS_CIPHER_C     /* the cipher layer the record layer uses */
#define MBEDTLS_AES_C        /* AES-128/256 */
#define MBEDTLS_GCM_C        /* AES-GCM */
#define MBEDTLS_CHACHA20_C   /* ChaCha20 */
#define MBEDTLS_POLY1305_C   /* Poly1305 */
#define MBEDTLS_CHACHAPOLY_C /* ChaCha20-Poly1305 AEAD */

/* Hashes */
#define MBEDTLS_MD_C     /* the message-digest layer (PRF, signatures, host.c's RSA verify) */
#define MBEDTLS_SHA256_C /* SHA-256: the PRF of the *_SHA256 suites, certificate signatures */
#define MBEDTLS_SHA512_C /* SHA-384 (the *_SHA384 suites' PRF) and SHA-512 signatures */
#define MBEDTLS_HMAC_DRBG_C /* ECP's internal RNG: blinds point multiplications a caller gives no RNG (check_config requires a DRBG) */

/* Public keys */
#define MBEDTLS_BIGNUM_C /* multi-precision integers for RSA and ECP */
#define MBEDTLS_RSA_C    /* RSA keys and signatures */
#define MBEDTLS_ECP_C    /* elliptic curves */
#define MBEDTLS_ECDH_C   /* ECDHE key exchange */
#define MBEDTLS_ECDSA_C  /* ECDSA signatures (ECDHE-ECDSA) */
#define MBEDTLS_PK_C     /* the public-key layer TLS and X.509 use */
#define MBEDTLS_PK_PARSE_C /* mbedtls_pk_parse_key: the own key given to tls.c */

/* Certificates */
#define MBEDTLS_ASN1_PARSE_C      /* DER parsing */
#define MBEDTLS_ASN1_WRITE_C      /* DER-encoded ECDSA signatures */
#define MBEDTLS_OID_C             /* algorithm and extension OIDs */
#define MBEDTLS_X509_USE_C        /* common X.509 code */
#define MBEDTLS_X509_CRT_PARSE_C  /* mbedtls_x509_crt_parse and chain verification */
#define MBEDTLS_X509_CHECK_KEY_USAGE          /* honour keyUsage when verifying */
#define MBEDTLS_X509_CHECK_EXTENDED_KEY_USAGE /* honour extendedKeyUsage (serverAuth/clientAuth) */
#define MBEDTLS_PEM_PARSE_C       /* certificates and keys come in PEM */
#define MBEDTLS_BASE64_C          /* PEM's base64 */

/* Diagnostics */
#define MBEDTLS_ERROR_C /* mbedtls_strerror: tls.c's error messages name the cause */

#include "mbedtls/check_config.h"

#endif
