/* SPDX-License-Identifier: GPL-3.0-or-later */
/* GchatdOnlineList: the encoded `users` messages always say exactly who is online. */

#include "config.h"

#include "gchat-message.h"
#include "gchatd-online-list.h"

/* Decodes @list's messages into a set of folded names, checking `more` and page sizes. */
static GHashTable *
decode_list (GchatdOnlineList *list)
{
  g_autoptr(GPtrArray) messages = gchatd_online_list_encode (list);
  GHashTable *names = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

  for (guint i = 0; i < messages->len; i++)
    {
      GBytes *json = g_ptr_array_index (messages, i);
      g_autoptr(GError) error = NULL;
      g_autoptr(GchatMessage) message = NULL;
      g_auto(GStrv) users = NULL;

      message = gchat_message_decode (g_bytes_get_data (json, NULL), g_bytes_get_size (json),
                                      &error);
      g_assert_no_error (error);
      g_assert_cmpint (gchat_message_get_message_type (message), ==, GCHAT_MESSAGE_USERS);
      g_assert_cmpint (gchat_message_get_bool (message, "more"), ==, i + 1 < messages->len);
      users = gchat_message_dup_strv (message, "users");
      g_assert_nonnull (users);
      /* Every page full but the last: the list is never spread over more frames than needed. */
      if (i + 1 < messages->len)
        g_assert_cmpuint (g_strv_length (users), ==, GCHATD_ONLINE_LIST_PAGE_SIZE);
      else
        g_assert_cmpuint (g_strv_length (users), >, 0);
      for (guint k = 0; users[k] != NULL; k++)
        {
          /* Each name once. */
          g_assert_true (g_hash_table_add (names, g_ascii_strdown (users[k], -1)));
        }
    }
  return names;
}

static void
assert_same (GchatdOnlineList *list,
             GHashTable       *model)
{
  g_autoptr(GHashTable) names = decode_list (list);
  GHashTableIter iter;
  gpointer name;

  g_assert_cmpuint (g_hash_table_size (names), ==, g_hash_table_size (model));
  g_assert_cmpuint (gchatd_online_list_get_size (list), ==, g_hash_table_size (model));
  g_hash_table_iter_init (&iter, model);
  while (g_hash_table_iter_next (&iter, &name, NULL))
    g_assert_true (g_hash_table_contains (names, name));
}

static void
test_online_list_basics (void)
{
  g_autoptr(GchatdOnlineList) list = gchatd_online_list_new ();
  g_autoptr(GPtrArray) messages = gchatd_online_list_encode (list);
  g_autoptr(GHashTable) model = g_hash_table_new (g_str_hash, g_str_equal);

  /* Nobody online: no message at all. */
  g_assert_cmpuint (messages->len, ==, 0);

  gchatd_online_list_add (list, "Alice");
  gchatd_online_list_add (list, "ALICE"); /* the same user */
  gchatd_online_list_add (list, "bob");
  gchatd_online_list_remove (list, "carol"); /* not there */
  g_hash_table_add (model, "alice");
  g_hash_table_add (model, "bob");
  assert_same (list, model);

  gchatd_online_list_remove (list, "aLiCe");
  g_hash_table_remove (model, "alice");
  assert_same (list, model);

  gchatd_online_list_remove (list, "bob");
  g_hash_table_remove (model, "bob");
  assert_same (list, model);
}

/* Random log-ins and log-outs over several pages, checked after each step against a plain set;
 * encoding between steps exercises the kept pages, not only fresh ones. */
static void
test_online_list_churn (void)
{
  g_autoptr(GchatdOnlineList) list = gchatd_online_list_new ();
  g_autoptr(GHashTable) model = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  const guint n_names = 4 * GCHATD_ONLINE_LIST_PAGE_SIZE + 17;
  g_autoptr(GRand) rand = g_rand_new_with_seed (6);

  for (guint step = 0; step < 20000; step++)
    {
      g_autofree char *name = g_strdup_printf ("user%u", g_rand_int_range (rand, 0, n_names));

      /* Log-ins win early, so the list grows over several pages, then shrinks. */
      if (g_rand_int_range (rand, 0, 100) < (step < 10000 ? 70 : 30))
        {
          gchatd_online_list_add (list, name);
          g_hash_table_add (model, g_steal_pointer (&name));
        }
      else
        {
          gchatd_online_list_remove (list, name);
          g_hash_table_remove (model, name);
        }
      if (step % 97 == 0 || step > 19900)
        assert_same (list, model);
    }
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/online-list/basics", test_online_list_basics);
  g_test_add_func ("/online-list/churn", test_online_list_churn);

  return g_test_run ();
}
