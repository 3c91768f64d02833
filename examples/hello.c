/* SPDX-License-Identifier: MIT */
/*
 * The smallest libpier program: it reports which library it runs against and
 * what the protocol's vocabulary is.  Built by `make`, run by scripts/demo.sh.
 */
#include <stdio.h>

#include <pier.h>

int main(void)
{
	printf("libpier %s (headers %s)\n", pier_version(), PIER_VERSION_STRING);
	if (pier_version_number() < PIER_VERSION_NUMBER)
		fprintf(stderr, "warning: the library is older than the headers\n");

	printf("Fizyr RPC message types:\n");
	for (int t = PIER_MSG_REQUEST; t <= PIER_MSG_STREAM; t++)
		printf("  %d  %s\n", t, pier_msg_type_name((enum pier_msg_type)t));

	printf("Errors a connection can end with:\n");
	for (int e = PIER_ESHORTFRAME; e < PIER_ERROR_END_; e++)
		printf("  -%d  %s\n", e, pier_strerror(-e));
	return 0;
}
