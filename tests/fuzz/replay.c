/* SPDX-License-Identifier: MIT */
/*
 * Runs a fuzz target over files, without libFuzzer: every file of the
 * directories (or the files) named on the command line, or of the target's
 * own corpus when none is named.  This is how `make check` keeps every
 * corpus entry passing in ordinary builds.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	long len;

	if (!f || fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0) {
		fprintf(stderr, "replay: cannot read %s: %s\n", path, strerror(errno));
		if (f)
			fclose(f);
		return -1;
	}
	buf = malloc(len ? (size_t)len : 1);
	if (!buf || fread(buf, 1, (size_t)len, f) != (size_t)len) {
		fprintf(stderr, "replay: cannot read %s\n", path);
		free(buf);
		fclose(f);
		return -1;
	}
	fclose(f);
	LLVMFuzzerTestOneInput(buf, (size_t)len);
	free(buf);
	return 1;
}

/* Returns the number of inputs run, or -1. */
static int run_path(const char *path)
{
	struct stat st;
	struct dirent *e;
	DIR *d;
	int total = 0;

	if (stat(path, &st) != 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return run_file(path);
	d = opendir(path);
	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL) {
		char sub[4096];
		int r;

		if (e->d_name[0] == '.')
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
		r = run_path(sub);
		if (r < 0) {
			closedir(d);
			return -1;
		}
		total += r;
	}
	closedir(d);
	return total;
}

int main(int argc, char **argv)
{
	int total = 0;

	if (argc < 2) {
		total = run_path(FUZZ_CORPUS);
		if (total < 0)
			return EXIT_FAILURE;
	}
	for (int i = 1; i < argc; i++) {
		int r = run_path(argv[i]);

		if (r < 0)
			return EXIT_FAILURE;
		total += r;
	}
	if (total == 0) {
		fprintf(stderr, "replay: no input found\n");
		return EXIT_FAILURE;
	}
	printf("replay: %d inputs, no property failed\n", total);
	return EXIT_SUCCESS;
}
