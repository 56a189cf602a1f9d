/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Tests GchatdMailbox on real files: reloads, modes, limits, removes, receipts, group commit,
 * corrupt files, failed saves and hostile user names. */

#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <gio/gio.h>
#include <glib/gstdio.h>

#include "gchat-test-util.h"

#include "gchatd-mailbox.h"

typedef struct {
  char *dir;
  char *folder;
} Fixture;

static void
fixture_set_up (Fixture       *fixture,
                gconstpointer  user_data)
{
  fixture->dir = gchat_test_make_dir ("test-mailbox");
  fixture->folder = g_build_filename (fixture->dir, "mailbox", NULL);
}

static void
fixture_tear_down (Fixture       *fixture,
                   gconstpointer  user_data)
{
  g_assert_true (gchat_test_remove_tree (fixture->dir));
  g_free (fixture->dir);
  g_free (fixture->folder);
}

static GchatdMailbox *
load (Fixture *fixture)
{
  g_autoptr (GError) error = NULL;
  GchatdMailbox *mailbox = gchatd_mailbox_new (fixture->folder, &error);

  g_assert_no_error (error);
  g_assert_nonnull (mailbox);
  return mailbox;
}

static char *
box_file (Fixture    *fixture,
          const char *name)
{
  return g_build_filename (fixture->folder, name, NULL);
}

/* Results of changes --------------------------------------------------------------------------- */

typedef struct {
  guint      n_done;
  guint      n_failed;
  GError    *last_error;
  GPtrArray *mail;     /* GchatdMail posted, in completion order */
  GPtrArray *removed;  /* what the last remove returned */
} Results;

static void
results_init (Results *results)
{
  memset (results, 0, sizeof *results);
  results->mail = g_ptr_array_new_with_free_func ((GDestroyNotify) gchatd_mail_unref);
}

static void
results_clear (Results *results)
{
  g_clear_error (&results->last_error);
  g_clear_pointer (&results->mail, g_ptr_array_unref);
  g_clear_pointer (&results->removed, g_ptr_array_unref);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Results, results_clear)

static void
note_error (Results *results,
            GError  *error)
{
  results->n_failed++;
  g_clear_error (&results->last_error);
  results->last_error = error;
}

static void
on_posted (GObject      *source,
           GAsyncResult *result,
           gpointer      user_data)
{
  Results *results = user_data;
  GError *error = NULL;
  GchatdMail *mail = gchatd_mailbox_post_finish (GCHATD_MAILBOX (source), result, &error);

  g_assert_true (g_main_context_is_owner (g_main_context_default ()));
  if (mail != NULL)
    g_ptr_array_add (results->mail, mail);
  else
    note_error (results, error);
  results->n_done++;
}

static void
on_removed (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  Results *results = user_data;
  GError *error = NULL;

  g_clear_pointer (&results->removed, g_ptr_array_unref);
  results->removed = gchatd_mailbox_remove_finish (GCHATD_MAILBOX (source), result, &error);
  if (results->removed == NULL)
    note_error (results, error);
  results->n_done++;
}

static void
on_receipt_added (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  Results *results = user_data;
  GError *error = NULL;

  if (!gchatd_mailbox_add_receipt_finish (GCHATD_MAILBOX (source), result, &error))
    note_error (results, error);
  results->n_done++;
}

static void
on_receipts_removed (GObject      *source,
                     GAsyncResult *result,
                     gpointer      user_data)
{
  Results *results = user_data;
  GError *error = NULL;

  g_clear_pointer (&results->removed, g_ptr_array_unref);
  results->removed =
    gchatd_mailbox_remove_receipts_finish (GCHATD_MAILBOX (source), result, &error);
  if (results->removed == NULL)
    note_error (results, error);
  results->n_done++;
}

static void
wait_for (Results *results,
          guint    n_done)
{
  while (results->n_done < n_done)
    g_main_context_iteration (NULL, TRUE);
}

static void
post (GchatdMailbox *mailbox,
      const char    *recipient,
      const char    *sender,
      guint64        msg_id,
      const char    *text,
      Results       *results)
{
  gchatd_mailbox_post_async (mailbox, recipient, sender, msg_id, text, strlen (text), NULL,
                             on_posted, results);
}

/* Posts one message and waits; returns its error, or NULL. */
static GError *
post_and_wait (GchatdMailbox *mailbox,
               const char    *recipient,
               const char    *text,
               gsize          len)
{
  g_auto (Results) results;

  results_init (&results);
  gchatd_mailbox_post_async (mailbox, recipient, "sender", 1, text, len, NULL, on_posted,
                             &results);
  wait_for (&results, 1);
  return g_steal_pointer (&results.last_error);
}

static void
assert_mail (GchatdMail *mail,
             const char *sender,
             const char *recipient,
             guint64     msg_id,
             const char *text)
{
  gsize len = 0;

  g_assert_cmpstr (gchatd_mail_get_sender (mail), ==, sender);
  g_assert_cmpstr (gchatd_mail_get_recipient (mail), ==, recipient);
  g_assert_cmpuint (gchatd_mail_get_msg_id (mail), ==, msg_id);
  g_assert_cmpstr (gchatd_mail_get_text (mail, &len), ==, text);
  g_assert_cmpuint (len, ==, strlen (text));
  g_assert_cmpint (gchatd_mail_get_queued (mail), >, 1700000000);
}

/* Tests ---------------------------------------------------------------------------------------- */

static const char *const texts[] = {
  "hello",
  "a \"quoted\" line\nand a second one\twith a tab, \\ and \x01",
  "caf\xc3\xa9 \xe2\x80\x94 \xf0\x9f\x98\x80",
};

static void
test_post_and_reload (Fixture       *fixture,
                      gconstpointer  user_data)
{
  g_autoptr (GchatdMailbox) mailbox = load (fixture);
  g_autoptr (GchatdMailbox) reloaded = NULL;
  g_autoptr (GPtrArray) held = NULL;
  g_autofree char *path = box_file (fixture, "alice.json");
  g_auto (Results) results;

  results_init (&results);
  g_assert_cmpuint (gchat_test_file_mode (fixture->folder), ==, 0700);
  post (mailbox, "Alice", "bob", G_MAXUINT64, texts[0], &results);
  post (mailbox, "alice", "Carol", 7, texts[1], &results);
  post (mailbox, "ALICE", "bob", 0, texts[2], &results);
  held = gchatd_mailbox_peek (mailbox, "alice");
  g_assert_cmpuint (held->len, ==, 0);
  wait_for (&results, 3);
  g_assert_cmpuint (results.n_failed, ==, 0);
  g_assert_cmpuint (gchatd_mail_get_id (g_ptr_array_index (results.mail, 0)), <,
                    gchatd_mail_get_id (g_ptr_array_index (results.mail, 2)));
  g_assert_cmpuint (gchat_test_file_mode (path), ==, 0600);

  reloaded = load (fixture);
  g_clear_pointer (&held, g_ptr_array_unref);
  held = gchatd_mailbox_peek (reloaded, "aLiCe");
  g_assert_cmpuint (held->len, ==, 3);
  assert_mail (g_ptr_array_index (held, 0), "bob", "Alice", G_MAXUINT64, texts[0]);
  assert_mail (g_ptr_array_index (held, 1), "Carol", "alice", 7, texts[1]);
  assert_mail (g_ptr_array_index (held, 2), "bob", "ALICE", 0, texts[2]);
  for (guint i = 0; i < 3; i++)
    g_assert_cmpuint (gchatd_mail_get_id (g_ptr_array_index (held, i)), ==,
                      gchatd_mail_get_id (g_ptr_array_index (results.mail, i)));
}

/* A folder made with a wide mode is made private when loaded. */
static void
test_folder_mode (Fixture       *fixture,
                  gconstpointer  user_data)
{
  g_autoptr (GchatdMailbox) mailbox = NULL;

  g_assert_no_errno (g_mkdir (fixture->folder, 0755));
  g_assert_no_errno (g_chmod (fixture->folder, 0755));
  mailbox = load (fixture);
  g_assert_cmpuint (gchat_test_file_mode (fixture->folder), ==, 0700);
}

static void
test_limit_count (Fixture       *fixture,
                  gconstpointer  user_data)
{
  g_autoptr (GchatdMailbox) mailbox = load (fixture);
  g_autoptr (GBytes) before = NULL;
  g_autoptr (GBytes) after = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *path = box_file (fixture, "bob.json");
  g_auto (Results) results;
  guint n_writes;

  results_init (&results);
  /* The limit counts posts not yet saved: the one past it is refused at once. */
  for (guint i = 0; i < GCHATD_MAILBOX_MAX_MESSAGES + 1; i++)
    post (mailbox, "bob", "alice", i, "x", &results);
  wait_for (&results, GCHATD_MAILBOX_MAX_MESSAGES + 1);
  g_assert_cmpuint (results.n_failed, ==, 1);
  g_assert_error (results.last_error, GCHATD_MAILBOX_ERROR, GCHATD_MAILBOX_ERROR_FULL);
  g_assert_nonnull (strstr (results.last_error->message, "The mailbox of “bob” is full"));

  before = gchat_test_read_bytes (path);
  n_writes = gchatd_mailbox_get_n_writes (mailbox);
  error = post_and_wait (mailbox, "BOB", "y", 1);
  g_assert_error (error, GCHATD_MAILBOX_ERROR, GCHATD_MAILBOX_ERROR_FULL);
  g_assert_cmpuint (gchatd_mailbox_get_n_writes (mailbox), ==, n_writes);
  after = gchat_test_read_bytes (path);
  g_assert_true (g_bytes_equal (before, after));
}

static void
test_limit_bytes (Fixture       *fixture,
                  gconstpointer  user_data)
{
  g_autoptr (GchatdMailbox) mailbox = load (fixture);
  g_autoptr (GchatdMailbox) reloaded = NULL;
  g_autoptr (GPtrArray) held = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *big = g_strnfill (GCHATD_MAILBOX_MAX_TEXT, 'a');
  g_auto (Results) results;
  guint n = GCHATD_MAILBOX_MAX_BYTES / GCHATD_MAILBOX_MAX_TEXT;
  guint n_writes;

  results_init (&results);
  for (guint i = 0; i < n; i++)
    gchatd_mailbox_post_async (mailbox, "carol", "bob", i, big, GCHATD_MAILBOX_MAX_TEXT, NULL,
                               on_posted, &results);
  wait_for (&results, n);
  g_assert_cmpuint (results.n_failed, ==, 0);

  n_writes = gchatd_mailbox_get_n_writes (mailbox);
  error = post_and_wait (mailbox, "carol", "z", 1);
  g_assert_error (error, GCHATD_MAILBOX_ERROR, GCHATD_MAILBOX_ERROR_FULL);
  g_assert_nonnull (strstr (error->message, "MiB"));
  g_assert_cmpuint (gchatd_mailbox_get_n_writes (mailbox), ==, n_writes);

  /* A full box still loads. */
  reloaded = load (fixture);
  held = gchatd_mailbox_peek (reloaded, "carol");
  g_assert_cmpuint (held->len, ==, n);
}

static void
test_invalid_text (Fixture       *fixture,
                   gconstpointer  user_data)
{
  g_autoptr (GchatdMailbox) mailbox = load (fixture);
  g_autofree char *big = g_strnfill (GCHATD_MAILBOX_MAX_TEXT + 1, 'a');
  static const char with_nul[] = "a\0b";
  static const char not_utf8[] = "a\xff";
  GError *error;
  g_autofree char *folder = NULL;

  error = post_and_wait (mailbox, "alice", big, GCHATD_MAILBOX_MAX_TEXT + 1);
  g_assert_error (error, GCHATD_MAILBOX_ERROR, GCHATD_MAILBOX_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  error = post_and_wait (mailbox, "alice", with_nul, 3);
  g_assert_error (error, GCHATD_MAILBOX_ERROR, GCHATD_MAILBOX_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  error = post_and_wait (mailbox, "alice", not_utf8, 2);
  g_assert_error (error, GCHATD_MAILBOX_ERROR, GCHATD_MAILBOX_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);

  folder = gchat_test_list_folder (fixture->folder);
  g_assert_cmpstr (folder, ==, "");
  g_assert_cmpuint (gchatd_mailbox_get_n_writes (mailbox), ==, 0);
}

static GPtrArray *
remove_and_wait (GchatdMailbox *mailbox,
                 const char    *recipient,
                 const guint64 *ids,
                 gsize          n_ids)
{
  g_auto (Results) results;

  results_init (&results);
  gchatd_mailbox_remove_async (mailbox, recipient, ids, n_ids, NULL, on_removed, &results);
  wait_for (&results, 1);
  g_assert_no_error (results.last_error);
  return g_steal_pointer (&results.removed);
}

static void
test_remove (Fixture       *fixture,
             gconstpointer  user_data)
{
  g_autoptr (GchatdMailbox) mailbox = load (fixture);
  g_autoptr (GchatdMailbox) reloaded = NULL;
  g_autoptr (GPtrArray) held = NULL;
  g_autoptr (GPtrArray) removed = NULL;
  g_autofree char *folder = NULL;
  g_auto (Results) results;
  guint64 ids[3];

  results_init (&results);
  for (guint i = 0; i < 5; i++)
    post (mailbox, "dave", "erin", i, texts[i % 3], &results);
  wait_for (&results, 5);
  g_assert_cmpuint (results.n_failed, ==, 0);

  /* The first and the third, and an id that is not there. */
  ids[0] = gchatd_mail_get_id (g_ptr_array_index (results.mail, 0));
  ids[1] = gchatd_mail_get_id (g_ptr_array_index (results.mail, 2));
  ids[2] = 12345;
  removed = remove_and_wait (mailbox, "Dave", ids, 3);
  g_assert_cmpuint (removed->len, ==, 2);
  g_assert_cmpuint (gchatd_mail_get_msg_id (g_ptr_array_index (removed, 0)), ==, 0);
  g_assert_cmpuint (gchatd_mail_get_msg_id (g_ptr_array_index (removed, 1)), ==, 2);
  g_clear_pointer (&removed, g_ptr_array_unref);

  /* A repeated acknowledgement removes nothing and is no error. */
  removed = remove_and_wait (mailbox, "dave", ids, 2);
  g_assert_cmpuint (removed->len, ==, 0);
  g_clear_pointer (&removed, g_ptr_array_unref);

  reloaded = load (fixture);
  held = gchatd_mailbox_peek (reloaded, "dave");
  g_assert_cmpuint (held->len, ==, 3);
  g_assert_cmpuint (gchatd_mail_get_msg_id (g_ptr_array_index (held, 0)), ==, 1);
  g_assert_cmpuint (gchatd_mail_get_msg_id (g_ptr_array_index (held, 1)), ==, 3);
  g_assert_cmpuint (gchatd_mail_get_msg_id (g_ptr_array_index (held, 2)), ==, 4);

  /* Emptied, the box leaves no file behind. */
  for (guint i = 0; i < 3; i++)
    ids[i] = gchatd_mail_get_id (g_ptr_array_index (held, i));
  removed = remove_and_wait (reloaded, "dave", ids, 3);
  g_assert_cmpuint (removed->len, ==, 3);
  folder = gchat_test_list_folder (fixture->folder);
  g_assert_cmpstr (folder, ==, "");
}

static void
test_receipts (Fixture       *fixture,
               gconstpointer  user_data)
{
  g_autoptr (GchatdMailbox) mailbox = load (fixture);
  g_autoptr (GchatdMailbox) reloaded = NULL;
  g_autoptr (GchatdMailbox) again = NULL;
  g_autoptr (GPtrArray) receipts = NULL;
  g_autoptr (GPtrArray) mail = NULL;
  GchatdMailReceipt *receipt;
  g_auto (Results) results;
  guint64 id;

  results_init (&results);
  gchatd_mailbox_add_receipt_async (mailbox, "Bob", "alice", 11, NULL, on_receipt_added,
                                    &results);
  gchatd_mailbox_add_receipt_async (mailbox, "bob", "Carol", G_MAXUINT64, NULL,
                                    on_receipt_added, &results);
  post (mailbox, "bob", "alice", 5, "hi", &results);
  wait_for (&results, 3);
  g_assert_cmpuint (results.n_failed, ==, 0);

  reloaded = load (fixture);
  receipts = gchatd_mailbox_peek_receipts (reloaded, "BOB");
  g_assert_cmpuint (receipts->len, ==, 2);
  receipt = g_ptr_array_index (receipts, 0);
  g_assert_cmpstr (gchatd_mail_receipt_get_sender (receipt), ==, "Bob");
  g_assert_cmpstr (gchatd_mail_receipt_get_recipient (receipt), ==, "alice");
  g_assert_cmpuint (gchatd_mail_receipt_get_msg_id (receipt), ==, 11);
  g_assert_cmpint (gchatd_mail_receipt_get_delivered (receipt), >, 1700000000);
  receipt = g_ptr_array_index (receipts, 1);
  g_assert_cmpuint (gchatd_mail_receipt_get_msg_id (receipt), ==, G_MAXUINT64);
  /* The same file holds bob's mail, which stays apart from the receipts. */
  mail = gchatd_mailbox_peek (reloaded, "bob");
  g_assert_cmpuint (mail->len, ==, 1);

  id = gchatd_mail_receipt_get_id (g_ptr_array_index (receipts, 0));
  gchatd_mailbox_remove_receipts_async (reloaded, "bob", &id, 1, NULL, on_receipts_removed,
                                        &results);
  wait_for (&results, 4);
  g_assert_no_error (results.last_error);
  g_assert_cmpuint (results.removed->len, ==, 1);
  g_assert_cmpuint (gchatd_mail_receipt_get_msg_id (g_ptr_array_index (results.removed, 0)), ==,
                    11);

  again = load (fixture);
  g_clear_pointer (&receipts, g_ptr_array_unref);
  receipts = gchatd_mailbox_peek_receipts (again, "bob");
  g_assert_cmpuint (receipts->len, ==, 1);
  g_assert_cmpstr (gchatd_mail_receipt_get_recipient (g_ptr_array_index (receipts, 0)), ==,
                   "Carol");
}

static void
test_receipts_full (Fixture       *fixture,
                    gconstpointer  user_data)
{
  g_autoptr (GchatdMailbox) mailbox = load (fixture);
  g_auto (Results) results;

  results_init (&results);
  for (guint i = 0; i < GCHATD_MAILBOX_MAX_RECEIPTS + 1; i++)
    gchatd_mailbox_add_receipt_async (mailbox, "bob", "alice", i, NULL, on_receipt_added,
                                      &results);
  wait_for (&results, GCHATD_MAILBOX_MAX_RECEIPTS + 1);
  g_assert_cmpuint (results.n_failed, ==, 1);
  g_assert_error (results.last_error, GCHATD_MAILBOX_ERROR,
                  GCHATD_MAILBOX_ERROR_RECEIPTS_FULL);
}

static void
test_group_commit (Fixture       *fixture,
                   gconstpointer  user_data)
{
  g_autoptr (GchatdMailbox) mailbox = load (fixture);
  g_autoptr (GchatdMailbox) reloaded = NULL;
  g_auto (Results) results;

  results_init (&results);
  for (guint i = 0; i < 300; i++)
    {
      g_autofree char *recipient = g_strdup_printf ("user%u", i % 30);
      g_autofree char *text = g_strdup_printf ("message %u", i);

      post (mailbox, recipient, "sender", i, text, &results);
    }
  wait_for (&results, 300);
  g_assert_cmpuint (results.n_failed, ==, 0);
  g_test_message ("300 posts to 30 users took %u file writes",
                  gchatd_mailbox_get_n_writes (mailbox));
  g_assert_cmpuint (gchatd_mailbox_get_n_writes (mailbox), <=, 100);

  reloaded = load (fixture);
  for (guint r = 0; r < 30; r++)
    {
      g_autofree char *recipient = g_strdup_printf ("USER%u", r);
      g_autoptr (GPtrArray) held = gchatd_mailbox_peek (reloaded, recipient);

      g_assert_cmpuint (held->len, ==, 10);
      for (guint i = 0; i < 10; i++)
        g_assert_cmpuint (gchatd_mail_get_msg_id (g_ptr_array_index (held, i)), ==, r + 30 * i);
    }
}

static void
test_flush (Fixture       *fixture,
            gconstpointer  user_data)
{
  g_autoptr (GchatdMailbox) mailbox = load (fixture);
  g_autoptr (GchatdMailbox) reloaded = NULL;
  g_autoptr (GPtrArray) held = NULL;
  g_autoptr (GError) error = NULL;
  g_auto (Results) results;

  results_init (&results);
  for (guint i = 0; i < 20; i++)
    post (mailbox, "frank", "alice", i, "hi", &results);
  g_assert_true (gchatd_mailbox_flush_sync (mailbox, 10000, &error));
  g_assert_no_error (error);

  /* Durable before the callbacks ran. */
  reloaded = load (fixture);
  held = gchatd_mailbox_peek (reloaded, "frank");
  g_assert_cmpuint (held->len, ==, 20);
  wait_for (&results, 20);
}

/* Corrupt files -------------------------------------------------------------------------------- */

typedef struct {
  const char *name;
  const char *file_name;
  const char *contents;
  const char *expected;
} CorruptCase;

#define MAIL(recipient, id) \
  "{\"id\":" id ",\"sender\":\"bob\",\"recipient\":\"" recipient "\",\"msg_id\":\"1\"," \
  "\"text\":\"hi\",\"queued\":1700000000}"
#define BOX(user, mail) \
  "{\n  \"version\": 1,\n  \"user\": \"" user "\",\n  \"mail\": [\n    " mail "\n  ],\n" \
  "  \"receipts\": []\n}\n"

static const CorruptCase corrupt_cases[] = {
  { "syntax", "alice.json", "{\n  \"version\": 1,\n  \"user\": 'alice'\n}\n",
    "is corrupt at line 3, column 11" },
  { "empty", "alice.json", "", "the file is empty" },
  { "wrong user", "alice.json", BOX ("bob", MAIL ("bob", "1")), "does not match the file name" },
  { "foreign record", "alice.json", BOX ("alice", MAIL ("carol", "1")),
    "in message 1 (ending on line 5): “carol” does not belong" },
  { "ids not ascending", "alice.json", BOX ("alice", MAIL ("alice", "2") ",\n    "
                                                     MAIL ("alice", "2")),
    "in message 2 (ending on line 6): “id” is not above" },
  { "bad msg_id", "alice.json",
    BOX ("alice", "{\"id\":1,\"sender\":\"bob\",\"recipient\":\"alice\",\"msg_id\":\"01\","
                  "\"text\":\"hi\",\"queued\":1}"),
    "“msg_id” is not a 64-bit number" },
  { "extra member", "alice.json",
    "{\"version\":1,\"user\":\"alice\",\"mail\":[],\"receipts\":[],\"x\":1}",
    "“x” is not part of the format" },
  { "upper-case file name", "Alice.json", BOX ("alice", MAIL ("alice", "1")),
    "not named after a user in lower case" },
  { "hostile file name", "..json", BOX ("alice", MAIL ("alice", "1")),
    "not named after a user in lower case" },
};

static void
test_corrupt (Fixture       *fixture,
              gconstpointer  user_data)
{
  g_assert_no_errno (g_mkdir (fixture->folder, 0700));
  for (gsize i = 0; i < G_N_ELEMENTS (corrupt_cases); i++)
    {
      const CorruptCase *c = &corrupt_cases[i];
      g_autofree char *path = box_file (fixture, c->file_name);
      g_autoptr (GError) error = NULL;
      g_autoptr (GchatdMailbox) mailbox = NULL;
      g_autoptr (GBytes) after = NULL;
      struct stat st;

      g_test_message ("%s", c->name);
      g_file_set_contents (path, c->contents, -1, &error);
      g_assert_no_error (error);
      g_assert_no_errno (g_chmod (path, 0644));
      mailbox = gchatd_mailbox_new (fixture->folder, &error);
      g_assert_null (mailbox);
      g_test_message ("%s", error->message);
      g_assert_error (error, GCHATD_MAILBOX_ERROR, GCHATD_MAILBOX_ERROR_CORRUPT);
      g_assert_nonnull (strstr (error->message, path));
      g_assert_nonnull (strstr (error->message, c->expected));

      /* Untouched: same bytes, same mode. */
      after = gchat_test_read_bytes (path);
      g_assert_cmpmem (g_bytes_get_data (after, NULL), g_bytes_get_size (after), c->contents,
                       strlen (c->contents));
      g_assert_no_errno (g_stat (path, &st));
      g_assert_cmpuint (st.st_mode & 0777, ==, 0644);
      g_assert_no_errno (g_unlink (path));
    }
}

/* Temporary files a crash left behind are not boxes, and are not read. */
static void
test_leftover_temporary (Fixture       *fixture,
                         gconstpointer  user_data)
{
  g_autoptr (GchatdMailbox) mailbox = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *path = box_file (fixture, "alice.json.A1B2C3");

  g_assert_no_errno (g_mkdir (fixture->folder, 0700));
  g_file_set_contents (path, "{half", -1, &error);
  g_assert_no_error (error);
  mailbox = load (fixture);
  g_assert_true (g_file_test (path, G_FILE_TEST_EXISTS));
}

/* Failed saves --------------------------------------------------------------------------------- */

/* The rename fails because a folder stands where the file goes: this fails for root too. */
static void
test_save_fails_on_rename (Fixture       *fixture,
                           gconstpointer  user_data)
{
  g_autoptr (GchatdMailbox) mailbox = load (fixture);
  g_autoptr (GPtrArray) held = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *path = box_file (fixture, "bob.json");
  g_autofree char *folder = NULL;

  g_assert_no_errno (g_mkdir (path, 0700));
  error = post_and_wait (mailbox, "bob", "hi", 2);
  g_assert_error (error, GCHATD_MAILBOX_ERROR, GCHATD_MAILBOX_ERROR_IO);
  g_assert_nonnull (strstr (error->message, "Could not save the mailbox"));
  g_assert_nonnull (strstr (error->message, path));
  g_clear_error (&error);
  held = gchatd_mailbox_peek (mailbox, "bob");
  g_assert_cmpuint (held->len, ==, 0);
  folder = gchat_test_list_folder (fixture->folder);
  g_assert_cmpstr (folder, ==, "bob.json");

  /* The reservation was given back, and saving works again once the folder is gone. */
  g_assert_no_errno (g_rmdir (path));
  error = post_and_wait (mailbox, "bob", "hi", 2);
  g_assert_no_error (error);
}

/* The write fails with EFBIG under a file-size limit: a full disk, in effect, that binds root
 * too. The old file must come through whole, and a remove that fails removes nothing. */
static void
test_save_fails_on_write (Fixture       *fixture,
                          gconstpointer  user_data)
{
  g_autoptr (GchatdMailbox) mailbox = load (fixture);
  g_autoptr (GchatdMailbox) reloaded = NULL;
  g_autoptr (GPtrArray) held = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) before = NULL;
  g_autoptr (GBytes) after = NULL;
  g_autofree char *path = box_file (fixture, "alice.json");
  g_autofree char *folder = NULL;
  g_auto (Results) results;
  struct rlimit saved, limit;
  void (*saved_handler) (int);
  guint64 ids[1];

  results_init (&results);
  post (mailbox, "alice", "bob", 1, "first", &results);
  post (mailbox, "alice", "bob", 2, "second", &results);
  wait_for (&results, 2);
  g_assert_cmpuint (results.n_failed, ==, 0);
  before = gchat_test_read_bytes (path);

  g_assert_no_errno (getrlimit (RLIMIT_FSIZE, &saved));
  limit = saved;
  limit.rlim_cur = g_bytes_get_size (before) / 2;
  saved_handler = signal (SIGXFSZ, SIG_IGN);
  g_assert_no_errno (setrlimit (RLIMIT_FSIZE, &limit));
  error = post_and_wait (mailbox, "alice", "third", 5);
  ids[0] = gchatd_mail_get_id (g_ptr_array_index (results.mail, 0));
  gchatd_mailbox_remove_async (mailbox, "alice", ids, 1, NULL, on_removed, &results);
  wait_for (&results, 3);
  g_assert_no_errno (setrlimit (RLIMIT_FSIZE, &saved));
  signal (SIGXFSZ, saved_handler);

  g_assert_error (error, GCHATD_MAILBOX_ERROR, GCHATD_MAILBOX_ERROR_IO);
  g_assert_nonnull (strstr (error->message, path));
  g_assert_error (results.last_error, GCHATD_MAILBOX_ERROR, GCHATD_MAILBOX_ERROR_IO);
  after = gchat_test_read_bytes (path);
  g_assert_true (g_bytes_equal (before, after));
  folder = gchat_test_list_folder (fixture->folder);
  g_assert_cmpstr (folder, ==, "alice.json");
  held = gchatd_mailbox_peek (mailbox, "alice");
  g_assert_cmpuint (held->len, ==, 2);

  g_clear_error (&error);
  error = post_and_wait (mailbox, "alice", "third", 5);
  g_assert_no_error (error);
  reloaded = load (fixture);
  g_clear_pointer (&held, g_ptr_array_unref);
  held = gchatd_mailbox_peek (reloaded, "alice");
  g_assert_cmpuint (held->len, ==, 3);
}

/* Hostile names -------------------------------------------------------------------------------- */

static void
test_hostile_names (Fixture       *fixture,
                    gconstpointer  user_data)
{
  g_autoptr (GchatdMailbox) mailbox = load (fixture);
  g_autofree char *long_name = g_strnfill (33, 'a');
  g_autofree char *very_long = g_strnfill (100000, 'b');
  const char *names[] = { "..", ".", "../escape", "a/b", "/etc/passwd", "", ".hidden",
                          "-dash", "alice\n", "al ice", "caf\xc3\xa9", long_name, very_long };
  g_autofree char *folder = NULL;
  g_autoptr (GError) error = NULL;

  for (gsize i = 0; i < G_N_ELEMENTS (names); i++)
    {
      g_autoptr (GPtrArray) held = NULL;
      g_auto (Results) results;

      results_init (&results);
      error = post_and_wait (mailbox, names[i], "hi", 2);
      g_assert_error (error, GCHATD_MAILBOX_ERROR, GCHATD_MAILBOX_ERROR_INVALID_NAME);
      g_clear_error (&error);
      /* As the sender of a post, and the owner of receipts, too. */
      gchatd_mailbox_post_async (mailbox, "alice", names[i], 1, "hi", 2, NULL, on_posted,
                                 &results);
      gchatd_mailbox_add_receipt_async (mailbox, names[i], "alice", 1, NULL, on_receipt_added,
                                        &results);
      wait_for (&results, 2);
      g_assert_cmpuint (results.n_failed, ==, 2);
      held = gchatd_mailbox_peek (mailbox, names[i]);
      g_assert_cmpuint (held->len, ==, 0);
    }

  folder = gchat_test_list_folder (fixture->folder);
  g_assert_cmpstr (folder, ==, "");
  g_assert_cmpuint (gchatd_mailbox_get_n_writes (mailbox), ==, 0);

  /* Names of the longest length, and every case of one name, go to one file each. */
  g_clear_pointer (&long_name, g_free);
  long_name = g_strnfill (32, 'Z');
  error = post_and_wait (mailbox, long_name, "hi", 2);
  g_assert_no_error (error);
  error = post_and_wait (mailbox, "a.B_c-D", "hi", 2);
  g_assert_no_error (error);
  error = post_and_wait (mailbox, "A.b_C-d", "hi", 2);
  g_assert_no_error (error);
  g_clear_pointer (&folder, g_free);
  folder = gchat_test_list_folder (fixture->folder);
  g_assert_cmpstr (folder, ==, "a.b_c-d.json zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz.json");
}

/* The mailbox is freed with saves running: finalize waits, nothing is lost or leaked. */
static void
test_unref_while_saving (Fixture       *fixture,
                         gconstpointer  user_data)
{
  GchatdMailbox *mailbox = load (fixture);
  g_autoptr (GchatdMailbox) reloaded = NULL;
  g_autoptr (GPtrArray) held = NULL;
  g_auto (Results) results;

  results_init (&results);
  for (guint i = 0; i < 50; i++)
    post (mailbox, "grace", "bob", i, "hi", &results);
  g_object_unref (mailbox);
  wait_for (&results, 50);
  g_assert_cmpuint (results.n_failed, ==, 0);

  reloaded = load (fixture);
  held = gchatd_mailbox_peek (reloaded, "grace");
  g_assert_cmpuint (held->len, ==, 50);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

#define ADD_FIXTURE_TEST(path, func) \
  g_test_add (path, Fixture, NULL, fixture_set_up, func, fixture_tear_down)

  ADD_FIXTURE_TEST ("/mailbox/post-and-reload", test_post_and_reload);
  ADD_FIXTURE_TEST ("/mailbox/folder-mode", test_folder_mode);
  ADD_FIXTURE_TEST ("/mailbox/limit-count", test_limit_count);
  ADD_FIXTURE_TEST ("/mailbox/limit-bytes", test_limit_bytes);
  ADD_FIXTURE_TEST ("/mailbox/invalid-text", test_invalid_text);
  ADD_FIXTURE_TEST ("/mailbox/remove", test_remove);
  ADD_FIXTURE_TEST ("/mailbox/receipts", test_receipts);
  ADD_FIXTURE_TEST ("/mailbox/receipts-full", test_receipts_full);
  ADD_FIXTURE_TEST ("/mailbox/group-commit", test_group_commit);
  ADD_FIXTURE_TEST ("/mailbox/flush", test_flush);
  ADD_FIXTURE_TEST ("/mailbox/corrupt", test_corrupt);
  ADD_FIXTURE_TEST ("/mailbox/leftover-temporary", test_leftover_temporary);
  ADD_FIXTURE_TEST ("/mailbox/save-fails-on-rename", test_save_fails_on_rename);
  ADD_FIXTURE_TEST ("/mailbox/save-fails-on-write", test_save_fails_on_write);
  ADD_FIXTURE_TEST ("/mailbox/hostile-names", test_hostile_names);
  ADD_FIXTURE_TEST ("/mailbox/unref-while-saving", test_unref_while_saving);

  return g_test_run ();
}
