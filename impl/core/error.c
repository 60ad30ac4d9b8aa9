/* error.c — names and texts for the KZ_ERRNO_MAP error codes. */
#include "kz/error.h"

const char *kz_strerror(int err) {
  switch (err) {
  case 0:
    return "success";
#define KZ_ERR_TEXT_(name, code, text) \
  case (code):                         \
    return text;
    KZ_ERRNO_MAP(KZ_ERR_TEXT_)
#undef KZ_ERR_TEXT_
  default:
    return "unknown error";
  }
}

const char *kz_err_name(int err) {
  switch (err) {
  case 0:
    return "KZ_OK";
#define KZ_ERR_NAME_(name, code, text) \
  case (code):                         \
    return "KZ_" #name;
    KZ_ERRNO_MAP(KZ_ERR_NAME_)
#undef KZ_ERR_NAME_
  default:
    return "KZ_UNKNOWN";
  }
}
