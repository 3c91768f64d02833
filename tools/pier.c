/* SPDX-License-Identifier: MIT */
/*
 * pier: poke at any Fizyr RPC peer.  Send requests and stream messages,
 * listen to what peers send, and serve or drive the conformance services.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pier/typed.h>

#include "broker.h"
#include "tool.h"

#define MAX_FDS 253
#define MAX_UPDATES 256

/* --- shared helpers ------------------------------------------------------ */

/* What to do about a TLS file the library refused. */
static const char *tls_file_hint(int err)
{
	switch (err) {
	case -PIER_ECERTFILE:
		return ": give the certificate in PEM (openssl x509 -inform der -in FILE "
		       "converts a DER one)";
	case -PIER_EKEYFILE:
		return ": give the key in PEM, unencrypted (openssl pkey -in FILE decrypts "
		       "one)";
	default:
		return "";
	}
}

/* Says which TLS file is wrong and how, then exits. */
static void tls_file_fail(const struct tool_opts *o, bool ca, int err)
{
	if (err == -PIER_EKEYMISMATCH) {
		fprintf(stderr, "pier: --key %s, --cert %s: %s: give the key the certificate was "
				"made for\n", o->key, o->cert, pier_strerror(err));
	} else {
		/* A file that cannot be read is the certificate or the key:
		 * the first that cannot be. */
		bool key = !ca && (err == -PIER_EKEYFILE ||
				   (err != -PIER_ECERTFILE && access(o->cert, R_OK) == 0));

		fprintf(stderr, "pier: %s %s: %s%s\n", ca ? "--ca" : key ? "--key" : "--cert",
			ca ? o->ca : key ? o->key : o->cert, pier_strerror(err), tls_file_hint(err));
	}
	exit(EXIT_USAGE);
}

pier_config *tool_config(const struct tool_opts *o)
{
	pier_config *cfg;
	int r = pier_config_new(&cfg);

	if (r == 0)
		r = pier_config_set_byte_order(cfg, o->order);
	if (r == 0 && o->max_body)
		r = pier_config_set_max_body(cfg, o->max_body, o->max_body);
	/* -1 too: a listener's own default handshake deadline is shorter. */
	if (r == 0)
		r = pier_config_set_connect_timeout(cfg, o->timeout_ms);
	if (r == 0 && o->ca && (r = pier_config_set_tls_ca(cfg, o->ca, NULL)) < 0 &&
	    r != -PIER_ETLSUNAVAILABLE)
		tls_file_fail(o, true, r);
	if (r == 0 && o->cert && o->key && (r = pier_config_set_tls_cert(cfg, o->cert, o->key)) < 0 &&
	    r != -PIER_ETLSUNAVAILABLE)
		tls_file_fail(o, false, r);
	if (r == 0 && !o->cert != !o->key)
		r = -EINVAL;
	if (r == 0 && o->server_name)
		r = pier_config_set_tls_server_name(cfg, o->server_name);
	if (r == 0 && o->client_auth != PIER_TLS_CLIENT_CERT_NONE)
		r = pier_config_set_tls_client_auth(cfg, o->client_auth);
	if (r == -EINVAL && !o->cert != !o->key) {
		fputs("pier: --cert and --key go together\n", stderr);
		exit(EXIT_USAGE);
	}
	if (r < 0) {
		fprintf(stderr, "pier: configuration: %s\n", pier_strerror(r));
		exit(EXIT_USAGE);
	}
	return cfg;
}

/* The address as a person should read it in an error: a relative Unix
 * socket path made absolute, as the library resolves it. */
static const char *shown_address(const char *address, char *buf, size_t len)
{
	const char *sep = strstr(address, "://"), *path;
	char cwd[PATH_MAX];

	if (!sep || (strncmp(address, "unix:", 5) != 0 && strncmp(address, "seqpacket:", 10) != 0))
		return address;
	path = sep + 3;
	if (*path == '/' || *path == '@' || *path == '\0' || !getcwd(cwd, sizeof(cwd)))
		return address;
	snprintf(buf, len, "%.*s%s/%s", (int)(path - address), address, cwd, path);
	return buf;
}

int tool_fail(const char *what, int err)
{
	fprintf(stderr, "pier: %s: %s\n", what, pier_strerror(err));
	return EXIT_FAILURE_IO;
}

/* Whether a tcp:// or tls:// address has a port that is no port: not
 * decimal, or out of range (0 only for listening); then says so. */
static bool bad_port(const char *address, bool listening)
{
	const char *colon, *p;
	unsigned long port;
	char *end;

	if (strncmp(address, "tcp://", 6) != 0 && strncmp(address, "tls://", 6) != 0)
		return false;
	colon = strrchr(address + 6, ':');
	if (!colon || strchr(colon, ']'))
		return false; /* no port at all, or an IPv6 address without one */
	p = colon + 1;
	port = strtoul(p, &end, 10);
	if (*p >= '0' && *p <= '9' && *end == '\0' && port <= 65535 && (port > 0 || listening))
		return false;
	fprintf(stderr, "pier: %s: the port must be a decimal number from %d to 65535, not "
			"'%s'\n", address, listening ? 0 : 1, p);
	return true;
}

int tool_fail_listen(const char *address, int err)
{
	if (err == -PIER_ENOCERT) {
		fprintf(stderr, "pier: %s: a TLS listener needs a certificate and its key: give "
				"--cert FILE --key FILE\n", address);
		return EXIT_USAGE;
	}
	if (err == -EINVAL && bad_port(address, true))
		return EXIT_USAGE;
	if (err == -EINVAL || err == -EPROTONOSUPPORT) {
		fprintf(stderr, "pier: %s is not an address to listen on: use tcp://HOST:PORT "
				"(tcp://[::]:PORT for IPv6), tls://HOST:PORT, unix:///PATH or "
				"seqpacket:///PATH\n", address);
		return EXIT_USAGE;
	}
	return tool_fail(address, err);
}

void tool_print_body(FILE *f, const void *body, size_t len, bool hex)
{
	const unsigned char *b = body;

	for (size_t i = 0; i < len; i++) {
		if (hex)
			fprintf(f, "%s%02x", i ? " " : "", b[i]);
		else if (b[i] == '\\')
			fputs("\\\\", f);
		else if (b[i] >= 0x20 && b[i] < 0x7f)
			fputc(b[i], f);
		else if (b[i] == '\n')
			fputs("\\n", f);
		else
			fprintf(f, "\\x%02x", b[i]);
	}
}

int tool_read_file(const char *path, char **buf, size_t *len)
{
	int fd = strcmp(path, "-") == 0 ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
	size_t cap = 4096, n = 0;
	char *b;

	if (fd < 0)
		return -errno;
	b = malloc(cap);
	for (;;) {
		ssize_t r;

		if (!b) {
			n = 0;
			break;
		}
		if (n == cap) {
			char *nb = realloc(b, cap *= 2);

			if (!nb) {
				free(b);
				b = NULL;
				continue;
			}
			b = nb;
		}
		r = read(fd, b + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = -errno;

			free(b);
			if (fd != STDIN_FILENO)
				close(fd);
			return e;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (fd != STDIN_FILENO)
		close(fd);
	if (!b)
		return -ENOMEM;
	*buf = b;
	*len = n;
	return 0;
}

bool tool_parse_i32(const char *s, int32_t *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 0);
	if (errno || end == s || *end || v < INT32_MIN || v > INT32_MAX)
		return false;
	*out = (int32_t)v;
	return true;
}

/* A positive count for option name; exits if arg is not one. */
static unsigned int count_arg(const char *name, const char *arg)
{
	int32_t v;

	if (!tool_parse_i32(arg, &v) || v <= 0) {
		fprintf(stderr, "pier: %s takes a positive number, not %s\n", name, arg);
		exit(EXIT_USAGE);
	}
	return (unsigned int)v;
}

/* One line per message: "[PREFIX]TYPE [id N ]service S: BODY [(+N fds)]",
 * or "[PREFIX]error response: TEXT". */
static void print_msg(const char *prefix, const pier_msg *m, bool with_id, bool hex)
{
	const struct pier_header *h = pier_msg_header(m);
	size_t len;
	const void *body = pier_msg_body(m, &len);

	if (pier_msg_is_error(m))
		printf("%serror response: ", prefix);
	else if (with_id && h->type != PIER_MSG_STREAM)
		printf("%s%s id %u service %d: ", prefix, pier_msg_type_name(h->type),
		       h->request_id, h->service_id);
	else
		printf("%s%s service %d: ", prefix, pier_msg_type_name(h->type), h->service_id);
	tool_print_body(stdout, body, len, hex);
	if (pier_msg_fd_count(m))
		printf(" (+%zu fds)", pier_msg_fd_count(m));
	putchar('\n');
	fflush(stdout);
}

/* --- option parsing ------------------------------------------------------ */

/* Long-only options. */
enum { OPT_CA = 256, OPT_CERT, OPT_KEY, OPT_SERVER_NAME, OPT_CLIENT_CERT, OPT_DESCRIBE_SERVICE };

#define COMMON_SHORT "t:e:m:xh"
#define COMMON_LONG                                                   \
	{ "timeout", required_argument, NULL, 't' },                  \
	{ "byte-order", required_argument, NULL, 'e' },               \
	{ "max-body", required_argument, NULL, 'm' },                 \
	{ "hex", no_argument, NULL, 'x' },                            \
	{ "ca", required_argument, NULL, OPT_CA },                    \
	{ "cert", required_argument, NULL, OPT_CERT },                \
	{ "key", required_argument, NULL, OPT_KEY },                  \
	{ "server-name", required_argument, NULL, OPT_SERVER_NAME },  \
	{ "client-cert", required_argument, NULL, OPT_CLIENT_CERT },  \
	{ "help", no_argument, NULL, 'h' }

/* The options every command takes (its usage tells what -t means for it). */
static const char common_help[] =
	"  -e, --byte-order ORDER little (default), big or native\n"
	"  -m, --max-body BYTES   largest body to send and receive (default 1 MiB,\n"
	"                         128 KiB on seqpacket://); give both sides the same\n";

static const char hex_help[] = "  -x, --hex              print bodies as hex bytes\n";

static const char help_help[] = "  -h, --help             this help\n";

static const char client_tls_help[] =
	"TLS (tls://HOST:PORT addresses):\n"
	"  --ca FILE              trust the CA certificates in FILE (PEM; default: the\n"
	"                         system's store)\n"
	"  --server-name NAME     check the server's certificate against NAME instead\n"
	"                         of the address's host\n"
	"  --cert FILE --key FILE a client certificate and its key (PEM), for a\n"
	"                         listener that asks for one\n";

static const char listener_tls_help[] =
	"TLS (tls://HOST:PORT addresses):\n"
	"  --cert FILE --key FILE the listener's certificate and key (PEM; required)\n"
	"  --client-cert MODE     ask clients for a certificate: none (default),\n"
	"                         optional or required\n"
	"  --ca FILE              trust the CA certificates in FILE (PEM) to verify\n"
	"                         client certificates (default: the system's store)\n";

static void print_help(const struct tool_cmd *cmd)
{
	fputs(cmd->usage, stdout);
	fputs(common_help, stdout);
	if (cmd->opts & CMD_PRINTS)
		fputs(hex_help, stdout);
	fputs(help_help, stdout);
	fputs(cmd->opts & CMD_LISTENER ? listener_tls_help : client_tls_help, stdout);
}

/* Exits when option c (a common one) does not apply to cmd. */
static void check_applies(int c, const struct tool_cmd *cmd)
{
	const char *name = c == 'x'		  ? "-x" :
			   c == OPT_SERVER_NAME	  ? "--server-name" :
			   c == OPT_CLIENT_CERT	  ? "--client-cert" : NULL;
	bool applies = c == 'x'		      ? cmd->opts & CMD_PRINTS :
		       c == OPT_SERVER_NAME   ? !(cmd->opts & CMD_LISTENER) :
		       c == OPT_CLIENT_CERT   ? cmd->opts & CMD_LISTENER : true;

	if (!applies) {
		fprintf(stderr, "%s: %s does not apply here (see '%s --help')\n", cmd->name, name,
			cmd->name);
		exit(EXIT_USAGE);
	}
}

/* Handles a common option; returns false if c is not one. */
static bool common_option(int c, struct tool_opts *o, const struct tool_cmd *cmd)
{
	int32_t v;

	check_applies(c, cmd);
	switch (c) {
	case 't':
		if (!tool_parse_i32(optarg, &v) || v < -1) {
			fprintf(stderr, "pier: -t takes milliseconds, or -1 to wait for ever, not %s\n",
				optarg);
			exit(EXIT_USAGE);
		}
		if (v == 0) {
			/* Nothing can arrive in no time at all. */
			fprintf(stderr, "pier: -t 0 would not wait for anything: give milliseconds, "
					"or -1 to wait for ever\n");
			exit(EXIT_USAGE);
		}
		o->timeout_ms = v;
		return true;
	case 'e':
		if (strcmp(optarg, "little") == 0)
			o->order = PIER_BYTE_ORDER_LITTLE;
		else if (strcmp(optarg, "big") == 0)
			o->order = PIER_BYTE_ORDER_BIG;
		else if (strcmp(optarg, "native") == 0)
			o->order = PIER_BYTE_ORDER_NATIVE;
		else {
			fprintf(stderr, "pier: byte order is little, big or native, not %s\n", optarg);
			exit(EXIT_USAGE);
		}
		return true;
	case 'm':
		o->max_body = count_arg("-m", optarg);
		return true;
	case 'x':
		o->hex = true;
		return true;
	case OPT_CA:
		o->ca = optarg;
		return true;
	case OPT_CERT:
		o->cert = optarg;
		return true;
	case OPT_KEY:
		o->key = optarg;
		return true;
	case OPT_SERVER_NAME:
		o->server_name = optarg;
		return true;
	case OPT_CLIENT_CERT:
		if (strcmp(optarg, "none") == 0)
			o->client_auth = PIER_TLS_CLIENT_CERT_NONE;
		else if (strcmp(optarg, "optional") == 0)
			o->client_auth = PIER_TLS_CLIENT_CERT_OPTIONAL;
		else if (strcmp(optarg, "required") == 0)
			o->client_auth = PIER_TLS_CLIENT_CERT_REQUIRED;
		else {
			fprintf(stderr, "pier: --client-cert is none, optional or required, not %s\n",
				optarg);
			exit(EXIT_USAGE);
		}
		return true;
	case 'h':
		print_help(cmd);
		exit(EXIT_OK);
	default:
		return false;
	}
}

static void usage_error(const struct tool_cmd *cmd)
{
	fputs(cmd->usage, stderr);
	fprintf(stderr, "Try '%s --help'.\n", cmd->name);
	exit(EXIT_USAGE);
}

int tool_parse_args(int argc, char **argv, const struct tool_cmd *cmd, struct tool_opts *o)
{
	static const struct option longopts[] = { COMMON_LONG, { 0 } };
	int c;

	while ((c = getopt_long(argc, argv, "+" COMMON_SHORT, longopts, NULL)) != -1)
		if (!common_option(c, o, cmd))
			usage_error(cmd);
	return optind;
}

void tool_check_args(int argc, char **argv, int first, int max, const struct tool_cmd *cmd)
{
	const char *missing = cmd->args;
	int given = argc - first, len;

	/* Skip the names of the arguments given. */
	for (int i = 0; i < given && missing; i++)
		if ((missing = strchr(missing, ' ')))
			missing++;
	if (given > max) {
		fprintf(stderr, "%s: '%s' is one argument too many: it takes %s%s\n", cmd->name,
			argv[first + max], cmd->args,
			strstr(cmd->args, "BODY") ? " (quote a body that has spaces)" : "");
		exit(EXIT_USAGE);
	}
	if (missing && *missing != '[') {
		/* The names of the required ones only. */
		len = strstr(missing, " [") ? (int)(strstr(missing, " [") - missing) :
					      (int)strlen(missing);
		fprintf(stderr, "%s: missing %.*s (%s %s; see '%s --help')\n", cmd->name, len,
			missing, cmd->name, cmd->args, cmd->name);
		exit(EXIT_USAGE);
	}
}

/* --- pier call / pier send ----------------------------------------------- */

struct payload {
	char *body;
	size_t len;
	bool allocated;
	int fds[MAX_FDS];
	size_t nfds;
};

static void payload_free(struct payload *p)
{
	if (p->allocated)
		free(p->body);
	for (size_t i = 0; i < p->nfds; i++)
		close(p->fds[i]);
}

static int add_fd(struct payload *p, const char *path)
{
	int fd;

	if (p->nfds == MAX_FDS) {
		fprintf(stderr, "pier: at most %d fds per message\n", MAX_FDS);
		return EXIT_USAGE;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "pier: %s: %s\n", path, strerror(errno));
		return EXIT_USAGE;
	}
	p->fds[p->nfds++] = fd;
	return 0;
}

static int set_body(struct payload *p, const char *file, char **positional, int n)
{
	int r;

	if (file && n > 0) {
		fprintf(stderr, "pier: give the body as an argument or a file, not both\n");
		return EXIT_USAGE;
	}
	if (file) {
		r = tool_read_file(file, &p->body, &p->len);
		if (r < 0) {
			fprintf(stderr, "pier: %s: %s\n", file, pier_strerror(r));
			return EXIT_USAGE;
		}
		p->allocated = true;
	} else if (n > 0) {
		p->body = positional[0];
		p->len = strlen(p->body);
	}
	return 0;
}

struct update {
	int32_t service;
	const char *text;
};

static int connect_peer(const char *address, const struct tool_opts *o, pier_peer **peer)
{
	pier_config *cfg = tool_config(o);
	int r = pier_peer_connect(peer, address, cfg);

	pier_config_free(cfg);
	if (r == -EINVAL && bad_port(address, false))
		return EXIT_USAGE;
	if (r == -EINVAL || r == -EPROTONOSUPPORT) {
		fprintf(stderr, "pier: %s is not an address: use tcp://HOST:PORT (tcp://[::1]:PORT "
				"for IPv6), tls://HOST:PORT, unix:///PATH or seqpacket:///PATH\n",
			address);
		return EXIT_USAGE;
	}
	if (r < 0) {
		char what[PATH_MAX + 300], buf[PATH_MAX + 200];

		snprintf(what, sizeof(what), "cannot connect to %s",
			 shown_address(address, buf, sizeof(buf)));
		return tool_fail(what, r);
	}
	return 0;
}

static const struct tool_cmd call_cmd = {
	"pier call", "ADDRESS SERVICE [BODY]",
	"Usage: pier call [OPTIONS] ADDRESS SERVICE [BODY]\n"
	"Send a request to service id SERVICE (an integer); print each update as it\n"
	"arrives, then the response.\n"
	"Exits 1 on an error response, 3 when the connection fails or times out.\n"
	"  -b, --body-file FILE   the body is FILE's content ('-': standard input)\n"
	"  -u, --update SVC:TEXT  send a requester update after the request (repeatable)\n"
	"  -U, --updates-stdin SVC send each line of standard input as an update\n"
	"  -f, --fd FILE          attach FILE, opened for reading (seqpacket; repeatable)\n"
	"  -t, --timeout MS       wait at most MS milliseconds to connect, and for each\n"
	"                         update or the response (default 5000; -1: for ever)\n"
	"Typed calls: SERVICE is a service's name (or INTERFACE.NAME), BODY its request\n"
	"as JSON (none for ()), each update {\"NAME\": VALUE}; updates and the response\n"
	"print as JSON.\n"
	"  -i, --interface FILE   the interface file (pier-interface(5)) to call by\n"
	"  -d, --describe         call by the interfaces the remote describes\n"
	"      --describe-service ID  the service id it describes itself on (default -100)\n"
	"  -J, --json-updates     send each line of standard input as an update\n",
	CMD_PRINTS,
};

/* The SERVICE argument of call and send; exits if it is not one. */
static int32_t service_arg(const char *arg, const struct tool_cmd *cmd)
{
	int32_t service;

	if (!tool_parse_i32(arg, &service)) {
		fprintf(stderr, "%s: SERVICE is a service id, an integer such as 1 "
				"(-2147483648 to 2147483647), not '%s'\n", cmd->name, arg);
		exit(EXIT_USAGE);
	}
	return service;
}

/* The default body limit at address (see pier_config_set_max_body(3)). */
static size_t default_max_body(const char *address)
{
	return strncmp(address, "seqpacket:", 10) == 0 ? 128u << 10 : 1u << 20;
}

/* Says why a send was refused and what to do about it; the exit status. */
/* Whether err says the remote ended the connection (as it does when a
 * body is over its limit, which it cannot say on a stream). */
static bool ended_by_remote(int err)
{
	return err == -PIER_ECLOSED || err == -EPIPE || err == -ECONNRESET;
}

static int send_fail(const char *what, int err, const char *address, size_t len,
		     const struct tool_opts *o)
{
	bool seqpacket = strncmp(address, "seqpacket:", 10) == 0;
	size_t limit = o->max_body ? o->max_body : default_max_body(address);

	if (ended_by_remote(err) && len > default_max_body(address)) {
		/* The remote closed while the body went: likely its limit. */
		fprintf(stderr, "pier: %s: %s (the body of %zu bytes may be over the remote's "
				"limit: %zu bytes unless it was started with -m)\n",
			what, pier_strerror(err), len, default_max_body(address));
		return EXIT_FAILURE_IO;
	}
	if (err != -EMSGSIZE)
		return tool_fail(what, err);
	if (len > limit)
		fprintf(stderr, "pier: %s: the body of %zu bytes is over the %s limit of %zu bytes: "
				"%s\n", what, len, o->max_body ? "-m" : seqpacket ? "seqpacket" : "body",
			limit, seqpacket ? "raise it with -m BYTES on both sides, or pass the data "
					   "as a file with -f FILE (it travels as an fd)" :
					   "raise it with -m BYTES on both sides");
	else
		fprintf(stderr, "pier: %s: the body of %zu bytes does not fit in one packet of the "
				"socket: pass the data as a file with -f FILE (it travels as an fd)\n",
			what, len);
	return EXIT_FAILURE_IO;
}

static int send_stdin_updates(pier_sent_request *req, int32_t svc)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int r = 0;

	while ((n = getline(&line, &cap, stdin)) > 0) {
		if (line[n - 1] == '\n')
			n--;
		r = pier_sent_request_send_update(req, svc, line, (size_t)n, NULL, 0);
		if (r < 0)
			break;
	}
	free(line);
	return r;
}


static int cmd_call(int argc, char **argv, struct tool_opts *o)
{
	static const struct option longopts[] = {
		{ "body-file", required_argument, NULL, 'b' },
		{ "update", required_argument, NULL, 'u' },
		{ "updates-stdin", required_argument, NULL, 'U' },
		{ "fd", required_argument, NULL, 'f' },
		{ "interface", required_argument, NULL, 'i' },
		{ "describe", no_argument, NULL, 'd' },
		{ "describe-service", required_argument, NULL, OPT_DESCRIBE_SERVICE },
		{ "json-updates", no_argument, NULL, 'J' },
		COMMON_LONG,
		{ 0 },
	};
	struct update updates[MAX_UPDATES];
	const char *raw_updates[MAX_UPDATES];
	struct payload p = { 0 };
	const char *body_file = NULL, *interface = NULL;
	int32_t service, stdin_svc = 0, describe_id = PIER_DESCRIBE_SERVICE;
	bool stdin_updates = false, describe = false, json_updates = false;
	pier_sent_request *req = NULL;
	pier_peer *peer = NULL;
	size_t nupdates = 0;
	int c, r, status = EXIT_OK;

	while ((c = getopt_long(argc, argv, "+b:u:U:f:i:dJ" COMMON_SHORT, longopts, NULL)) != -1) {
		if (common_option(c, o, &call_cmd))
			continue;
		switch (c) {
		case 'b':
			body_file = optarg;
			break;
		case 'u':
			if (nupdates == MAX_UPDATES) {
				fprintf(stderr, "pier: at most %d updates\n", MAX_UPDATES);
				return EXIT_USAGE;
			}
			raw_updates[nupdates++] = optarg;
			break;
		case 'i':
			interface = optarg;
			break;
		case OPT_DESCRIBE_SERVICE:
			if (!tool_parse_i32(optarg, &describe_id)) {
				fprintf(stderr, "pier: bad service id: %s\n", optarg);
				return EXIT_USAGE;
			}
			describe = true; /* implies -d */
			break;
		case 'd':
			describe = true;
			break;
		case 'J':
			json_updates = true;
			break;
		case 'U':
			if (!tool_parse_i32(optarg, &stdin_svc)) {
				fprintf(stderr, "pier: bad service id: %s\n", optarg);
				return EXIT_USAGE;
			}
			stdin_updates = true;
			break;
		case 'f':
			if ((r = add_fd(&p, optarg)) != 0) {
				payload_free(&p);
				return r;
			}
			break;
		default:
			payload_free(&p);
			usage_error(&call_cmd);
		}
	}
	tool_check_args(argc, argv, optind, 3, &call_cmd);
	if (interface && describe) {
		fprintf(stderr, "pier: call by an interface file (-i) or by the remote's "
				"description (-d, --describe-service), not both\n");
		payload_free(&p);
		return EXIT_USAGE;
	}
	{
		/* standard input is one of them at most */
		int readers = (stdin_updates || json_updates) +
			      (body_file && strcmp(body_file, "-") == 0) +
			      (interface && strcmp(interface, "-") == 0);

		if (readers > 1) {
			fprintf(stderr, "pier: standard input can be the body, the updates or the "
					"interface file, only one of them\n");
			payload_free(&p);
			return EXIT_USAGE;
		}
	}
	if (interface || describe) {
		struct typed_ifaces *t = NULL;

		if (stdin_updates) {
			fprintf(stderr, "pier: a typed call reads its updates as JSON: -J, not -U\n");
			payload_free(&p);
			return EXIT_USAGE;
		}
		/* A bad file is said before anything else is tried. */
		status = interface ? typed_load_file(interface, &t) : EXIT_OK;
		if (status == 0)
			status = set_body(&p, body_file, argv + optind + 2, argc - optind - 2);
		if (status == 0)
			status = connect_peer(argv[optind], o, &peer);
		if (status == 0 && !t)
			status = typed_load_described(peer, describe_id, o->timeout_ms, &t);
		if (status == 0)
			status = typed_call(peer, t, &(struct typed_call_args){
							     .service = argv[optind + 1],
							     .body = p.body, .body_len = p.len,
							     .fds = p.fds, .nfds = p.nfds,
							     .updates = raw_updates,
							     .nupdates = nupdates,
							     .stdin_updates = json_updates,
							     .timeout_ms = o->timeout_ms });
		typed_ifaces_free(t);
		goto out;
	}
	if (json_updates) {
		fprintf(stderr, "pier: JSON updates (-J) are for typed calls: give -i FILE or -d\n");
		payload_free(&p);
		return EXIT_USAGE;
	}
	for (size_t i = 0; i < nupdates; i++) {
		char *colon = strchr(raw_updates[i], ':');

		if (colon)
			*colon = '\0';
		if (!colon || !tool_parse_i32(raw_updates[i], &updates[i].service)) {
			fprintf(stderr, "pier: an update is SERVICE:TEXT\n");
			payload_free(&p);
			return EXIT_USAGE;
		}
		updates[i].text = colon + 1;
	}
	service = service_arg(argv[optind + 1], &call_cmd);
	status = set_body(&p, body_file, argv + optind + 2, argc - optind - 2);
	if (status == 0)
		status = connect_peer(argv[optind], o, &peer);
	if (status != 0)
		goto out;

	r = pier_writer_send_request(pier_peer_get_writer(peer), service, p.body, p.len, p.fds,
				     p.nfds, &req);
	if (r < 0) {
		status = send_fail("cannot send the request", r, argv[optind], p.len, o);
		goto out;
	}
	for (size_t i = 0; i < nupdates && r == 0; i++)
		r = pier_sent_request_send_update(req, updates[i].service, updates[i].text,
						  strlen(updates[i].text), NULL, 0);
	if (r == 0 && stdin_updates)
		r = send_stdin_updates(req, stdin_svc);
	if (r < 0 && r != -PIER_EDONE) {
		status = tool_fail("cannot send an update", r);
		goto out;
	}
	for (;;) {
		pier_msg *m;
		bool last;

		r = pier_sent_request_recv(req, &m, o->timeout_ms);
		if (ended_by_remote(r) && p.len > default_max_body(argv[optind])) {
			/* Likely; a remote over a stream cannot say so. */
			fprintf(stderr, "pier: no response: %s (the body of %zu bytes may be over "
					"the remote's limit: %zu bytes unless it was started with -m)\n",
				pier_strerror(r), p.len, default_max_body(argv[optind]));
			status = EXIT_FAILURE_IO;
			break;
		}
		if (r < 0) {
			status = tool_fail(r == -ETIMEDOUT ? "no answer in time" : "no response", r);
			break;
		}
		print_msg("", m, false, o->hex);
		last = pier_msg_header(m)->type == PIER_MSG_RESPONSE;
		if (last && pier_msg_is_error(m))
			status = EXIT_REMOTE_ERROR;
		pier_msg_free(m);
		if (last)
			break;
	}
out:
	if (req)
		pier_sent_request_free(req);
	pier_peer_free(peer);
	payload_free(&p);
	return status;
}

static const struct tool_cmd describe_cmd = {
	"pier describe", "ADDRESS",
	"Usage: pier describe [OPTIONS] ADDRESS\n"
	"Print the interfaces the remote describes (pier_describe(3)): an interface\n"
	"file (pier-interface(5)) for each.\n"
	"Exits 1 when the remote answers with an error (it does not describe itself\n"
	"on that service id), 3 when the connection fails or times out.\n"
	"  -s, --service ID       the service id it describes itself on (default -100)\n"
	"  -t, --timeout MS       wait at most MS milliseconds to connect, and for the\n"
	"                         answer (default 5000; -1: for ever)\n",
	0,
};

static int cmd_describe(int argc, char **argv, struct tool_opts *o)
{
	static const struct option longopts[] = {
		{ "service", required_argument, NULL, 's' },
		COMMON_LONG,
		{ 0 },
	};
	int32_t id = PIER_DESCRIBE_SERVICE;
	pier_peer *peer = NULL;
	int c, status;

	while ((c = getopt_long(argc, argv, "+s:" COMMON_SHORT, longopts, NULL)) != -1) {
		if (common_option(c, o, &describe_cmd))
			continue;
		if (c != 's')
			usage_error(&describe_cmd);
		if (!tool_parse_i32(optarg, &id)) {
			fprintf(stderr, "pier: bad service id: %s\n", optarg);
			return EXIT_USAGE;
		}
	}
	tool_check_args(argc, argv, optind, 1, &describe_cmd);
	status = connect_peer(argv[optind], o, &peer);
	if (status == 0)
		status = typed_describe(peer, id, o->timeout_ms);
	pier_peer_free(peer);
	return status;
}

static const struct tool_cmd send_cmd = {
	"pier send", "ADDRESS SERVICE [BODY]",
	"Usage: pier send [OPTIONS] ADDRESS SERVICE [BODY]\n"
	"Send one stream message for service id SERVICE (an integer).\n"
	"  -b, --body-file FILE   the body is FILE's content ('-': standard input)\n"
	"  -f, --fd FILE          attach FILE, opened for reading (seqpacket; repeatable)\n"
	"  -t, --timeout MS       wait at most MS milliseconds to connect (default 5000;\n"
	"                         -1: for ever)\n",
	0,
};

static int cmd_send(int argc, char **argv, struct tool_opts *o)
{
	static const struct option longopts[] = {
		{ "body-file", required_argument, NULL, 'b' },
		{ "fd", required_argument, NULL, 'f' },
		COMMON_LONG,
		{ 0 },
	};
	struct payload p = { 0 };
	const char *body_file = NULL;
	pier_peer *peer = NULL;
	int32_t service;
	int c, r, status;

	while ((c = getopt_long(argc, argv, "+b:f:" COMMON_SHORT, longopts, NULL)) != -1) {
		if (common_option(c, o, &send_cmd))
			continue;
		if (c == 'b') {
			body_file = optarg;
		} else if (c == 'f') {
			if ((r = add_fd(&p, optarg)) != 0) {
				payload_free(&p);
				return r;
			}
		} else {
			payload_free(&p);
			usage_error(&send_cmd);
		}
	}
	tool_check_args(argc, argv, optind, 3, &send_cmd);
	service = service_arg(argv[optind + 1], &send_cmd);
	status = set_body(&p, body_file, argv + optind + 2, argc - optind - 2);
	if (status == 0)
		status = connect_peer(argv[optind], o, &peer);
	if (status == 0) {
		r = pier_writer_send_stream(pier_peer_get_writer(peer), service, p.body, p.len,
					    p.fds, p.nfds);
		if (r < 0)
			status = send_fail("cannot send", r, argv[optind], p.len, o);
	}
	/* Freeing the peer flushes the message before closing. */
	pier_peer_free(peer);
	payload_free(&p);
	return status;
}

/* --- pier listen --------------------------------------------------------- */

static const struct tool_cmd listen_cmd = {
	"pier listen", "ADDRESS",
	"Usage: pier listen [OPTIONS] ADDRESS\n"
	"Accept peers and print every message they send, with who sent it.  Requests\n"
	"get an error response saying that nothing serves them, unless --echo.\n"
	"  -E, --echo             answer each request with its own service and body\n"
	"  -n, --count N          exit after N messages\n"
	"  --mode MODE            the socket file's permissions, in octal (0660: its\n"
	"                         owner and group may connect)\n"
	"  --group GROUP          the socket file's group, a name or a number\n"
	"  -t, --timeout MS       drop a tls:// client whose handshake takes longer than\n"
	"                         MS milliseconds (default 5000; -1: never)\n",
	CMD_PRINTS | CMD_LISTENER,
};

/* What a request to a listener without --echo gets back. */
static const char not_served[] =
	"pier listen serves no requests: it prints them (run it with --echo to have "
	"each answered with its own body)";

/* A server with one worker, which prints: its hooks and handlers run one
 * at a time, so what they print of one peer comes in order. */
static struct listen_state {
	pier_server *server;
	unsigned int next_id;
	long count; /* messages left to print; negative: no limit */
	bool echo, hex;
} ls = { .count = -1 };

static void on_signal(int sig)
{
	pier_server_stop(ls.server); /* async-signal-safe */
}

static int listen_connected(void *ud, pier_peer *p, void **peer_data)
{
	char addr[256];
	int32_t pid;
	uint32_t uid, gid;
	unsigned int id = ++ls.next_id;

	if (pier_peer_remote_address(p, addr, sizeof(addr)) < 0)
		strcpy(addr, "?");
	printf("peer %u connected: %s", id, addr);
	if (pier_peer_credentials(p, &pid, &uid, &gid) == 0)
		printf(" (pid %d, uid %u, gid %u)", pid, uid, gid);
	putchar('\n');
	fflush(stdout);
	*peer_data = (void *)(uintptr_t)id;
	return 0;
}

static void listen_closed(void *ud, pier_peer *p, void *peer_data, int why)
{
	printf("peer %u closed: %s\n", (unsigned int)(uintptr_t)peer_data, pier_strerror(why));
	fflush(stdout);
}

/* Prints m, unless the count was reached: false then. */
static bool listen_print(void *peer_data, const pier_msg *m)
{
	char prefix[64];

	if (ls.count == 0)
		return false;
	snprintf(prefix, sizeof(prefix), "peer %u: ", (unsigned int)(uintptr_t)peer_data);
	print_msg(prefix, m, true, ls.hex);
	if (ls.count > 0 && --ls.count == 0)
		pier_server_stop(ls.server);
	return true;
}

static int listen_request(void *ud, pier_peer *p, void *peer_data, pier_msg *m,
			  pier_received_request *req)
{
	size_t len;
	const void *body = pier_msg_body(m, &len);

	if (listen_print(peer_data, m) && ls.echo)
		pier_received_request_send_response(req, pier_msg_header(m)->service_id, body, len,
						    NULL, 0);
	else /* at once: the caller would otherwise wait for its timeout */
		pier_received_request_send_error(req, not_served);
	return PIER_HANDLER_DONE;
}

static void listen_stream(void *ud, pier_peer *p, void *peer_data, pier_msg *m)
{
	listen_print(peer_data, m);
}

/* The server's log: the connections it closes unseen (TLS handshakes
 * that failed) and why. */
static void log_to_stderr(void *userdata, int priority, const char *message)
{
	fprintf(stderr, "pier: %s\n", message);
}

/* The octal permission bits of --mode; exits if MODE is not that. */
static mode_t parse_mode(const char *s)
{
	char *end;
	unsigned long v = strtoul(s, &end, 8);

	if (*s < '0' || *s > '7' || *end != '\0' || v > 0777) {
		fprintf(stderr, "pier: --mode takes permission bits in octal, such as 0660, "
				"not %s\n", s);
		exit(EXIT_USAGE);
	}
	return (mode_t)v;
}

/* The group id of --group, a name or a number; exits if there is none. */
static gid_t parse_group(const char *s)
{
	struct group *g = getgrnam(s);
	char *end;
	unsigned long v;

	if (g)
		return g->gr_gid;
	v = strtoul(s, &end, 10);
	if (*s < '0' || *s > '9' || *end != '\0' || v >= (gid_t)-1) {
		fprintf(stderr, "pier: --group: no group %s\n", s);
		exit(EXIT_USAGE);
	}
	return (gid_t)v;
}

/* Why listening failed, in the words of the options given. */
static int listen_failed(const char *address, int err, mode_t mode, gid_t gid)
{
	char buf[PATH_MAX + 200];

	address = shown_address(address, buf, sizeof(buf));
	if (err == -EINVAL && (mode || gid != (gid_t)-1)) {
		fprintf(stderr, "pier: %s: --mode and --group need a socket file (unix:///PATH "
				"or seqpacket:///PATH); abstract and TCP sockets have no "
				"permissions\n", address);
		return EXIT_USAGE;
	}
	if (err == -EPERM && gid != (gid_t)-1) {
		fprintf(stderr, "pier: %s: cannot give the socket file group %u: %s (you can only give "
				"a group you are a member of)\n", address, (unsigned int)gid,
			pier_strerror(err));
		return EXIT_FAILURE_IO;
	}
	return tool_fail_listen(address, err);
}

static int cmd_listen(int argc, char **argv, struct tool_opts *o)
{
	enum { OPT_MODE = 512, OPT_GROUP };
	static const struct option longopts[] = {
		{ "echo", no_argument, NULL, 'E' },
		{ "count", required_argument, NULL, 'n' },
		{ "mode", required_argument, NULL, OPT_MODE },
		{ "group", required_argument, NULL, OPT_GROUP },
		COMMON_LONG,
		{ 0 },
	};
	mode_t mode = 0;
	gid_t gid = (gid_t)-1;
	struct sigaction sa = { .sa_handler = on_signal };
	pier_config *cfg;
	char bound[256], buf[PATH_MAX + 200];
	int c, r;

	while ((c = getopt_long(argc, argv, "+En:" COMMON_SHORT, longopts, NULL)) != -1) {
		if (common_option(c, o, &listen_cmd))
			continue;
		if (c == 'E') {
			ls.echo = true;
		} else if (c == OPT_MODE) {
			mode = parse_mode(optarg);
		} else if (c == OPT_GROUP) {
			gid = parse_group(optarg);
		} else if (c == 'n') {
			ls.count = (int)count_arg("-n", optarg);
		} else {
			usage_error(&listen_cmd);
		}
	}
	tool_check_args(argc, argv, optind, 1, &listen_cmd);
	ls.hex = o->hex;
	cfg = tool_config(o);
	pier_config_set_log(cfg, log_to_stderr, NULL);
	r = pier_config_set_socket_mode(cfg, mode, gid);
	if (r == 0)
		r = pier_server_new(&ls.server, cfg);
	pier_config_free(cfg);
	if (r < 0)
		return tool_fail("cannot make the server", r);
	if ((r = pier_server_set_workers(ls.server, 1)) < 0 ||
	    (r = pier_server_set_peer_hooks(ls.server, listen_connected, listen_closed, NULL)) < 0 ||
	    (r = pier_server_handle_other_requests(ls.server, listen_request, NULL)) < 0 ||
	    (r = pier_server_handle_other_streams(ls.server, listen_stream, NULL)) < 0) {
		pier_server_free(ls.server);
		return tool_fail("cannot make the server", r);
	}
	r = pier_server_listen(ls.server, argv[optind]);
	if (r < 0) {
		pier_server_free(ls.server);
		return listen_failed(argv[optind], r, mode, gid);
	}
	pier_server_address(ls.server, 0, bound, sizeof(bound));
	printf("listening on %s\n", shown_address(bound, buf, sizeof(buf)));
	fflush(stdout);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	r = pier_server_start(ls.server);
	if (r < 0) {
		pier_server_free(ls.server);
		return tool_fail("cannot start the server", r);
	}
	pier_server_wait(ls.server, -1);
	pier_server_free(ls.server);
	return EXIT_OK;
}

/* --- pier broker --------------------------------------------------------- */

static const struct tool_cmd broker_cmd = {
	"pier broker", "ADDRESS [ADDRESS...]",
	"Usage: pier broker [OPTIONS] ADDRESS [ADDRESS...]\n"
	"Relay each request to a worker that registered its service id, with its updates\n"
	"both ways, its response and their fds; and each stream message to the peers\n"
	"subscribed to its topic id.  Until interrupted.  See pier(1) for the control\n"
	"requests (register -2, unregister -3, subscribe -4, unsubscribe -5).\n"
	"  --workers N            threads (default 4)\n"
	"  --max-peers N          peers connected at once (default 1024)\n"
	"  --max-requests N       requests in flight per peer (default 64)\n"
	"  --max-forwarded N      requests forwarded to one worker at once (default 1024)\n"
	"  --max-services N       service ids one peer may register (default 64)\n"
	"  --max-topics N         topic ids one peer may subscribe to (default 256)\n"
	"  --send-queue BYTES     what a peer may leave unread before its stream\n"
	"                         messages are dropped and its relayed requests fail\n"
	"                         (default 4 MiB)\n"
	"  --send-fds N           likewise, in fds (default 64)\n"
	"  --max-msg-fds N        fds one message may carry through the broker\n"
	"                         (default 32, or --send-fds if lower; at most\n"
	"                         --send-fds)\n"
	"  --fd-budget N          fds the broker holds at once for what it passes on\n"
	"                         (default: from the fd limit, see pier(1))\n"
	"  --mode MODE            the socket files' permissions, in octal\n"
	"  --group GROUP          the socket files' group, a name or a number\n"
	"  -t, --timeout MS       drop a tls:// client whose handshake takes longer than\n"
	"                         MS milliseconds (default 5000; -1: never)\n",
	CMD_LISTENER,
};

static int cmd_broker(int argc, char **argv, struct tool_opts *o)
{
	/* The limits' options first, in the order of counts and sizes. */
	enum {
		OPT_WORKERS = 512, OPT_PEERS, OPT_REQUESTS, OPT_FORWARDED, OPT_SERVICES,
		OPT_TOPICS, OPT_QUEUE, OPT_SEND_FDS, OPT_MSG_FDS, OPT_BUDGET, OPT_MODE, OPT_GROUP
	};
	static const struct option longopts[] = {
		{ "workers", required_argument, NULL, OPT_WORKERS },
		{ "max-peers", required_argument, NULL, OPT_PEERS },
		{ "max-requests", required_argument, NULL, OPT_REQUESTS },
		{ "max-forwarded", required_argument, NULL, OPT_FORWARDED },
		{ "max-services", required_argument, NULL, OPT_SERVICES },
		{ "max-topics", required_argument, NULL, OPT_TOPICS },
		{ "send-queue", required_argument, NULL, OPT_QUEUE },
		{ "send-fds", required_argument, NULL, OPT_SEND_FDS },
		{ "max-msg-fds", required_argument, NULL, OPT_MSG_FDS },
		{ "fd-budget", required_argument, NULL, OPT_BUDGET },
		{ "mode", required_argument, NULL, OPT_MODE },
		{ "group", required_argument, NULL, OPT_GROUP },
		COMMON_LONG,
		{ 0 },
	};
	struct broker_limits lim = { 0 };
	unsigned int *const counts[] = {
		&lim.workers, &lim.max_peers, &lim.max_requests, &lim.max_forwarded,
		&lim.max_services, &lim.max_topics,
	};
	size_t *const sizes[] = { &lim.send_queue, &lim.send_fds, &lim.msg_fds, &lim.fd_budget };
	mode_t mode = 0;
	gid_t gid = (gid_t)-1;
	pier_config *cfg;
	broker *b;
	char bound[256], buf[PATH_MAX + 200];
	int c, r, first;

	while ((c = getopt_long(argc, argv, "+" COMMON_SHORT, longopts, NULL)) != -1) {
		if (common_option(c, o, &broker_cmd))
			continue;
		if (c >= OPT_WORKERS && c <= OPT_BUDGET) {
			char name[32];
			unsigned int v;

			snprintf(name, sizeof(name), "--%s", longopts[c - OPT_WORKERS].name);
			v = count_arg(name, optarg);
			if (c < OPT_QUEUE)
				*counts[c - OPT_WORKERS] = v;
			else
				*sizes[c - OPT_QUEUE] = v;
		} else if (c == OPT_MODE) {
			mode = parse_mode(optarg);
		} else if (c == OPT_GROUP) {
			gid = parse_group(optarg);
		} else {
			usage_error(&broker_cmd);
		}
	}
	first = optind;
	tool_check_args(argc, argv, first, 64, &broker_cmd);
	cfg = tool_config(o);
	pier_config_set_log(cfg, log_to_stderr, NULL);
	r = pier_config_set_socket_mode(cfg, mode, gid);
	if (r == 0)
		r = broker_new(&b, cfg, o->order, &lim, log_to_stderr, NULL);
	pier_config_free(cfg);
	if (r == -EINVAL) {
		fputs("pier: --max-msg-fds may be at most --send-fds (default 64), and 253\n", stderr);
		return EXIT_USAGE;
	}
	if (r < 0)
		return tool_fail("cannot make the broker", r);
	for (int i = first; i < argc; i++) {
		r = pier_server_listen(broker_server(b), argv[i]);
		if (r < 0) {
			broker_free(b);
			return listen_failed(argv[i], r, mode, gid);
		}
	}
	for (int i = first; i < argc; i++) {
		pier_server_address(broker_server(b), (size_t)(i - first), bound, sizeof(bound));
		printf("broker on %s\n", shown_address(bound, buf, sizeof(buf)));
	}
	fflush(stdout);
	broker_stop_on_signals(b);
	r = pier_server_start(broker_server(b));
	if (r < 0) {
		broker_free(b);
		return tool_fail("cannot start the broker", r);
	}
	pier_server_wait(broker_server(b), -1);
	printf("%s\n", broker_summary(b, buf, sizeof(buf)));
	broker_free(b);
	return EXIT_OK;
}

/* --- main ---------------------------------------------------------------- */

static const char main_usage[] =
	"Usage: pier COMMAND [OPTIONS] ...\n"
	"Talk to Fizyr RPC peers.\n"
	"\n"
	"Commands:\n"
	"  call ADDRESS SERVICE [BODY]   send a request, print its updates and response\n"
	"  send ADDRESS SERVICE [BODY]   send a stream message\n"
	"  describe ADDRESS              print the interfaces the remote describes\n"
	"  listen ADDRESS                accept peers, print what they send\n"
	"  broker ADDRESS...             relay requests to workers, streams to subscribers\n"
	"  serve-conformance ADDRESS     serve the conformance services\n"
	"  test-conformance ADDRESS      check a peer that serves them\n"
	"\n"
	"Addresses: tcp://HOST:PORT (an IPv6 address in brackets: tcp://[::1]:PORT),\n"
	"tls://HOST:PORT, unix:///PATH and seqpacket:///PATH (unix://@NAME for an\n"
	"abstract socket).  'pier COMMAND --help' tells a command's options; see also\n"
	"pier(1).\n"
	"  -V, --version                 print the version\n";

int main(int argc, char **argv)
{
	struct tool_opts o = { .timeout_ms = 5000, .order = PIER_BYTE_ORDER_LITTLE };
	const char *cmd;

	if (argc < 2) {
		fputs(main_usage, stderr);
		return EXIT_USAGE;
	}
	cmd = argv[1];
	if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
		fputs(main_usage, stdout);
		return EXIT_OK;
	}
	if (strcmp(cmd, "-V") == 0 || strcmp(cmd, "--version") == 0) {
		printf("pier %s\n", pier_version());
		return EXIT_OK;
	}
	/* Every command sees its own name as argv[0]. */
	argc--;
	argv++;
	if (strcmp(cmd, "call") == 0)
		return cmd_call(argc, argv, &o);
	if (strcmp(cmd, "send") == 0)
		return cmd_send(argc, argv, &o);
	if (strcmp(cmd, "describe") == 0)
		return cmd_describe(argc, argv, &o);
	if (strcmp(cmd, "listen") == 0)
		return cmd_listen(argc, argv, &o);
	if (strcmp(cmd, "broker") == 0)
		return cmd_broker(argc, argv, &o);
	if (strcmp(cmd, "serve-conformance") == 0)
		return cmd_serve_conformance(argc, argv, &o);
	if (strcmp(cmd, "test-conformance") == 0)
		return cmd_test_conformance(argc, argv, &o);
	fprintf(stderr, "pier: no command '%s' (see pier --help)\n", cmd);
	return EXIT_USAGE;
}
