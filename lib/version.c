/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <pier.h>

#include "private.h"

PIER_EXPORT const char *pier_version(void)
{
	return PIER_VERSION_STRING;
}

PIER_EXPORT unsigned long pier_version_number(void)
{
	return PIER_VERSION_NUMBER;
}

PIER_EXPORT const char *pier_msg_type_name(enum pier_msg_type type)
{
	switch (type) {
	case PIER_MSG_REQUEST:
		return "request";
	case PIER_MSG_RESPONSE:
		return "response";
	case PIER_MSG_REQUESTER_UPDATE:
		return "requester-update";
	case PIER_MSG_RESPONDER_UPDATE:
		return "responder-update";
	case PIER_MSG_STREAM:
		return "stream";
	}
	return NULL;
}
