/* report_int.h — helpers shared by the report writer's files. */
#ifndef KZ_SIM_REPORT_INT_H
#define KZ_SIM_REPORT_INT_H

#include "kz/sim_report.h"

/* Appends s as a JSON string literal.  Returns 0 or KZ_ENOMEM. */
int report_json_str(struct kz_buf *b, const char *s);
/* Number of buckets of the longest series of the report. */
size_t report_series_len(const struct kz_sim_report *r);
/* Bucket width of the report's series (1 s when it has none). */
uint64_t report_bucket_ns(const struct kz_sim_report *r);

#endif /* KZ_SIM_REPORT_INT_H */
