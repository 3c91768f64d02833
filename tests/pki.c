/* SPDX-License-Identifier: MIT */
#include "config.h"

#include "pki.h"

#ifdef HAVE_OPENSSL

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "harness.h"

bool pki_available(void)
{
	return true;
}

static EVP_PKEY *new_key(void)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_EC, NULL);
	EVP_PKEY *k = NULL;

	ck_assert(ctx != NULL);
	ck_assert(EVP_PKEY_keygen_init(ctx) > 0);
	ck_assert(EVP_PKEY_CTX_set_ec_paramgen_curve_nid(ctx, NID_X9_62_prime256v1) > 0);
	ck_assert_msg(EVP_PKEY_keygen(ctx, &k) > 0, "cannot make a key");
	EVP_PKEY_CTX_free(ctx);
	return k;
}

static void add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	ck_assert_msg(ext != NULL, "extension %s", value);
	X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
}

/* A certificate for key, named cn, valid from `from` to `to` seconds from
 * now, issued by issuer (signed with issuer_key), or self-signed. */
static X509 *new_cert(EVP_PKEY *key, const char *cn, const char *org, long from, long to,
		      X509 *issuer, EVP_PKEY *issuer_key, const char *san, bool ca)
{
	static long serial = 1;
	X509 *cert = X509_new();
	X509_NAME *name = X509_get_subject_name(cert);

	X509_set_version(cert, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(cert), serial++ + (long)getpid() * 100);
	X509_gmtime_adj(X509_getm_notBefore(cert), from);
	X509_gmtime_adj(X509_getm_notAfter(cert), to);
	X509_set_pubkey(cert, key);
	X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)org, -1, -1, 0);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(cert, issuer ? X509_get_subject_name(issuer) : name);
	add_ext(cert, issuer ? issuer : cert, NID_basic_constraints,
		ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
	add_ext(cert, issuer ? issuer : cert, NID_key_usage,
		ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
	add_ext(cert, issuer ? issuer : cert, NID_subject_key_identifier, "hash");
	if (issuer)
		add_ext(cert, issuer, NID_authority_key_identifier, "keyid:always");
	if (san)
		add_ext(cert, issuer ? issuer : cert, NID_subject_alt_name, san);
	ck_assert(X509_sign(cert, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
	return cert;
}

static void save(const char *path, X509 *cert, const char *key_path, EVP_PKEY *key)
{
	FILE *f = fopen(path, "w");

	ck_assert_msg(f != NULL, "cannot write %s", path);
	ck_assert(PEM_write_X509(f, cert));
	fclose(f);
	if (key_path) {
		f = fopen(key_path, "w");
		ck_assert_msg(f != NULL, "cannot write %s", key_path);
		ck_assert(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL));
		fclose(f);
	}
}

static struct pki pki;
static pid_t pki_owner;

static void pki_remove(void)
{
	const char *files[] = { pki.ca, pki.server, pki.server_key, pki.client, pki.client_key,
				pki.expired, pki.expired_key, pki.rogue_ca, pki.rogue,
				pki.rogue_key };

	if (getpid() != pki_owner)
		return;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		unlink(files[i]);
	rmdir(pki.dir);
}

#define SERVER_SAN "DNS:localhost,IP:127.0.0.1,IP:::1"
#define DAY (24L * 3600)

const struct pki *pki_get(void)
{
	EVP_PKEY *ca_key, *server_key, *client_key, *expired_key, *rogue_ca_key, *rogue_key;
	X509 *ca, *server, *client, *expired, *rogue_ca, *rogue;

	if (pki_owner == getpid())
		return &pki;
	strcpy(pki.dir, "/tmp/pier-pki-XXXXXX");
	ck_assert_msg(mkdtemp(pki.dir) != NULL, "mkdtemp");
	pki_owner = getpid();
	atexit(pki_remove);
#define PATH(field, name) snprintf(pki.field, sizeof(pki.field), "%s/" name, pki.dir)
	PATH(ca, "ca.pem");
	PATH(server, "server.pem");
	PATH(server_key, "server.key");
	PATH(client, "client.pem");
	PATH(client_key, "client.key");
	PATH(expired, "expired.pem");
	PATH(expired_key, "expired.key");
	PATH(rogue_ca, "rogue-ca.pem");
	PATH(rogue, "rogue.pem");
	PATH(rogue_key, "rogue.key");
#undef PATH
	ca_key = new_key();
	ca = new_cert(ca_key, "pier test CA", "pier", -DAY, DAY, NULL, NULL, NULL, true);
	server_key = new_key();
	server = new_cert(server_key, "localhost", "pier", -DAY, DAY, ca, ca_key, SERVER_SAN,
			  false);
	client_key = new_key();
	client = new_cert(client_key, "pier test client", "pier", -DAY, DAY, ca, ca_key,
			  NULL, false);
	expired_key = new_key();
	expired = new_cert(expired_key, "localhost", "pier", -3 * DAY, -DAY, ca, ca_key,
			   SERVER_SAN, false);
	rogue_ca_key = new_key();
	rogue_ca = new_cert(rogue_ca_key, "pier test CA", "rogue", -DAY, DAY, NULL, NULL, NULL,
			    true);
	rogue_key = new_key();
	rogue = new_cert(rogue_key, "localhost", "rogue", -DAY, DAY, rogue_ca, rogue_ca_key,
			 SERVER_SAN, false);
	save(pki.ca, ca, NULL, NULL);
	save(pki.server, server, pki.server_key, server_key);
	save(pki.client, client, pki.client_key, client_key);
	save(pki.expired, expired, pki.expired_key, expired_key);
	save(pki.rogue_ca, rogue_ca, NULL, NULL);
	save(pki.rogue, rogue, pki.rogue_key, rogue_key);
	X509_free(ca);
	X509_free(server);
	X509_free(client);
	X509_free(expired);
	X509_free(rogue_ca);
	X509_free(rogue);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(server_key);
	EVP_PKEY_free(client_key);
	EVP_PKEY_free(expired_key);
	EVP_PKEY_free(rogue_ca_key);
	EVP_PKEY_free(rogue_key);
	return &pki;
}

#else /* !HAVE_OPENSSL */

bool pki_available(void)
{
	return false;
}

#endif
