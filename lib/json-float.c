/* SPDX-License-Identifier: MIT */
/*
 * Floating-point numbers as serde_json writes them: the shortest decimal
 * that reads back as the same number (what the ryu crate finds), laid out
 * the way ryu lays it out: "1.0", "0.1", "1e20", "1.5e-7", "123.456".
 *
 * The digits come from the C library's correctly rounded printf: the
 * shortest precision whose rounding reads back the same number (one
 * printf for most numbers, a search for the others).  That is
 * ryu's answer but at powers of two, whose interval of numbers that read
 * back is narrower below than above: there a decimal one unit up in the
 * last digit can read back when the nearest one (below) does not, so one
 * digit fewer is tried that way too.
 */
#include "config.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json-int.h"

/* A decimal: digits (no leading or trailing zeros, NUL-terminated) times
 * 10 to the power exp10 - (number of digits - 1). */
struct decimal {
	char digits[24];
	int exp10;
};

/* The decimal of v rounded to prec significant digits. */
static void round_to(double v, int prec, struct decimal *d)
{
	char buf[48], *e;
	size_t n = 0;

	snprintf(buf, sizeof(buf), "%.*e", prec - 1, v);
	for (const char *s = buf; s < buf + sizeof(buf) && *s && *s != 'e'; s++)
		if (*s >= '0' && *s <= '9')
			d->digits[n++] = *s;
	d->digits[n] = '\0';
	e = strchr(buf, 'e');
	d->exp10 = e ? atoi(e + 1) : 0;
}

static double read_back(const struct decimal *d, bool single)
{
	char buf[48];

	snprintf(buf, sizeof(buf), "%se%d", d->digits, d->exp10 - (int)strlen(d->digits) + 1);
	return single ? (double)strtof(buf, NULL) : strtod(buf, NULL);
}

static void trim(struct decimal *d)
{
	size_t n = strlen(d->digits);

	while (n > 1 && d->digits[n - 1] == '0')
		d->digits[--n] = '\0';
}

/* The next decimal up in the last digit (9.99 -> 1.0e1). */
static void increment(struct decimal *d)
{
	size_t n = strlen(d->digits);

	for (size_t i = n; i-- > 0;) {
		if (d->digits[i] != '9') {
			d->digits[i]++;
			trim(d);
			return;
		}
		d->digits[i] = '0';
	}
	strcpy(d->digits, "1");
	d->exp10++;
}

static bool power_of_two(double v)
{
	int e;

	return frexp(v, &e) == 0.5;
}

/* The shortest decimal that reads back as v (v finite, above zero). */
static void shortest(double v, bool single, struct decimal *d)
{
	int dig = single ? FLT_DIG : DBL_DIG, lo = 1, hi = single ? 9 : 17;

	/* A decimal of at most DIG digits (15, 6) survives a trip through a
	 * normal number and back: so if any reads back as v, it is v rounded
	 * to DIG digits, zeros stripped, and one printf finds it.  Most
	 * numbers are so; the others have DIG + 1 or more digits. */
	if (v >= (single ? FLT_MIN : DBL_MIN)) {
		round_to(v, dig, d);
		if (read_back(d, single) == v) {
			trim(d);
			return;
		}
		lo = dig + 1;
	}
	/* Reading back is monotonic in the precision: search it. */
	while (lo < hi) {
		int mid = (lo + hi) / 2;

		round_to(v, mid, d);
		if (read_back(d, single) == v)
			hi = mid;
		else
			lo = mid + 1;
	}
	round_to(v, lo, d);
	trim(d);
	if (lo > 1 && power_of_two(v)) {
		struct decimal up;

		round_to(v, lo - 1, &up);
		if (read_back(&up, single) < v) {
			increment(&up);
			if (read_back(&up, single) == v)
				*d = up;
		}
	}
}

/* An integer whose neighbours are integers too (below 2^53 for f64, 2^24
 * for f32) is its own shortest decimal: no printf needed. */
static bool integral(double v, bool single, struct decimal *d)
{
	char buf[24];
	uint64_t u;
	size_t n;

	if (!(v < (single ? 16777216.0 : 9007199254740992.0)) || v != floor(v))
		return false;
	u = (uint64_t)v;
	n = (size_t)snprintf(buf, sizeof(buf), "%llu", (unsigned long long)u);
	memcpy(d->digits, buf, n + 1);
	d->exp10 = (int)n - 1;
	trim(d);
	return true;
}

static size_t put_exponent(char *out, int e)
{
	return (size_t)sprintf(out, "e%d", e);
}

/* Lays d out as ryu does: fixed_max is 16 for f64, 13 for f32; numbers
 * below 1 are written 0.000ddd while kk > small_min, which is -5 for f64
 * (1e-5 is 0.00001, 1e-6 is 1e-6) and -6 for f32. */
static size_t lay_out(const struct decimal *d, int fixed_max, int small_min, char *out)
{
	int length = (int)strlen(d->digits);
	int kk = d->exp10 + 1; /* 10^(kk-1) <= v < 10^kk */
	int k = kk - length;
	size_t n = 0;

	if (k >= 0 && kk <= fixed_max) {
		memcpy(out, d->digits, (size_t)length);
		n = (size_t)length;
		for (int i = 0; i < k; i++)
			out[n++] = '0';
		memcpy(out + n, ".0", 2);
		return n + 2;
	}
	if (kk > 0 && kk <= fixed_max) {
		memcpy(out, d->digits, (size_t)kk);
		out[kk] = '.';
		memcpy(out + kk + 1, d->digits + kk, (size_t)(length - kk));
		return (size_t)length + 1;
	}
	if (kk > small_min && kk <= 0) {
		out[n++] = '0';
		out[n++] = '.';
		for (int i = 0; i < -kk; i++)
			out[n++] = '0';
		memcpy(out + n, d->digits, (size_t)length);
		return n + (size_t)length;
	}
	out[n++] = d->digits[0];
	if (length > 1) {
		out[n++] = '.';
		memcpy(out + n, d->digits + 1, (size_t)length - 1);
		n += (size_t)length - 1;
	}
	return n + put_exponent(out + n, kk - 1);
}

static size_t format(double v, bool single, char *out)
{
	struct decimal d;
	size_t n = 0;

	if (signbit(v)) {
		out[n++] = '-';
		v = -v;
	}
	if (v == 0) {
		memcpy(out + n, "0.0", 3);
		return n + 3;
	}
	if (!integral(v, single, &d))
		shortest(v, single, &d);
	return n + lay_out(&d, single ? 13 : 16, single ? -6 : -5, out + n);
}

size_t json_format_f64(double v, char out[JSON_FLOAT_MAX])
{
	return format(v, false, out);
}

size_t json_format_f32(float v, char out[JSON_FLOAT_MAX])
{
	return format((double)v, true, out);
}
