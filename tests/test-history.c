/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Tests of the chat history: real files, batched writes, state updates, damage and tail loading. */

#include "config.h"

#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#include "gchat-history.h"
#include "gchat-test-util.h"

#define BIG_COUNT 100000
/* What a conversation opens with (INITIAL_COUNT in gchat-history.c), and each later page. */
#define FIRST_PAGE 50
#define PAGE      200

typedef struct
{
  char *base;    /* the temporary folder */
  char *account; /* base/history/example.org_10000/alice */
} Fixture;

static void
fixture_set_up (Fixture       *f,
                gconstpointer  data)
{
  f->base = gchat_test_make_dir ("history");
  f->account = g_build_filename (f->base, "history", "example.org_10000", "alice", NULL);
}

static void
fixture_tear_down (Fixture       *f,
                   gconstpointer  data)
{
  g_assert_true (gchat_test_remove_tree (f->base));
  g_free (f->base);
  g_free (f->account);
}

static GchatHistory *
open_history (Fixture *f)
{
  g_autoptr(GError) error = NULL;
  GchatHistory *history = gchat_history_new (f->base, "Example.ORG", 10000, "Alice", &error);

  g_assert_no_error (error);
  g_assert_nonnull (history);
  return history;
}

static GchatChatMessage *
message_at (GListModel *model,
            guint       position)
{
  GchatChatMessage *message = g_list_model_get_item (model, position);

  g_assert_nonnull (message);
  g_object_unref (message); /* the model keeps it */
  return message;
}

static void
add_message (GchatHistory       *history,
             const char         *peer,
             guint64             id,
             gboolean            outgoing,
             const char         *text,
             GchatDeliveryState  state)
{
  g_autoptr(GchatChatMessage) message = NULL;

  message = gchat_chat_message_new (id, outgoing, outgoing ? "alice" : peer, text,
                                    1700000000 + (gint64) id, state,
                                    outgoing ? GCHAT_CLIENT_PATH_DIRECT : GCHAT_CLIENT_PATH_RELAY);
  gchat_history_add (history, peer, message);
}

static void
write_file (const char *path,
            const char *contents,
            gssize      len)
{
  g_autoptr(GError) error = NULL;

  g_file_set_contents (path, contents, len, &error);
  g_assert_no_error (error);
}

/* Messages are written in batches, kept private, and read again in order. */
static void
test_add_reload (Fixture       *f,
                 gconstpointer  data)
{
  g_autoptr(GchatHistory) history = open_history (f);
  g_autofree char *file = g_build_filename (f->account, "bob", NULL);
  g_autofree char *server = g_path_get_dirname (f->account);
  g_autofree char *root = g_path_get_dirname (server);
  GListModel *model;
  GchatChatMessage *message;
  gint64 deadline;

  g_assert_cmpuint (gchat_test_file_mode (root), ==, 0700);
  g_assert_cmpuint (gchat_test_file_mode (server), ==, 0700);
  g_assert_cmpuint (gchat_test_file_mode (f->account), ==, 0700);

  model = gchat_history_get_messages (history, "Bob");
  g_assert_cmpuint (g_list_model_get_n_items (model), ==, 0);
  g_assert_true (model == gchat_history_get_messages (history, "bob"));
  add_message (history, "Bob", 1, FALSE, "Hello, “Alice”\nsecond line",
               GCHAT_DELIVERY_DELIVERED);
  add_message (history, "Bob", 2, TRUE, "{\"id\": 3}", GCHAT_DELIVERY_SENDING);
  add_message (history, "bob", 3, TRUE, "ça va ?", GCHAT_DELIVERY_SENDING);
  g_assert_cmpuint (g_list_model_get_n_items (model), ==, 3);
  g_assert_false (g_file_test (file, G_FILE_TEST_EXISTS));

  /* The batch is written by a timer within a second or so. */
  deadline = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;
  while (!g_file_test (file, G_FILE_TEST_EXISTS) && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, TRUE);
  g_assert_true (g_file_test (file, G_FILE_TEST_EXISTS));
  g_assert_cmpuint (gchat_test_file_mode (file), ==, 0600);

  add_message (history, "Bob", 4, FALSE, "last", GCHAT_DELIVERY_DELIVERED);
  g_clear_object (&history); /* writes what is pending */

  history = open_history (f);
  model = gchat_history_get_messages (history, "BOB");
  g_assert_cmpuint (g_list_model_get_n_items (model), ==, 4);
  message = message_at (model, 0);
  g_assert_cmpuint (gchat_chat_message_get_id (message), ==, 1);
  g_assert_false (gchat_chat_message_get_outgoing (message));
  g_assert_cmpstr (gchat_chat_message_get_sender (message), ==, "Bob");
  g_assert_cmpstr (gchat_chat_message_get_text (message), ==, "Hello, “Alice”\nsecond line");
  g_assert_cmpint (gchat_chat_message_get_time (message), ==, 1700000001);
  g_assert_cmpint (gchat_chat_message_get_path (message), ==, GCHAT_CLIENT_PATH_RELAY);
  message = message_at (model, 1);
  g_assert_true (gchat_chat_message_get_outgoing (message));
  g_assert_cmpstr (gchat_chat_message_get_text (message), ==, "{\"id\": 3}");
  g_assert_cmpint (gchat_chat_message_get_state (message), ==, GCHAT_DELIVERY_SENDING);
  g_assert_cmpstr (gchat_chat_message_get_text (message_at (model, 2)), ==, "ça va ?");
  g_assert_cmpstr (gchat_chat_message_get_text (message_at (model, 3)), ==, "last");
  g_assert_cmpuint (gchat_history_load_older (history, "bob", 100), ==, 0);
}

static guint n_notify_state;

static void
count_notify (GObject    *object,
              GParamSpec *pspec,
              gpointer    user_data)
{
  n_notify_state++;
}

/* State changes update the model at once and are applied again on the next start. */
static void
test_state_updates (Fixture       *f,
                    gconstpointer  data)
{
  g_autoptr(GchatHistory) history = open_history (f);
  g_autoptr(GError) error = NULL;
  GListModel *model = gchat_history_get_messages (history, "carol");
  GchatChatMessage *message;

  add_message (history, "carol", 10, TRUE, "one", GCHAT_DELIVERY_SENDING);
  add_message (history, "carol", 11, TRUE, "two", GCHAT_DELIVERY_SENDING);
  add_message (history, "carol", 10, FALSE, "theirs, with our id", GCHAT_DELIVERY_DELIVERED);
  message = message_at (model, 0);
  g_signal_connect (message, "notify::state", G_CALLBACK (count_notify), NULL);
  n_notify_state = 0;
  gchat_history_set_state (history, "carol", 10, GCHAT_DELIVERY_QUEUED, GCHAT_CLIENT_PATH_OFFLINE);
  g_assert_cmpuint (n_notify_state, ==, 1);
  gchat_history_set_state (history, "carol", 10, GCHAT_DELIVERY_QUEUED, GCHAT_CLIENT_PATH_OFFLINE);
  g_assert_cmpuint (n_notify_state, ==, 1);
  gchat_history_set_state (history, "carol", 10, GCHAT_DELIVERY_DELIVERED,
                           GCHAT_CLIENT_PATH_OFFLINE);
  g_assert_cmpuint (n_notify_state, ==, 2);
  gchat_history_set_state (history, "carol", 11, GCHAT_DELIVERY_FAILED, GCHAT_CLIENT_PATH_RELAY);
  g_assert_cmpint (gchat_chat_message_get_state (message_at (model, 1)), ==,
                   GCHAT_DELIVERY_FAILED);
  g_assert_true (gchat_history_flush (history, &error));
  g_assert_no_error (error);
  g_clear_object (&history);

  history = open_history (f);
  model = gchat_history_get_messages (history, "carol");
  g_assert_cmpuint (g_list_model_get_n_items (model), ==, 3);
  message = message_at (model, 0);
  g_assert_cmpint (gchat_chat_message_get_state (message), ==, GCHAT_DELIVERY_DELIVERED);
  g_assert_cmpint (gchat_chat_message_get_path (message), ==, GCHAT_CLIENT_PATH_OFFLINE);
  message = message_at (model, 1);
  g_assert_cmpint (gchat_chat_message_get_state (message), ==, GCHAT_DELIVERY_FAILED);
  g_assert_cmpint (gchat_chat_message_get_path (message), ==, GCHAT_CLIENT_PATH_RELAY);
  /* A state update is about our messages only. */
  message = message_at (model, 2);
  g_assert_cmpint (gchat_chat_message_get_state (message), ==, GCHAT_DELIVERY_DELIVERED);
  g_assert_cmpint (gchat_chat_message_get_path (message), ==, GCHAT_CLIENT_PATH_RELAY);
}

#define GOOD_1 "{\"id\":1,\"out\":false,\"from\":\"dave\",\"text\":\"first\",\"time\":5," \
               "\"state\":\"delivered\",\"path\":\"direct\"}\n"
#define GOOD_2 "{\"id\":2,\"out\":true,\"from\":\"alice\",\"text\":\"second\",\"time\":6," \
               "\"state\":\"sending\",\"path\":\"direct\"}\n"

/* Damaged lines are skipped, and a last line cut short does not swallow the next one. */
static void
test_damaged_lines (Fixture       *f,
                    gconstpointer  data)
{
  g_autofree char *file = g_build_filename (f->account, "dave", NULL);
  g_autoptr(GchatHistory) history = open_history (f);
  const char *contents =
    "garbage that is not JSON\n"
    GOOD_1
    "\n"
    "[1, 2, 3]\n"
    "{\"id\":\"seven\",\"out\":true,\"from\":\"a\",\"text\":\"t\",\"time\":1,"
    "\"state\":\"sending\",\"path\":\"direct\"}\n"
    "{\"id\":3,\"out\":true,\"from\":\"a\",\"text\":\"t\",\"time\":1,\"state\":\"lost\","
    "\"path\":\"direct\"}\n"
    "{\"id\":2,\"state\":\"nowhere\",\"path\":\"relay\"}\n"
    "{\"id\":1,\"text\":\"a\",\"text\":\"b\"}\n"
    "\xff\xfe binary \x01\n"
    GOOD_2
    "{\"id\":2,\"state\":\"delivered\",\"path\":\"relay\"}\n"
    "{\"id\":9,\"out\":tr";
  GListModel *model;

  write_file (file, contents, -1);
  model = gchat_history_get_messages (history, "dave");
  g_assert_cmpuint (g_list_model_get_n_items (model), ==, 2);
  g_assert_cmpstr (gchat_chat_message_get_text (message_at (model, 0)), ==, "first");
  g_assert_cmpstr (gchat_chat_message_get_text (message_at (model, 1)), ==, "second");
  g_assert_cmpint (gchat_chat_message_get_state (message_at (model, 1)), ==,
                   GCHAT_DELIVERY_DELIVERED);

  add_message (history, "dave", 10, FALSE, "after the crash", GCHAT_DELIVERY_DELIVERED);
  g_clear_object (&history);
  history = open_history (f);
  model = gchat_history_get_messages (history, "dave");
  g_assert_cmpuint (g_list_model_get_n_items (model), ==, 3);
  g_assert_cmpstr (gchat_chat_message_get_text (message_at (model, 2)), ==, "after the crash");
}

/* A line over 1 MiB is skipped wherever it is, and the lines around it are kept. */
static void
test_huge_line (Fixture       *f,
                gconstpointer  data)
{
  g_autofree char *file = g_build_filename (f->account, "erin", NULL);
  g_autoptr(GchatHistory) history = open_history (f);
  g_autoptr(GString) contents = g_string_new (NULL);
  GListModel *model;

  for (guint i = 0; i < 2; i++)
    {
      g_string_append (contents, "{\"id\":7,\"out\":false,\"from\":\"erin\",\"text\":\"");
      for (guint j = 0; j < 2 * 1024 * 1024; j++)
        g_string_append_c (contents, 'x');
      g_string_append (contents, "\",\"time\":1,\"state\":\"delivered\",\"path\":\"direct\"}\n");
      g_string_append (contents, i == 0 ? GOOD_1 : GOOD_2);
    }
  write_file (file, contents->str, contents->len);
  model = gchat_history_get_messages (history, "erin");
  g_assert_cmpuint (g_list_model_get_n_items (model), ==, 2);
  g_assert_cmpstr (gchat_chat_message_get_text (message_at (model, 0)), ==, "first");
  g_assert_cmpstr (gchat_chat_message_get_text (message_at (model, 1)), ==, "second");
  g_assert_cmpuint (gchat_history_load_older (history, "erin", 10), ==, 0);
}

static void
check_big_model (GListModel *model,
                 guint       first_id)
{
  guint n = g_list_model_get_n_items (model);

  for (guint i = 0; i < n; i++)
    {
      GchatChatMessage *message = message_at (model, i);
      guint64 id = gchat_chat_message_get_id (message);
      gboolean outgoing = id % 3 == 0;

      g_assert_cmpuint (id, ==, first_id + i);
      g_assert_cmpint (gchat_chat_message_get_outgoing (message), ==, outgoing);
      if (outgoing && id != 1)
        g_assert_cmpint (gchat_chat_message_get_state (message), ==, GCHAT_DELIVERY_DELIVERED);
    }
}

/* A long history opens with its latest page, and the rest follows page by page without gaps. */
static void
test_tail_loading (Fixture       *f,
                   gconstpointer  data)
{
  g_autoptr(GchatHistory) history = open_history (f);
  GListModel *model;
  gint64 started;
  guint added;

  for (guint64 id = 1; id <= BIG_COUNT; id++)
    {
      g_autofree char *text = g_strdup_printf ("message number %" G_GUINT64_FORMAT, id);

      add_message (history, "frank", id, id % 3 == 0, text, GCHAT_DELIVERY_SENDING);
      if (id % 3 == 0)
        gchat_history_set_state (history, "frank", id, GCHAT_DELIVERY_DELIVERED,
                                 GCHAT_CLIENT_PATH_DIRECT);
    }
  g_clear_object (&history);

  started = g_get_monotonic_time ();
  history = open_history (f);
  model = gchat_history_get_messages (history, "frank");
  g_test_message ("Opening a history of %u messages took %.1f ms", BIG_COUNT,
                  (g_get_monotonic_time () - started) / 1000.0);
  g_assert_cmpuint (g_list_model_get_n_items (model), ==, FIRST_PAGE);
  check_big_model (model, BIG_COUNT - FIRST_PAGE + 1);

  /* A state change for a message not loaded yet shows when it is. */
  gchat_history_set_state (history, "frank", 3, GCHAT_DELIVERY_FAILED, GCHAT_CLIENT_PATH_RELAY);
  while ((added = gchat_history_load_older (history, "frank", PAGE)) > 0)
    g_assert_cmpuint (added, <=, PAGE);
  g_assert_cmpuint (g_list_model_get_n_items (model), ==, BIG_COUNT);
  g_assert_cmpint (gchat_chat_message_get_state (message_at (model, 2)), ==,
                   GCHAT_DELIVERY_FAILED);
  gchat_history_set_state (history, "frank", 3, GCHAT_DELIVERY_DELIVERED, GCHAT_CLIENT_PATH_RELAY);
  check_big_model (model, 1);
}

static void
assert_refused (const char *base,
                const char *host,
                guint       port,
                const char *account)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GchatHistory) history = gchat_history_new (base, host, port, account, &error);

  g_assert_error (error, GCHAT_HISTORY_ERROR, GCHAT_HISTORY_ERROR_INVALID);
  g_assert_null (history);
}

/* Names that could leave the folder, or are not user names, are refused. */
static void
test_invalid_names (Fixture       *f,
                    gconstpointer  data)
{
  const char *accounts[] = { "", "..", ".hidden", "a/b", "../../etc", "é", "a b", "-dash",
                             "abcdefghijabcdefghijabcdefghijabc" };
  const char *hosts[] = { "", "..", "a/b", "/etc", ".example.org", "exa mple.org" };
  g_autoptr(GchatHistory) history = NULL;
  g_autofree char *listing = NULL;
  GListModel *model;

  for (gsize i = 0; i < G_N_ELEMENTS (accounts); i++)
    assert_refused (f->base, "example.org", 10000, accounts[i]);
  for (gsize i = 0; i < G_N_ELEMENTS (hosts); i++)
    assert_refused (f->base, hosts[i], 10000, "alice");
  assert_refused (f->base, "example.org", 0, "alice");
  assert_refused (f->base, "example.org", 70000, "alice");
  listing = gchat_test_list_folder (f->base);
  g_assert_cmpstr (listing, ==, "");

  /* A peer name that cannot be a file name is kept in memory only. */
  history = open_history (f);
  model = gchat_history_get_messages (history, "../escape");
  add_message (history, "../escape", 1, FALSE, "hi", GCHAT_DELIVERY_DELIVERED);
  g_assert_cmpuint (g_list_model_get_n_items (model), ==, 1);
  g_assert_true (gchat_history_flush (history, NULL));
  g_free (listing);
  listing = gchat_test_list_folder (f->account);
  g_assert_cmpstr (listing, ==, "");
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, func) \
  g_test_add (path, Fixture, NULL, fixture_set_up, func, fixture_tear_down)
  ADD ("/history/add-reload", test_add_reload);
  ADD ("/history/state-updates", test_state_updates);
  ADD ("/history/damaged-lines", test_damaged_lines);
  ADD ("/history/huge-line", test_huge_line);
  ADD ("/history/tail-loading", test_tail_loading);
  ADD ("/history/invalid-names", test_invalid_names);
#undef ADD

  return g_test_run ();
}
