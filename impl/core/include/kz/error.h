/* kz/error.h — the one table of kz error codes, with names and texts. */
#ifndef KZ_ERROR_H
#define KZ_ERROR_H

/* Every kz function that can fail returns int: 0 on success or one of
 * these negative codes.  The X-macro keeps code, name and text in one
 * place (libuv's UV_ERRNO_MAP does the same). */
#define KZ_ERRNO_MAP(X)                                                    \
  X(ENOMEM, -1, "out of memory")                                           \
  X(EINVAL, -2, "invalid argument")                                        \
  X(EPROTO, -3, "protocol error in input")                                 \
  X(EAGAIN, -4, "more input needed")                                       \
  X(ENOENT, -5, "no such entry")                                           \
  X(EEXIST, -6, "entry already exists")                                    \
  X(ETIMEDOUT, -7, "timed out")                                            \
  X(ECONNREFUSED, -8, "connection refused")                                \
  X(ECONNRESET, -9, "connection reset by peer")                            \
  X(ECLOSED, -10, "handle is closed")                                      \
  X(EADDRINUSE, -11, "address already in use")                             \
  X(ENOSPC, -12, "no space left")                                          \
  X(EIO, -13, "input/output error")                                        \
  X(ERANGE, -14, "value out of range")                                     \
  X(ENOTSUP, -15, "operation not supported")                               \
  X(EBUSY, -16, "resource busy")                                           \
  X(ECANCELED, -17, "operation canceled")                                  \
  X(EMSGSIZE, -18, "message too long")                                     \
  X(ENOTCONN, -19, "not connected")                                        \
  X(EHOSTUNREACH, -20, "host unreachable")                                 \
  X(EADDRNOTAVAIL, -21, "address not available")                           \
  X(ECONFLICT, -22, "conflicting update")                                  \
  X(EPERM, -23, "operation not permitted")                                 \
  X(EHOSTDOWN, -24, "host is down")

enum kz_errno {
  KZ_OK = 0,
#define KZ_ERR_ENUM_(name, code, text) KZ_##name = (code),
  KZ_ERRNO_MAP(KZ_ERR_ENUM_)
#undef KZ_ERR_ENUM_
};

/* kz_strerror returns a static English text for a kz error code ("success"
 * for 0, "unknown error" for codes outside the table).  Never NULL. */
const char *kz_strerror(int err);

/* kz_err_name returns the symbolic name ("KZ_EINVAL"), "KZ_OK" for 0 or
 * "KZ_UNKNOWN" for codes outside the table.  Never NULL. */
const char *kz_err_name(int err);

#endif /* KZ_ERROR_H */
