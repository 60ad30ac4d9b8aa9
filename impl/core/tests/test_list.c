/* test_list.c — the intrusive list of kz/list.h: order, removal anywhere, re-removal, iteration. */
#include "core_tests.h"
#include "kz/heap.h" /* KZ_CONTAINER_OF */
#include "kz/list.h"

struct item {
  int v;
  struct kz_list link;
};

static int collect(struct kz_list *head, int *out, int max) {
  int n = 0;
  struct kz_list *l;
  KZ_LIST_FOREACH(l, head) {
    if (n < max) out[n] = KZ_CONTAINER_OF(l, struct item, link)->v;
    n++;
  }
  return n;
}

START_TEST(list_order_and_removal) {
  struct kz_list head;
  kz_list_init(&head);
  ck_assert(kz_list_empty(&head));
  ck_assert_ptr_null(kz_list_first(&head));
  struct item it[4] = {{1, {0}}, {2, {0}}, {3, {0}}, {4, {0}}};
  kz_list_append(&head, &it[1].link);  /* 2 */
  kz_list_append(&head, &it[2].link);  /* 2 3 */
  kz_list_prepend(&head, &it[0].link); /* 1 2 3 */
  kz_list_insert_before(&it[2].link, &it[3].link); /* 1 2 4 3 */
  int got[8];
  ck_assert_int_eq(collect(&head, got, 8), 4);
  ck_assert(got[0] == 1 && got[1] == 2 && got[2] == 4 && got[3] == 3);
  kz_list_remove(&it[1].link); /* from the middle */
  kz_list_remove(&it[1].link); /* twice: harmless, it points at itself */
  kz_list_remove(&it[2].link); /* the last */
  ck_assert_int_eq(collect(&head, got, 8), 2);
  ck_assert(got[0] == 1 && got[1] == 4);
  ck_assert_ptr_eq(kz_list_first(&head), &it[0].link);
  while (!kz_list_empty(&head)) kz_list_remove(head.next);
  ck_assert_int_eq(collect(&head, got, 8), 0);
}
END_TEST

void kz_core_test_list(Suite *s) {
  TCase *tc = kz_tcase(s, "list", 10);
  tcase_add_test(tc, list_order_and_removal);
}
