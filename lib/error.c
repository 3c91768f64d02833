/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <string.h>

#include <pier.h>

#include "private.h"

static const char *const pier_messages[] = {
	[PIER_ESHORTFRAME - PIER_ESHORTFRAME] =
		"Frame shorter than the 12-byte message header",
	[PIER_EBADTYPE - PIER_ESHORTFRAME] = "Unknown message type",
	[PIER_EBODYLIMIT - PIER_ESHORTFRAME] =
		"Message body larger than the read limit",
	[PIER_EPARTIAL - PIER_ESHORTFRAME] =
		"Connection ended in the middle of a frame",
	[PIER_EFDLIMIT - PIER_ESHORTFRAME] =
		"Too many file descriptors in one message",
	[PIER_EFDTRUNC - PIER_ESHORTFRAME] =
		"File descriptors were lost in transit",
	[PIER_ECLOSED - PIER_ESHORTFRAME] = "Connection closed by the remote peer",
	[PIER_ESHUTDOWN - PIER_ESHORTFRAME] = "Connection closed locally",
	[PIER_EABORTED - PIER_ESHORTFRAME] = "Connection aborted locally",
	[PIER_ENOFDS - PIER_ESHORTFRAME] =
		"Transport cannot carry file descriptors",
	[PIER_ERESPONSE - PIER_ESHORTFRAME] = "No more updates: the response is next",
	[PIER_EUPDATE - PIER_ESHORTFRAME] = "An update comes before the response",
	[PIER_EDONE - PIER_ESHORTFRAME] = "The request is finished",
	[PIER_EREQLIMIT - PIER_ESHORTFRAME] = "Too many open requests",
	[PIER_ETLSUNAVAILABLE - PIER_ESHORTFRAME] =
		"TLS is not available: the library was built without OpenSSL",
	[PIER_ETLS - PIER_ESHORTFRAME] = "TLS protocol failure",
	[PIER_ENOTLS - PIER_ESHORTFRAME] = "The remote does not speak TLS",
	[PIER_ETLSTRUNCATED - PIER_ESHORTFRAME] =
		"TLS stream ended without close_notify (possibly cut short)",
	[PIER_ECERTUNTRUSTED - PIER_ESHORTFRAME] =
		"Certificate not issued by a trusted CA",
	[PIER_ECERTNAME - PIER_ESHORTFRAME] =
		"Certificate does not match the host name or address",
	[PIER_ECERTEXPIRED - PIER_ESHORTFRAME] =
		"Certificate expired or not yet valid",
	[PIER_ECERTINVALID - PIER_ESHORTFRAME] = "Certificate failed verification",
	[PIER_ECERTREQUIRED - PIER_ESHORTFRAME] =
		"The remote requires a certificate and none was sent",
	[PIER_ECERTREFUSED - PIER_ESHORTFRAME] = "The remote refused the certificate sent",
	[PIER_ECERTFILE - PIER_ESHORTFRAME] =
		"The file holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
	[PIER_EKEYFILE - PIER_ESHORTFRAME] =
		"The file holds no unencrypted PEM private key",
	[PIER_EKEYMISMATCH - PIER_ESHORTFRAME] =
		"The private key does not belong to the certificate",
	[PIER_ENOCERT - PIER_ESHORTFRAME] =
		"A TLS listener needs a certificate and key (pier_config_set_tls_cert)",
	[PIER_EHOSTNOTFOUND - PIER_ESHORTFRAME] =
		"Host name not found (check its spelling, or use an IP address)",
	[PIER_ERESOLVER - PIER_ESHORTFRAME] =
		"Host name lookup failed: the name server did not answer (try again later)",
	[PIER_EIDLE - PIER_ESHORTFRAME] =
		"Nothing received within the idle timeout (pier_config_set_idle_timeout)",
	[PIER_EREMOTE - PIER_ESHORTFRAME] = "The remote answered with an error response",
};

_Static_assert(PIER_ARRAY_SIZE(pier_messages) == PIER_ERROR_END_ - PIER_ESHORTFRAME,
	       "every pier error code needs a message");

PIER_EXPORT const char *pier_strerror(int err)
{
	/* The magnitude, computed without overflowing on INT_MIN. */
	unsigned int code = err < 0 ? 0u - (unsigned int)err : (unsigned int)err;
	const char *s = NULL;

	if (code == 0)
		return "Success";
	if (code >= PIER_ESHORTFRAME && code < PIER_ERROR_END_)
		return pier_messages[code - PIER_ESHORTFRAME];
	/* The C library's text for this one speaks of splice(). */
	if (code == ETOOMANYREFS)
		return "Too many file descriptors in flight on Unix sockets for this user "
		       "(RLIMIT_NOFILE): the remote has not read them yet";
	if (code < PIER_ESHORTFRAME) {
#ifdef HAVE_STRERRORDESC_NP
		/* glibc: a static string, where strerror() may fill a buffer. */
		s = strerrordesc_np((int)code);
#else
		s = strerror((int)code);
#endif
	}
	return s ? s : "Unknown error";
}
