/* SPDX-License-Identifier: MIT */
/*
 * Certificates for the TLS tests, made at run time with OpenSSL (once per
 * test process, in a temporary directory removed at exit): a test CA, a
 * server certificate for localhost, 127.0.0.1 and ::1, a client
 * certificate, an expired server certificate, and a second CA nobody
 * trusts with a server certificate of its own.  The keys exist only for the
 * duration of a test run.
 */
#ifndef PIER_TEST_PKI_H
#define PIER_TEST_PKI_H

#include <stdbool.h>

struct pki {
	char dir[64];
	char ca[96];                   /* the test CA's certificate */
	char server[96], server_key[96];
	char client[96], client_key[96]; /* subject CN=pier test client,O=pier */
	char expired[96], expired_key[96];
	char rogue_ca[96];             /* a CA no test config trusts */
	char rogue[96], rogue_key[96]; /* localhost, issued by the rogue CA */
};

/* The test PKI (made on first use; the test fails if it cannot be). */
const struct pki *pki_get(void);

/* Whether this build has TLS. */
bool pki_available(void);

#endif
