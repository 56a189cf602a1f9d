/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Tests GchatdUserStore on real files: reloads, case-insensitive names, group commit, replaces
 * and removes, corrupt files, failed saves, and the rules for names and passwords. */

#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <gio/gio.h>
#include <glib/gstdio.h>

#include "gchat-test-util.h"

#include "gchatd-user-store.h"

/* A valid record by hand, as an administrator or an older gchatd could have written it. */
#define SALT_B64   "\"AAAAAAAAAAAAAAAAAAAAAA==\""
#define HASH_B64   "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\""
#define PARAMS     "{\"m\":19456,\"t\":2,\"p\":1}"
#define RECORD_WITH(name, params, salt, hash, created)                                          \
  "{\"name\":" name ",\"argon2\":" params ",\"salt\":" salt ",\"hash\":" hash                  \
  ",\"created\":" created "}"
#define RECORD(name) RECORD_WITH ("\"" name "\"", PARAMS, SALT_B64, HASH_B64, "1700000000")
#define FILE_OF(records) "{\"version\":1,\"users\":[" records "]}"

typedef struct {
  char *dir;
  char *path;
} Fixture;

static void
fixture_set_up (Fixture       *fixture,
                gconstpointer  user_data)
{
  fixture->dir = gchat_test_make_dir ("test-user-store");
  fixture->path = g_build_filename (fixture->dir, "users.json", NULL);
}

static void
fixture_tear_down (Fixture       *fixture,
                   gconstpointer  user_data)
{
  g_assert_true (gchat_test_remove_tree (fixture->dir));
  g_free (fixture->dir);
  g_free (fixture->path);
}

/* Adds ----------------------------------------------------------------------------------------- */

typedef struct {
  guint   n_done;
  guint   n_failed;
  GError *last_error;
} Results;

static void
results_clear (Results *results)
{
  g_clear_error (&results->last_error);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Results, results_clear)

static void
on_added (GObject      *source,
          GAsyncResult *result,
          gpointer      user_data)
{
  Results *results = user_data;
  g_autoptr (GError) error = NULL;

  g_assert_true (g_main_context_is_owner (g_main_context_default ()));
  if (!gchatd_user_store_add_finish (GCHATD_USER_STORE (source), result, &error))
    {
      results->n_failed++;
      g_clear_error (&results->last_error);
      results->last_error = g_steal_pointer (&error);
    }
  results->n_done++;
}

static void
start_add_with (GchatdUserStore         *store,
                const char              *name,
                const GchatArgon2Params *params,
                GCancellable            *cancellable,
                Results                 *results)
{
  guint8 salt[GCHATD_USER_SALT_SIZE];
  guint8 hash[GCHATD_USER_HASH_SIZE];

  gchat_random_bytes (salt, sizeof salt);
  gchat_random_bytes (hash, sizeof hash);
  gchatd_user_store_add_async (store, name, params, salt, sizeof salt, hash, sizeof hash,
                               cancellable, on_added, results);
}

static void
start_add (GchatdUserStore *store,
           const char      *name,
           Results         *results)
{
  GchatArgon2Params params;

  gchat_argon2_params_init_default (&params);
  start_add_with (store, name, &params, NULL, results);
}

static void
wait_for (Results *results,
          guint    n_done)
{
  while (results->n_done < n_done)
    g_main_context_iteration (NULL, TRUE);
}

/* Adds @name, waits for the result, and returns the error, if any. */
static GError *
add_and_wait (GchatdUserStore *store,
              const char      *name)
{
  g_auto (Results) results = { 0 };

  start_add (store, name, &results);
  wait_for (&results, 1);

  return g_steal_pointer (&results.last_error);
}

static GchatdUserStore *
load (Fixture *fixture)
{
  g_autoptr (GError) error = NULL;
  GchatdUserStore *store = gchatd_user_store_new (fixture->path, &error);

  g_assert_no_error (error);
  g_assert_nonnull (store);

  return store;
}

static void
assert_same_record (const GchatdUserRecord *a,
                    const GchatdUserRecord *b)
{
  const GchatArgon2Params *pa = gchatd_user_record_get_params (a);
  const GchatArgon2Params *pb = gchatd_user_record_get_params (b);

  g_assert_cmpstr (gchatd_user_record_get_name (a), ==, gchatd_user_record_get_name (b));
  g_assert_cmpuint (pa->memory_kib, ==, pb->memory_kib);
  g_assert_cmpuint (pa->iterations, ==, pb->iterations);
  g_assert_cmpuint (pa->parallelism, ==, pb->parallelism);
  g_assert_cmpmem (gchatd_user_record_get_salt (a), GCHATD_USER_SALT_SIZE,
                   gchatd_user_record_get_salt (b), GCHATD_USER_SALT_SIZE);
  g_assert_cmpmem (gchatd_user_record_get_hash (a), GCHATD_USER_HASH_SIZE,
                   gchatd_user_record_get_hash (b), GCHATD_USER_HASH_SIZE);
  g_assert_cmpint (gchatd_user_record_get_created (a), ==, gchatd_user_record_get_created (b));
}

/* Tests ---------------------------------------------------------------------------------------- */

static void
test_missing_file (Fixture       *fixture,
                   gconstpointer  user_data)
{
  g_autoptr (GchatdUserStore) store = load (fixture);
  g_autoptr (GPtrArray) records = gchatd_user_store_dup_records (store);

  g_assert_cmpuint (gchatd_user_store_get_n_users (store), ==, 0);
  g_assert_cmpuint (gchatd_user_store_get_n_writes (store), ==, 0);
  g_assert_cmpuint (records->len, ==, 0);
  g_assert_null (gchatd_user_store_lookup (store, "alice"));
  g_assert_cmpstr (gchatd_user_store_get_path (store), ==, fixture->path);
  /* Loading alone creates nothing. */
  g_assert_false (g_file_test (fixture->path, G_FILE_TEST_EXISTS));
}

static void
test_add_and_reload (Fixture       *fixture,
                     gconstpointer  user_data)
{
  g_autoptr (GchatdUserStore) store = load (fixture);
  g_autoptr (GchatdUserStore) reloaded = NULL;
  g_autoptr (GchatdUserRecord) added = NULL;
  g_autoptr (GchatdUserRecord) found = NULL;
  g_auto (Results) results = { 0 };
  GchatArgon2Params params = { .memory_kib = 4096, .iterations = 3, .parallelism = 2 };
  gint64 before = g_get_real_time () / G_USEC_PER_SEC;
  guint n_writes = 0;

  start_add_with (store, "Alice", &params, NULL, &results);
  wait_for (&results, 1);
  g_assert_no_error (results.last_error);

  added = gchatd_user_store_lookup (store, "aLICE");
  g_assert_nonnull (added);
  g_assert_cmpstr (gchatd_user_record_get_name (added), ==, "Alice");
  g_assert_cmpuint (gchatd_user_record_get_params (added)->memory_kib, ==, 4096);
  g_assert_cmpint (gchatd_user_record_get_created (added), >=, before);
  g_assert_cmpint (gchatd_user_record_get_created (added), <=, before + 60);
  g_object_get (store, "n-writes", &n_writes, NULL);
  g_assert_cmpuint (n_writes, ==, 1);

  reloaded = load (fixture);
  g_assert_cmpuint (gchatd_user_store_get_n_users (reloaded), ==, 1);
  found = gchatd_user_store_lookup (reloaded, "alice");
  g_assert_nonnull (found);
  assert_same_record (added, found);
  g_assert_null (gchatd_user_store_lookup (reloaded, "alic"));
  g_assert_null (gchatd_user_store_lookup (reloaded, "a:b"));
}

static void
test_file_mode (Fixture       *fixture,
                gconstpointer  user_data)
{
  g_autoptr (GchatdUserStore) store = load (fixture);
  g_autoptr (GchatdUserStore) reloaded = NULL;
  g_autoptr (GError) error = NULL;
  mode_t saved_umask = umask (0);

  /* Even with an empty umask, the file is for its owner only. */
  error = add_and_wait (store, "alice");
  umask (saved_umask);
  g_assert_no_error (error);
  g_assert_cmphex (gchat_test_file_mode (fixture->path), ==, 0600);

  /* A file made readable by others (copied in by hand, say) is fixed when loaded. */
  g_assert_no_errno (g_chmod (fixture->path, 0644));
  reloaded = load (fixture);
  g_assert_cmphex (gchat_test_file_mode (fixture->path), ==, 0600);
  g_assert_cmpuint (gchatd_user_store_get_n_users (reloaded), ==, 1);
}

static void
test_hand_written (Fixture       *fixture,
                   gconstpointer  user_data)
{
  const char *contents = "{\n  \"users\" : [\n    " RECORD ("alice") ",\n    "
                         RECORD ("Bob.Smith_2-x") "\n  ],\n  \"version\" : 1\n}\n";
  g_autoptr (GError) error = NULL;
  g_autoptr (GchatdUserStore) store = NULL;
  g_autoptr (GchatdUserRecord) bob = NULL;
  g_autoptr (GPtrArray) records = NULL;
  guint8 zeros[GCHATD_USER_HASH_SIZE] = { 0 };

  g_file_set_contents (fixture->path, contents, -1, &error);
  g_assert_no_error (error);
  store = load (fixture);

  records = gchatd_user_store_dup_records (store);
  g_assert_cmpuint (records->len, ==, 2);
  g_assert_cmpstr (gchatd_user_record_get_name (records->pdata[0]), ==, "alice");
  bob = gchatd_user_store_lookup (store, "BOB.smith_2-X");
  g_assert_nonnull (bob);
  g_assert_cmpstr (gchatd_user_record_get_name (bob), ==, "Bob.Smith_2-x");
  g_assert_cmpmem (gchatd_user_record_get_salt (bob), GCHATD_USER_SALT_SIZE, zeros,
                   GCHATD_USER_SALT_SIZE);
  g_assert_cmpmem (gchatd_user_record_get_hash (bob), GCHATD_USER_HASH_SIZE, zeros,
                   GCHATD_USER_HASH_SIZE);
  g_assert_cmpint (gchatd_user_record_get_created (bob), ==, 1700000000);
  g_assert_cmpuint (gchatd_user_record_get_params (bob)->memory_kib, ==, 19456);
}

static void
test_name_taken (Fixture       *fixture,
                 gconstpointer  user_data)
{
  g_autoptr (GchatdUserStore) store = load (fixture);
  g_autoptr (GchatdUserStore) reloaded = NULL;
  g_autoptr (GchatdUserRecord) before = NULL;
  g_autoptr (GchatdUserRecord) after = NULL;
  g_autoptr (GBytes) file_before = NULL;
  g_autoptr (GBytes) file_after = NULL;
  g_autoptr (GError) error = NULL;

  error = add_and_wait (store, "bob");
  g_assert_no_error (error);
  before = gchatd_user_store_lookup (store, "bob");
  file_before = gchat_test_read_bytes (fixture->path);

  error = add_and_wait (store, "Bob");
  g_assert_error (error, GCHATD_USER_STORE_ERROR, GCHATD_USER_STORE_ERROR_NAME_TAKEN);
  g_assert_nonnull (strstr (error->message, "user name “Bob” is already taken"));
  g_clear_error (&error);

  /* Nothing was written, and bob is as he was, in memory and on disk. */
  g_assert_cmpuint (gchatd_user_store_get_n_writes (store), ==, 1);
  g_assert_cmpuint (gchatd_user_store_get_n_users (store), ==, 1);
  file_after = gchat_test_read_bytes (fixture->path);
  g_assert_true (g_bytes_equal (file_before, file_after));
  after = gchatd_user_store_lookup (store, "BOB");
  g_assert_true (after == before);
  reloaded = load (fixture);
  g_clear_pointer (&after, gchatd_user_record_unref);
  after = gchatd_user_store_lookup (reloaded, "bob");
  assert_same_record (before, after);
}

/* A name is reserved from the call on, before it is on disk: the second add loses at once. */
static void
test_name_taken_while_pending (Fixture       *fixture,
                               gconstpointer  user_data)
{
  g_autoptr (GchatdUserStore) store = load (fixture);
  g_auto (Results) first = { 0 };
  g_auto (Results) second = { 0 };

  start_add (store, "carol", &first);
  start_add (store, "CAROL", &second);
  wait_for (&second, 1);
  g_assert_error (second.last_error, GCHATD_USER_STORE_ERROR, GCHATD_USER_STORE_ERROR_NAME_TAKEN);
  wait_for (&first, 1);
  g_assert_no_error (first.last_error);
  g_assert_cmpuint (gchatd_user_store_get_n_users (store), ==, 1);
}

/* A file of @n accounts "old00000"… */
static void
write_old_accounts (Fixture *fixture,
                    guint    n)
{
  g_autoptr (GString) text = g_string_new ("{\"version\":1,\"users\":[");
  g_autoptr (GError) error = NULL;

  for (guint i = 0; i < n; i++)
    g_string_append_printf (text, "%s" RECORD_WITH ("\"old%05u\"", PARAMS, SALT_B64, HASH_B64, "1"),
                            i == 0 ? "" : ",\n", i);
  g_string_append (text, "]}");
  g_file_set_contents (fixture->path, text->str, text->len, &error);
  g_assert_no_error (error);
}

static void
test_group_commit (Fixture       *fixture,
                   gconstpointer  user_data)
{
  const guint n_old = 5000;
  g_autoptr (GchatdUserStore) store = NULL;
  g_autoptr (GchatdUserStore) reloaded = NULL;
  g_auto (Results) results = { 0 };
  g_auto (GStrv) names = g_new0 (char *, 501);
  guint8 salt[GCHATD_USER_SALT_SIZE], hash[GCHATD_USER_HASH_SIZE];
  GchatArgon2Params params;
  const guint n = 500;
  guint n_writes;

  write_old_accounts (fixture, n_old);
  store = load (fixture);
  gchat_argon2_params_init_default (&params);
  gchat_random_bytes (salt, sizeof salt);
  gchat_random_bytes (hash, sizeof hash);
  for (guint i = 0; i < n; i++)
    names[i] = g_strdup_printf ("user%03u", i);

  /* The first add starts a save, which the older accounts make take a while; the rest come in a
   * burst with no main loop iteration in between, so they pile up behind it. */
  for (guint i = 0; i < n; i++)
    {
      gchatd_user_store_add_async (store, names[i], &params, salt, sizeof salt, hash,
                                   sizeof hash, NULL, on_added, &results);
      if (i == 0)
        g_usleep (2 * G_TIME_SPAN_MILLISECOND);
    }
  wait_for (&results, n);
  g_assert_no_error (results.last_error);
  g_assert_cmpuint (results.n_failed, ==, 0);

  n_writes = gchatd_user_store_get_n_writes (store);
  g_test_message ("%u adds took %u writes", n, n_writes);
  g_assert_cmpuint (n_writes, >=, 1);
  g_assert_cmpuint (n_writes, <, n / 10);
  g_assert_cmpuint (gchatd_user_store_get_n_users (store), ==, n_old + n);

  reloaded = load (fixture);
  g_assert_cmpuint (gchatd_user_store_get_n_users (reloaded), ==, n_old + n);
  for (guint i = 0; i < n; i += 49)
    {
      g_autofree char *name = g_ascii_strup (names[i], -1);
      g_autoptr (GchatdUserRecord) record = gchatd_user_store_lookup (reloaded, name);

      g_assert_nonnull (record);
    }
}

/* Durability does not wait for the main loop: after a flush the file holds every add, though
 * no callback has run yet. */
static void
test_flush (Fixture       *fixture,
            gconstpointer  user_data)
{
  g_autoptr (GchatdUserStore) store = load (fixture);
  g_autoptr (GchatdUserStore) reloaded = NULL;
  g_autoptr (GError) error = NULL;
  g_auto (Results) results = { 0 };

  for (guint i = 0; i < 20; i++)
    {
      g_autofree char *name = g_strdup_printf ("u%u", i);

      start_add (store, name, &results);
    }
  g_assert_true (gchatd_user_store_flush_sync (store, 30000, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (results.n_done, ==, 0);
  g_assert_cmpuint (gchatd_user_store_get_n_users (store), ==, 20);

  reloaded = load (fixture);
  g_assert_cmpuint (gchatd_user_store_get_n_users (reloaded), ==, 20);

  wait_for (&results, 20);
  g_assert_cmpuint (results.n_failed, ==, 0);
  g_assert_true (gchatd_user_store_flush_sync (store, 0, &error));
}

/* Dropping the store while an add is being saved neither loses the add nor frees the store
 * under the writer. */
static void
test_unref_while_saving (Fixture       *fixture,
                         gconstpointer  user_data)
{
  GchatdUserStore *store = load (fixture);
  g_autoptr (GchatdUserStore) reloaded = NULL;
  g_autoptr (GchatdUserRecord) record = NULL;
  g_auto (Results) results = { 0 };

  g_object_add_weak_pointer (G_OBJECT (store), (gpointer *) &store);
  start_add (store, "dave", &results);
  start_add (store, "erin", &results);
  g_object_unref (store);
  g_assert_nonnull (store);

  wait_for (&results, 2);
  g_assert_no_error (results.last_error);
  /* The last task gave the last reference back when its callback was done. */
  while (g_main_context_pending (NULL))
    g_main_context_iteration (NULL, FALSE);
  g_assert_null (store);

  reloaded = load (fixture);
  record = gchatd_user_store_lookup (reloaded, "erin");
  g_assert_nonnull (record);
}

static void
test_refused_adds (Fixture       *fixture,
                   gconstpointer  user_data)
{
  g_autoptr (GchatdUserStore) store = load (fixture);
  g_autoptr (GCancellable) cancellable = g_cancellable_new ();
  GchatArgon2Params weak = { .memory_kib = 1, .iterations = 1, .parallelism = 1 };
  GchatArgon2Params params;
  g_auto (Results) results = { 0 };
  g_autoptr (GError) error = NULL;

  gchat_argon2_params_init_default (&params);
  g_cancellable_cancel (cancellable);
  start_add_with (store, "frank", &params, cancellable, &results);
  wait_for (&results, 1);
  g_assert_error (results.last_error, G_IO_ERROR, G_IO_ERROR_CANCELLED);

  start_add_with (store, "grace", &weak, NULL, &results);
  wait_for (&results, 2);
  g_assert_error (results.last_error, GCHATD_USER_STORE_ERROR,
                  GCHATD_USER_STORE_ERROR_INVALID_ARGUMENT);

  start_add (store, "a:b", &results);
  wait_for (&results, 3);
  g_assert_error (results.last_error, GCHATD_USER_STORE_ERROR,
                  GCHATD_USER_STORE_ERROR_INVALID_NAME);

  /* None of them reserved its name or wrote anything. */
  g_assert_false (g_file_test (fixture->path, G_FILE_TEST_EXISTS));
  error = add_and_wait (store, "frank");
  g_assert_no_error (error);
  error = add_and_wait (store, "grace");
  g_assert_no_error (error);
}

/* Corrupt files -------------------------------------------------------------------------------- */

typedef struct {
  const char *what;
  const char *contents;
  gssize      len;
} CorruptCase;

static const CorruptCase corrupt_cases[] = {
  { "truncated", "{\"version\":1,\"users\":[" RECORD ("alice"), -1 },
  { "cut inside a string", "{\"version\":1,\"users\":[{\"name\":\"ali", -1 },
  { "empty", "", 0 },
  { "blank", " \n", -1 },
  { "not JSON", "alice:secret\n", -1 },
  { "root is an array", "[" RECORD ("alice") "]", -1 },
  { "version is a string", "{\"version\":\"1\",\"users\":[]}", -1 },
  { "version 2", "{\"version\":2,\"users\":[]}", -1 },
  { "version missing", "{\"users\":[]}", -1 },
  { "users is an object", "{\"version\":1,\"users\":{}}", -1 },
  { "unknown top-level member", "{\"version\":1,\"users\":[],\"admin\":\"x\"}", -1 },
  { "record is a number", FILE_OF ("1"), -1 },
  { "name is a number", FILE_OF (RECORD_WITH ("5", PARAMS, SALT_B64, HASH_B64, "1")), -1 },
  { "m is a string",
    FILE_OF (RECORD_WITH ("\"a\"", "{\"m\":\"19456\",\"t\":2,\"p\":1}", SALT_B64, HASH_B64, "1")),
    -1 },
  { "m too small",
    FILE_OF (RECORD_WITH ("\"a\"", "{\"m\":1,\"t\":2,\"p\":1}", SALT_B64, HASH_B64, "1")), -1 },
  { "p zero",
    FILE_OF (RECORD_WITH ("\"a\"", "{\"m\":19456,\"t\":2,\"p\":0}", SALT_B64, HASH_B64, "1")),
    -1 },
  { "m negative",
    FILE_OF (RECORD_WITH ("\"a\"", "{\"m\":-19456,\"t\":2,\"p\":1}", SALT_B64, HASH_B64, "1")),
    -1 },
  { "argon2 member missing",
    FILE_OF (RECORD_WITH ("\"a\"", "{\"m\":19456,\"t\":2}", SALT_B64, HASH_B64, "1")), -1 },
  { "created is a float", FILE_OF (RECORD_WITH ("\"a\"", PARAMS, SALT_B64, HASH_B64, "1.5")), -1 },
  { "created negative", FILE_OF (RECORD_WITH ("\"a\"", PARAMS, SALT_B64, HASH_B64, "-1")), -1 },
  { "created wraps",
    FILE_OF (RECORD_WITH ("\"a\"", PARAMS, SALT_B64, HASH_B64, "18446744073709551617")), -1 },
  { "salt too short", FILE_OF (RECORD_WITH ("\"a\"", PARAMS, "\"AAAA\"", HASH_B64, "1")), -1 },
  { "salt not base64",
    FILE_OF (RECORD_WITH ("\"a\"", PARAMS, "\"!!!!!!!!!!!!!!!!!!!!!!==\"", HASH_B64, "1")), -1 },
  { "salt not canonical",
    FILE_OF (RECORD_WITH ("\"a\"", PARAMS, "\"AAAAAAAAAAAAAAAAAAAAAB==\"", HASH_B64, "1")), -1 },
  { "hash of 33 bytes",
    FILE_OF (RECORD_WITH ("\"a\"", PARAMS, SALT_B64,
                          "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"", "1")),
    -1 },
  { "hash is null", FILE_OF (RECORD_WITH ("\"a\"", PARAMS, SALT_B64, "null", "1")), -1 },
  { "invalid name", FILE_OF (RECORD ("a:b")), -1 },
  { "control character in name", FILE_OF (RECORD ("a\\nb")), -1 },
  { "duplicate name", FILE_OF (RECORD ("bob") "," RECORD ("alice") "," RECORD ("Bob")), -1 },
  { "duplicate member",
    FILE_OF ("{\"name\":\"a\",\"name\":\"b\",\"argon2\":" PARAMS ",\"salt\":" SALT_B64
             ",\"hash\":" HASH_B64 ",\"created\":1}"),
    -1 },
  { "unknown member",
    FILE_OF ("{\"name\":\"a\",\"password\":\"x\",\"argon2\":" PARAMS ",\"salt\":" SALT_B64
             ",\"hash\":" HASH_B64 ",\"created\":1}"),
    -1 },
  { "missing member", FILE_OF ("{\"name\":\"a\",\"argon2\":" PARAMS ",\"salt\":" SALT_B64 "}"),
    -1 },
  { "data after the end", FILE_OF (RECORD ("alice")) "\n{}", -1 },
  { "garbage after the end", FILE_OF (RECORD ("alice")) " x", -1 },
  { "invalid UTF-8", FILE_OF (RECORD ("al\xffice")), -1 },
  { "NUL byte", "{\"version\":1,\0\"users\":[]}", 25 },
};

/* json-glib's parser recurses; a deep file must be refused before it reaches it. */
static char *
make_deep_file (gsize *len)
{
  const gsize depth = 200000;
  char *contents = g_malloc (depth);

  memset (contents, '[', depth);
  *len = depth;

  return contents;
}

static void
check_corrupt (Fixture    *fixture,
               const char *what,
               const char *contents,
               gsize       len)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GchatdUserStore) store = NULL;
  g_autoptr (GBytes) before = g_bytes_new (contents, len);
  g_autoptr (GBytes) after = NULL;
  g_autofree char *folder = NULL;

  g_file_set_contents (fixture->path, contents, len, &error);
  g_assert_no_error (error);
  g_assert_no_errno (g_chmod (fixture->path, 0644));

  store = gchatd_user_store_new (fixture->path, &error);
  g_test_message ("%s: %s", what, error != NULL ? error->message : "(loaded)");
  g_assert_null (store);
  g_assert_error (error, GCHATD_USER_STORE_ERROR, GCHATD_USER_STORE_ERROR_CORRUPT);
  g_assert_nonnull (strstr (error->message, fixture->path));
  g_assert_true (strstr (error->message, "line ") != NULL
                 || strstr (error->message, "top level") != NULL);

  /* Left exactly as it was: same bytes, same mode, nothing beside it. */
  after = gchat_test_read_bytes (fixture->path);
  g_assert_true (g_bytes_equal (before, after));
  g_assert_cmphex (gchat_test_file_mode (fixture->path), ==, 0644);
  folder = gchat_test_list_folder (fixture->dir);
  g_assert_cmpstr (folder, ==, "users.json");
}

static void
test_corrupt (Fixture       *fixture,
              gconstpointer  user_data)
{
  g_autofree char *deep = NULL;
  gsize deep_len = 0;

  for (gsize i = 0; i < G_N_ELEMENTS (corrupt_cases); i++)
    {
      const CorruptCase *c = &corrupt_cases[i];

      check_corrupt (fixture, c->what, c->contents, c->len >= 0 ? (gsize) c->len
                                                                 : strlen (c->contents));
    }

  deep = make_deep_file (&deep_len);
  check_corrupt (fixture, "nested 200000 deep", deep, deep_len);
}

/* The positions point where the problem is. */
static void
test_corrupt_positions (Fixture       *fixture,
                        gconstpointer  user_data)
{
  const char *syntax = "{\n  \"version\": 1,\n  \"users\": [\n    {\"name\": \"a\",}\n  ]\n}\n";
  const char *record = "{\n  \"version\": 1,\n  \"users\": [\n    " RECORD ("alice") ",\n    "
                       RECORD ("Alice") "\n  ]\n}\n";
  g_autoptr (GError) error = NULL;
  g_autoptr (GchatdUserStore) store = NULL;

  g_file_set_contents (fixture->path, syntax, -1, &error);
  g_assert_no_error (error);
  store = gchatd_user_store_new (fixture->path, &error);
  g_assert_error (error, GCHATD_USER_STORE_ERROR, GCHATD_USER_STORE_ERROR_CORRUPT);
  g_assert_nonnull (strstr (error->message, "line 4,"));
  g_clear_error (&error);

  g_file_set_contents (fixture->path, record, -1, &error);
  g_assert_no_error (error);
  store = gchatd_user_store_new (fixture->path, &error);
  g_assert_error (error, GCHATD_USER_STORE_ERROR, GCHATD_USER_STORE_ERROR_CORRUPT);
  g_assert_nonnull (strstr (error->message, "user record 2 (ending on line 5)"));
  g_assert_nonnull (strstr (error->message, "“Alice” is already used by user record 1"));
}

static void
test_not_a_file (Fixture       *fixture,
                 gconstpointer  user_data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GchatdUserStore) store = NULL;

  g_assert_no_errno (g_mkdir (fixture->path, 0700));
  store = gchatd_user_store_new (fixture->path, &error);
  g_assert_null (store);
  g_assert_error (error, GCHATD_USER_STORE_ERROR, GCHATD_USER_STORE_ERROR_IO);
  g_assert_nonnull (strstr (error->message, fixture->path));
  g_assert_true (g_file_test (fixture->path, G_FILE_TEST_IS_DIR));
}

/* Failed saves --------------------------------------------------------------------------------- */

/* What must hold after a failed add of @name: the error names the file, the name is free, the
 * file is as it was (@before, or still missing) and no temporary file is left. */
static void
assert_failed_cleanly (Fixture         *fixture,
                       GchatdUserStore *store,
                       GError          *error,
                       const char      *name,
                       guint            n_users)
{
  g_autoptr (GchatdUserRecord) record = gchatd_user_store_lookup (store, name);

  g_test_message ("%s", error->message);
  g_assert_error (error, GCHATD_USER_STORE_ERROR, GCHATD_USER_STORE_ERROR_IO);
  g_assert_nonnull (strstr (error->message, "Could not save the user database"));
  g_assert_nonnull (strstr (error->message, fixture->path));
  g_assert_null (record);
  g_assert_cmpuint (gchatd_user_store_get_n_users (store), ==, n_users);
}

/* The rename fails because a folder now stands where the file goes. Unlike a read-only folder,
 * this fails for root too. */
static void
test_save_fails_on_rename (Fixture       *fixture,
                           gconstpointer  user_data)
{
  g_autoptr (GchatdUserStore) store = load (fixture);
  g_autoptr (GError) error = NULL;
  g_autofree char *folder = NULL;

  g_assert_no_errno (g_mkdir (fixture->path, 0700));
  error = add_and_wait (store, "bob");
  assert_failed_cleanly (fixture, store, error, "bob", 0);
  g_clear_error (&error);
  folder = gchat_test_list_folder (fixture->dir);
  g_assert_cmpstr (folder, ==, "users.json");
  g_assert_true (g_file_test (fixture->path, G_FILE_TEST_IS_DIR));

  /* The name was freed, so it can be signed up once saving works again. */
  g_assert_no_errno (g_rmdir (fixture->path));
  error = add_and_wait (store, "BOB");
  g_assert_no_error (error);
  g_assert_cmpuint (gchatd_user_store_get_n_users (store), ==, 1);
}

/* The write fails with EFBIG under a file-size limit: a full disk, in effect, that binds root
 * too. The old file must come through whole. */
static void
test_save_fails_on_write (Fixture       *fixture,
                          gconstpointer  user_data)
{
  g_autoptr (GchatdUserStore) store = load (fixture);
  g_autoptr (GchatdUserStore) reloaded = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) before = NULL;
  g_autoptr (GBytes) after = NULL;
  g_autofree char *folder = NULL;
  struct rlimit saved, limit;
  void (*saved_handler) (int);

  error = add_and_wait (store, "alice");
  g_assert_no_error (error);
  before = gchat_test_read_bytes (fixture->path);

  g_assert_no_errno (getrlimit (RLIMIT_FSIZE, &saved));
  limit = saved;
  limit.rlim_cur = g_bytes_get_size (before);
  saved_handler = signal (SIGXFSZ, SIG_IGN);
  g_assert_no_errno (setrlimit (RLIMIT_FSIZE, &limit));
  error = add_and_wait (store, "bob");
  g_assert_no_errno (setrlimit (RLIMIT_FSIZE, &saved));
  signal (SIGXFSZ, saved_handler);

  assert_failed_cleanly (fixture, store, error, "bob", 1);
  g_clear_error (&error);
  after = gchat_test_read_bytes (fixture->path);
  g_assert_true (g_bytes_equal (before, after));
  folder = gchat_test_list_folder (fixture->dir);
  g_assert_cmpstr (folder, ==, "users.json");

  error = add_and_wait (store, "bob");
  g_assert_no_error (error);
  reloaded = load (fixture);
  g_assert_cmpuint (gchatd_user_store_get_n_users (reloaded), ==, 2);
}

/* Replaces and removes ------------------------------------------------------------------------ */

static void
on_replaced (GObject      *source,
             GAsyncResult *result,
             gpointer      user_data)
{
  Results *results = user_data;
  g_autoptr (GError) error = NULL;

  if (!gchatd_user_store_replace_finish (GCHATD_USER_STORE (source), result, &error))
    {
      results->n_failed++;
      g_clear_error (&results->last_error);
      results->last_error = g_steal_pointer (&error);
    }
  results->n_done++;
}

static void
on_removed (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  Results *results = user_data;
  g_autoptr (GError) error = NULL;

  if (!gchatd_user_store_remove_finish (GCHATD_USER_STORE (source), result, &error))
    {
      results->n_failed++;
      g_clear_error (&results->last_error);
      results->last_error = g_steal_pointer (&error);
    }
  results->n_done++;
}

/* Starts replacing @name's secret with random bytes under @params; the salt goes to @salt. */
static void
start_replace (GchatdUserStore         *store,
               const char              *name,
               const GchatArgon2Params *params,
               guint8                  *salt,
               Results                 *results)
{
  guint8 hash[GCHATD_USER_HASH_SIZE];

  gchat_random_bytes (salt, GCHATD_USER_SALT_SIZE);
  gchat_random_bytes (hash, sizeof hash);
  gchatd_user_store_replace_async (store, name, params, salt, GCHATD_USER_SALT_SIZE, hash,
                                   sizeof hash, NULL, on_replaced, results);
}

static GError *
replace_and_wait (GchatdUserStore *store,
                  const char      *name)
{
  g_auto (Results) results = { 0 };
  guint8 salt[GCHATD_USER_SALT_SIZE];
  GchatArgon2Params params;

  gchat_argon2_params_init_default (&params);
  start_replace (store, name, &params, salt, &results);
  wait_for (&results, 1);

  return g_steal_pointer (&results.last_error);
}

static GError *
remove_and_wait (GchatdUserStore *store,
                 const char      *name)
{
  g_auto (Results) results = { 0 };

  gchatd_user_store_remove_async (store, name, NULL, on_removed, &results);
  wait_for (&results, 1);

  return g_steal_pointer (&results.last_error);
}

static void
assert_added (GchatdUserStore *store,
              const char      *name)
{
  g_autoptr (GError) error = add_and_wait (store, name);

  g_assert_no_error (error);
}

static void
assert_removed (GchatdUserStore *store,
                const char      *name)
{
  g_autoptr (GError) error = remove_and_wait (store, name);

  g_assert_no_error (error);
}

static void
test_replace_and_reload (Fixture       *fixture,
                         gconstpointer  user_data)
{
  g_autoptr (GchatdUserStore) store = load (fixture);
  g_autoptr (GchatdUserStore) reloaded = NULL;
  g_autoptr (GchatdUserRecord) before = NULL;
  g_autoptr (GchatdUserRecord) after = NULL;
  g_autoptr (GchatdUserRecord) found = NULL;
  g_autoptr (GPtrArray) records = NULL;
  g_auto (Results) results = { 0 };
  GchatArgon2Params params = { .memory_kib = 4096, .iterations = 3, .parallelism = 2 };
  guint8 salt[GCHATD_USER_SALT_SIZE];

  assert_added (store, "Alice");
  assert_added (store, "bob");
  before = gchatd_user_store_lookup (store, "alice");

  start_replace (store, "ALICE", &params, salt, &results);
  wait_for (&results, 1);
  g_assert_no_error (results.last_error);
  g_assert_cmpuint (gchatd_user_store_get_n_writes (store), ==, 3);

  /* The stored spelling, the creation time and the place in the file stay; the secret is new. */
  after = gchatd_user_store_lookup (store, "alice");
  g_assert_true (after != before);
  g_assert_cmpstr (gchatd_user_record_get_name (after), ==, "Alice");
  g_assert_cmpint (gchatd_user_record_get_created (after), ==,
                   gchatd_user_record_get_created (before));
  g_assert_cmpuint (gchatd_user_record_get_params (after)->memory_kib, ==, 4096);
  g_assert_cmpmem (gchatd_user_record_get_salt (after), GCHATD_USER_SALT_SIZE, salt, sizeof salt);
  g_assert_cmpuint (gchatd_user_store_get_n_users (store), ==, 2);
  records = gchatd_user_store_dup_records (store);
  g_assert_true (records->pdata[0] == after);

  reloaded = load (fixture);
  found = gchatd_user_store_lookup (reloaded, "alice");
  assert_same_record (after, found);
  g_assert_cmpuint (gchatd_user_store_get_n_users (reloaded), ==, 2);
}

static void
test_remove_and_reload (Fixture       *fixture,
                        gconstpointer  user_data)
{
  g_autoptr (GchatdUserStore) store = load (fixture);
  g_autoptr (GchatdUserStore) reloaded = NULL;
  g_autoptr (GPtrArray) records = NULL;
  g_autoptr (GError) error = NULL;
  const char *names[] = { "alice", "Bob", "carol" };

  for (gsize i = 0; i < G_N_ELEMENTS (names); i++)
    assert_added (store, names[i]);

  assert_removed (store, "BOB");
  g_assert_null (gchatd_user_store_lookup (store, "bob"));
  g_assert_cmpuint (gchatd_user_store_get_n_users (store), ==, 2);
  g_assert_cmpuint (gchatd_user_store_get_n_writes (store), ==, 4);

  reloaded = load (fixture);
  records = gchatd_user_store_dup_records (reloaded);
  g_assert_cmpuint (records->len, ==, 2);
  g_assert_cmpstr (gchatd_user_record_get_name (records->pdata[0]), ==, "alice");
  g_assert_cmpstr (gchatd_user_record_get_name (records->pdata[1]), ==, "carol");

  /* The name is free again, and a second remove finds nothing to remove. */
  error = remove_and_wait (store, "bob");
  g_assert_error (error, GCHATD_USER_STORE_ERROR, GCHATD_USER_STORE_ERROR_UNKNOWN_USER);
  g_assert_nonnull (strstr (error->message, "no user named “bob”"));
  g_clear_error (&error);
  assert_added (store, "bob");
  g_assert_cmpuint (gchatd_user_store_get_n_users (store), ==, 3);
}

static void
test_unknown_user (Fixture       *fixture,
                   gconstpointer  user_data)
{
  g_autoptr (GchatdUserStore) store = NULL;
  g_autoptr (GError) error = NULL;
  g_auto (Results) pending = { 0 };
  g_auto (Results) replaced = { 0 };
  g_auto (Results) removed = { 0 };
  guint8 salt[GCHATD_USER_SALT_SIZE];
  GchatArgon2Params params;

  /* Older accounts make each save take a while, so that the add below is still being saved
   * when the replace and the remove are asked for. */
  write_old_accounts (fixture, 5000);
  store = load (fixture);
  gchat_argon2_params_init_default (&params);
  error = replace_and_wait (store, "nobody");
  g_assert_error (error, GCHATD_USER_STORE_ERROR, GCHATD_USER_STORE_ERROR_UNKNOWN_USER);
  g_clear_error (&error);
  error = remove_and_wait (store, "a:b");
  g_assert_error (error, GCHATD_USER_STORE_ERROR, GCHATD_USER_STORE_ERROR_INVALID_NAME);
  g_clear_error (&error);

  /* An account whose add is not durable yet cannot be changed: it does not exist yet. */
  start_add (store, "dave", &pending);
  start_replace (store, "dave", &params, salt, &replaced);
  gchatd_user_store_remove_async (store, "dave", NULL, on_removed, &removed);
  wait_for (&pending, 1);
  wait_for (&replaced, 1);
  wait_for (&removed, 1);
  g_assert_no_error (pending.last_error);
  g_assert_error (replaced.last_error, GCHATD_USER_STORE_ERROR,
                  GCHATD_USER_STORE_ERROR_UNKNOWN_USER);
  g_assert_error (removed.last_error, GCHATD_USER_STORE_ERROR,
                  GCHATD_USER_STORE_ERROR_UNKNOWN_USER);
  g_assert_cmpuint (gchatd_user_store_get_n_writes (store), ==, 1);
  g_assert_cmpuint (gchatd_user_store_get_n_users (store), ==, 5001);
}

/* Changes are applied in the order they were asked for, whatever batches they land in. */
static void
test_change_order (Fixture       *fixture,
                   gconstpointer  user_data)
{
  const guint n_old = 5000;
  g_autoptr (GchatdUserStore) store = NULL;
  g_autoptr (GchatdUserStore) reloaded = NULL;
  g_auto (Results) first = { 0 };
  g_auto (Results) second = { 0 };
  g_auto (Results) readd = { 0 };
  guint8 salt[GCHATD_USER_SALT_SIZE];
  GchatArgon2Params params;

  /* As in test_unknown_user(): each save takes long enough for the next change to come in. */
  write_old_accounts (fixture, n_old);
  store = load (fixture);
  gchat_argon2_params_init_default (&params);
  assert_added (store, "erin");
  assert_added (store, "frank");

  /* Replace then remove: both happen. */
  start_replace (store, "erin", &params, salt, &first);
  gchatd_user_store_remove_async (store, "erin", NULL, on_removed, &second);
  wait_for (&first, 1);
  wait_for (&second, 1);
  g_assert_no_error (first.last_error);
  g_assert_no_error (second.last_error);
  g_assert_null (gchatd_user_store_lookup (store, "erin"));

  /* Remove then replace: the replace finds no account; an add made meanwhile finds the name
   * still taken, since the removal is not durable when it is asked for. */
  gchatd_user_store_remove_async (store, "frank", NULL, on_removed, &first);
  start_add (store, "frank", &readd);
  start_replace (store, "frank", &params, salt, &second);
  wait_for (&first, 2);
  wait_for (&second, 2);
  wait_for (&readd, 1);
  g_assert_no_error (first.last_error);
  g_assert_error (second.last_error, GCHATD_USER_STORE_ERROR,
                  GCHATD_USER_STORE_ERROR_UNKNOWN_USER);
  g_assert_error (readd.last_error, GCHATD_USER_STORE_ERROR, GCHATD_USER_STORE_ERROR_NAME_TAKEN);

  g_assert_cmpuint (gchatd_user_store_get_n_users (store), ==, n_old);
  reloaded = load (fixture);
  g_assert_cmpuint (gchatd_user_store_get_n_users (reloaded), ==, n_old);
}

/* Under a file-size limit of one byte no save can write its file: a failed replace or remove
 * leaves the account as it was, in memory and on disk. */
static void
test_change_fails_cleanly (Fixture       *fixture,
                           gconstpointer  user_data)
{
  g_autoptr (GchatdUserStore) store = load (fixture);
  g_autoptr (GchatdUserRecord) before = NULL;
  g_autoptr (GchatdUserRecord) after = NULL;
  g_autoptr (GError) replace_error = NULL;
  g_autoptr (GError) remove_error = NULL;
  g_autoptr (GBytes) file_before = NULL;
  g_autoptr (GBytes) file_after = NULL;
  g_autofree char *folder = NULL;
  struct rlimit saved, limit;
  void (*saved_handler) (int);

  assert_added (store, "grace");
  before = gchatd_user_store_lookup (store, "grace");
  file_before = gchat_test_read_bytes (fixture->path);

  g_assert_no_errno (getrlimit (RLIMIT_FSIZE, &saved));
  limit = saved;
  limit.rlim_cur = 1;
  saved_handler = signal (SIGXFSZ, SIG_IGN);
  g_assert_no_errno (setrlimit (RLIMIT_FSIZE, &limit));
  replace_error = replace_and_wait (store, "grace");
  remove_error = remove_and_wait (store, "grace");
  g_assert_no_errno (setrlimit (RLIMIT_FSIZE, &saved));
  signal (SIGXFSZ, saved_handler);

  for (GError *e = replace_error; e != NULL; e = e == replace_error ? remove_error : NULL)
    {
      g_test_message ("%s", e->message);
      g_assert_error (e, GCHATD_USER_STORE_ERROR, GCHATD_USER_STORE_ERROR_IO);
      g_assert_nonnull (strstr (e->message, fixture->path));
    }
  after = gchatd_user_store_lookup (store, "grace");
  g_assert_true (after == before);
  g_assert_cmpuint (gchatd_user_store_get_n_users (store), ==, 1);
  g_assert_cmpuint (gchatd_user_store_get_n_writes (store), ==, 1);
  file_after = gchat_test_read_bytes (fixture->path);
  g_assert_true (g_bytes_equal (file_before, file_after));
  folder = gchat_test_list_folder (fixture->dir);
  g_assert_cmpstr (folder, ==, "users.json");

  assert_removed (store, "grace");
  g_assert_cmpuint (gchatd_user_store_get_n_users (store), ==, 0);
}

/* Names and passwords -------------------------------------------------------------------------- */

static void
test_name_validate (void)
{
  const struct {
    const char *name;
    gboolean    valid;
  } cases[] = {
    { "a", TRUE },
    { "bob", TRUE },
    { "Bob.Smith_2-x", TRUE },
    { "7of9", TRUE },
    { "a.", TRUE },
    { "abcdefghijklmnopqrstuvwxyz012345", TRUE }, /* 32 */
    { "abcdefghijklmnopqrstuvwxyz0123456", FALSE }, /* 33 */
    { "", FALSE },
    { "a:b", FALSE },
    { "a,b", FALSE },
    { "é", FALSE },
    { "caf\xc3\xa9", FALSE },
    { " bob", FALSE },
    { "bob ", FALSE },
    { "b ob", FALSE },
    { "-bob", FALSE },
    { ".bob", FALSE },
    { "_bob", FALSE },
    { "bob\n", FALSE },
    { "bo\tb", FALSE },
    { "bob\x7f", FALSE },
    { "a/b", FALSE },
    { "a\"b", FALSE },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GError) error = NULL;
      gboolean valid = gchatd_user_name_validate (cases[i].name, &error);

      g_test_message ("“%s”: %s", cases[i].name, valid ? "valid" : error->message);
      g_assert_cmpint (valid, ==, cases[i].valid);
      if (valid)
        g_assert_no_error (error);
      else
        {
          g_assert_error (error, GCHATD_USER_STORE_ERROR, GCHATD_USER_STORE_ERROR_INVALID_NAME);
          g_assert_nonnull (strstr (error->message, "1–32 letters, digits"));
        }
    }
}

static void
test_password_validate (void)
{
  g_autofree char *buffer = g_malloc0 (1025);
  const struct {
    gsize    len;
    gboolean valid;
  } cases[] = { { 0, FALSE }, { 7, FALSE }, { 8, TRUE }, { 1024, TRUE }, { 1025, FALSE } };

  memset (buffer, 'x', 1025);
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GError) error = NULL;
      gboolean valid = gchatd_password_validate (buffer, cases[i].len, &error);

      g_assert_cmpint (valid, ==, cases[i].valid);
      if (valid)
        g_assert_no_error (error);
      else
        g_assert_error (error, GCHATD_USER_STORE_ERROR,
                        GCHATD_USER_STORE_ERROR_INVALID_PASSWORD);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

#define ADD_FIXTURE_TEST(path, func) \
  g_test_add (path, Fixture, NULL, fixture_set_up, func, fixture_tear_down)

  ADD_FIXTURE_TEST ("/user-store/missing-file", test_missing_file);
  ADD_FIXTURE_TEST ("/user-store/add-and-reload", test_add_and_reload);
  ADD_FIXTURE_TEST ("/user-store/file-mode", test_file_mode);
  ADD_FIXTURE_TEST ("/user-store/hand-written", test_hand_written);
  ADD_FIXTURE_TEST ("/user-store/name-taken", test_name_taken);
  ADD_FIXTURE_TEST ("/user-store/name-taken-while-pending", test_name_taken_while_pending);
  ADD_FIXTURE_TEST ("/user-store/group-commit", test_group_commit);
  ADD_FIXTURE_TEST ("/user-store/flush", test_flush);
  ADD_FIXTURE_TEST ("/user-store/unref-while-saving", test_unref_while_saving);
  ADD_FIXTURE_TEST ("/user-store/refused-adds", test_refused_adds);
  ADD_FIXTURE_TEST ("/user-store/corrupt", test_corrupt);
  ADD_FIXTURE_TEST ("/user-store/corrupt-positions", test_corrupt_positions);
  ADD_FIXTURE_TEST ("/user-store/not-a-file", test_not_a_file);
  ADD_FIXTURE_TEST ("/user-store/save-fails-on-rename", test_save_fails_on_rename);
  ADD_FIXTURE_TEST ("/user-store/save-fails-on-write", test_save_fails_on_write);
  ADD_FIXTURE_TEST ("/user-store/replace-and-reload", test_replace_and_reload);
  ADD_FIXTURE_TEST ("/user-store/remove-and-reload", test_remove_and_reload);
  ADD_FIXTURE_TEST ("/user-store/unknown-user", test_unknown_user);
  ADD_FIXTURE_TEST ("/user-store/change-order", test_change_order);
  ADD_FIXTURE_TEST ("/user-store/change-fails-cleanly", test_change_fails_cleanly);
  g_test_add_func ("/user-store/name-validate", test_name_validate);
  g_test_add_func ("/user-store/password-validate", test_password_validate);

  return g_test_run ();
}
