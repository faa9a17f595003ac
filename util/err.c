#include "util/err.h"

const char *
ig_strerror(int err)
{
	switch (err) {
	case IG_OK: return "success";
	case IG_ENOMEM: return "out of memory";
	case IG_EINVAL: return "invalid argument";
	case IG_ECONFIG: return "configuration error";
	case IG_EIO: return "I/O error";
	case IG_ETLS: return "TLS error";
	case IG_EPROTO: return "protocol violation";
	case IG_ETOOLONG: return "limit exceeded";
	case IG_ENOTFOUND: return "not found";
	case IG_EEOF: return "connection closed by peer";
	case IG_ETIMEDOUT: return "timed out";
	case IG_ECERT: return "certificate error";
	case IG_EEXIST: return "already exists";
	}
	return "unknown error";
}
