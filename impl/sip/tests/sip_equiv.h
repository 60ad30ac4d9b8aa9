/* sip_equiv.h — test support: compares two parsed SIP messages field by field (parse → print → reparse checks). */
#ifndef KZ_SIP_EQUIV_H
#define KZ_SIP_EQUIV_H

#include <stddef.h>

#include "kz/sip_msg.h"

/* Returns 0 when a and b carry the same start line, the same header
 * fields (ids, names of unknown ones, values compared unfolded) and the
 * same parsed key fields (URI parts, Via, From/To, Contact, Route,
 * Call-ID, CSeq, Max-Forwards, Content-Length, Expires, body); otherwise
 * -1 with a description of the first difference in why.  Returns
 * KZ_ENOMEM if comparing needed memory that was not available. */
int kz_sip_test_equiv(const struct kz_sip_msg *a, const struct kz_sip_msg *b, char *why,
                      size_t whylen);

/* Parses data as a datagram, prints it, reparses the print and compares.
 * Returns 0 when data does not parse or the round trip is equivalent,
 * -1 on a round-trip failure (why says what), KZ_ENOMEM on memory
 * exhaustion. *parsed tells whether data parsed. */
int kz_sip_test_roundtrip(const void *data, size_t len, int *parsed, char *why, size_t whylen);

#endif /* KZ_SIP_EQUIV_H */
