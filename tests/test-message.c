/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Tests of the message codec: round trips, every class of bad input, and random mutations. */

#include "config.h"

#include <string.h>

#include "gchat-message.h"

static const guint8 test_key[32] = {
  0x00, 0x01, 0x02, 0x03, 0xfc, 0xfd, 0xfe, 0xff, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80,
  0x3e, 0x3f, 0xfb, 0xef, 0xbe, 0xff, 0x00, 0x00, 0x00, 0x00, 0x99, 0x88, 0x77, 0x66, 0x55, 0x44,
};

static GchatMessage *
decode_string (const char  *json,
               GError     **error)
{
  return gchat_message_decode ((const guint8 *) json, strlen (json), error);
}

static void
assert_decode_fails (const char *json,
                     int         code)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GchatMessage) message = decode_string (json, &error);

  g_assert_error (error, GCHAT_MESSAGE_ERROR, code);
  g_assert_null (message);
}

static GchatMessage *
assert_decode_ok (const char *json)
{
  g_autoptr(GError) error = NULL;
  GchatMessage *message = decode_string (json, &error);

  g_assert_no_error (error);
  g_assert_nonnull (message);
  return message;
}

/* Encodes, decodes and encodes again: both encodings must be the same bytes. */
static GchatMessage *
round_trip (GchatMessage *message)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) wire = gchat_message_encode (message, &error);
  g_autoptr(GBytes) again = NULL;
  GchatMessage *decoded;

  g_assert_no_error (error);
  decoded = gchat_message_decode (g_bytes_get_data (wire, NULL), g_bytes_get_size (wire), &error);
  g_assert_no_error (error);
  g_assert_cmpint (gchat_message_get_message_type (decoded), ==,
                   gchat_message_get_message_type (message));
  again = gchat_message_encode (decoded, &error);
  g_assert_no_error (error);
  g_assert_true (g_bytes_equal (wire, again));
  return decoded;
}

static void
test_type_names (void)
{
  static const char *const names[] = {
    "sign", "auth", "list", "talk", "logout", "ping", "relay", "post", "mail-ack",
    "receipt-ack", "result", "users", "presence", "pair-key", "error", "bye", "pong",
    "relayed", "mail", "receipt",
  };
  GchatMessageType type;

  G_STATIC_ASSERT (G_N_ELEMENTS (names) == GCHAT_N_MESSAGE_TYPES);
  for (guint i = 0; i < GCHAT_N_MESSAGE_TYPES; i++)
    {
      g_assert_cmpstr (gchat_message_type_to_string (i), ==, names[i]);
      g_assert_true (gchat_message_type_from_string (names[i], &type));
      g_assert_cmpint (type, ==, i);
    }
  g_assert_false (gchat_message_type_from_string ("pair_key", &type));
  g_assert_false (gchat_message_type_from_string ("", &type));
  g_assert_cmpstr (gchat_message_type_to_string (GCHAT_MESSAGE_ERROR_MSG), ==, "error");
}

static void
test_boxed (void)
{
  g_autoptr(GchatMessage) message = gchat_message_new (GCHAT_MESSAGE_PING);
  GchatMessage *copy;

  g_assert_true (G_TYPE_IS_BOXED (GCHAT_TYPE_MESSAGE));
  copy = g_boxed_copy (GCHAT_TYPE_MESSAGE, message);
  g_assert_true (copy == message);
  g_boxed_free (GCHAT_TYPE_MESSAGE, copy);
  gchat_message_unref (gchat_message_ref (message));
  g_assert_cmpint (gchat_message_get_message_type (message), ==, GCHAT_MESSAGE_PING);
}

static void
test_round_trip_client (void)
{
  g_autoptr(GchatMessage) talk = gchat_message_new (GCHAT_MESSAGE_TALK);
  g_autoptr(GchatMessage) decoded = NULL;
  static const GchatMessageType id_only[] = { GCHAT_MESSAGE_LIST, GCHAT_MESSAGE_PING,
                                              GCHAT_MESSAGE_PONG };

  for (guint i = 0; i < 2; i++)
    {
      g_autoptr(GchatMessage) message = gchat_message_new (i == 0 ? GCHAT_MESSAGE_SIGN
                                                                  : GCHAT_MESSAGE_AUTH);

      gchat_message_set_string (message, "user", "alice");
      gchat_message_set_string (message, "password", "correct horse battery staple ✓");
      gchat_message_set_int (message, "id", G_MAXINT32);
      g_clear_pointer (&decoded, gchat_message_unref);
      decoded = round_trip (message);
      g_assert_cmpstr (gchat_message_get_string (decoded, "user"), ==, "alice");
      g_assert_cmpstr (gchat_message_get_string (decoded, "password"), ==,
                       "correct horse battery staple ✓");
      g_assert_cmpint (gchat_message_get_int (decoded, "id"), ==, G_MAXINT32);
    }

  for (guint i = 0; i < G_N_ELEMENTS (id_only); i++)
    {
      g_autoptr(GchatMessage) message = gchat_message_new (id_only[i]);

      gchat_message_set_int (message, "id", 0);
      g_clear_pointer (&decoded, gchat_message_unref);
      decoded = round_trip (message);
      g_assert_true (gchat_message_has_field (decoded, "id"));
      g_assert_cmpint (gchat_message_get_int (decoded, "id"), ==, 0);
    }

  gchat_message_set_string (talk, "user", "bob");
  gchat_message_set_int (talk, "id", 7);
  g_clear_pointer (&decoded, gchat_message_unref);
  decoded = round_trip (talk);
  g_assert_cmpstr (gchat_message_get_string (decoded, "user"), ==, "bob");
  g_assert_cmpint (gchat_message_get_int (decoded, "id"), ==, 7);

  {
    g_autoptr(GchatMessage) logout = gchat_message_new (GCHAT_MESSAGE_LOGOUT);
    g_autoptr(GBytes) wire = gchat_message_encode (logout, NULL);

    g_assert_cmpmem (g_bytes_get_data (wire, NULL), g_bytes_get_size (wire),
                     "{\"type\":\"logout\"}", 17);
  }
}

static void
test_round_trip_server (void)
{
  const char *const users[] = { "alice", "bob", "zoë", NULL };
  const char *const nobody[] = { NULL };
  g_autoptr(GchatMessage) result = gchat_message_new (GCHAT_MESSAGE_RESULT);
  g_autoptr(GchatMessage) list = gchat_message_new (GCHAT_MESSAGE_USERS);
  g_autoptr(GchatMessage) presence = gchat_message_new (GCHAT_MESSAGE_PRESENCE);
  g_autoptr(GchatMessage) decoded = NULL;
  g_auto(GStrv) strv = NULL;

  gchat_message_set_int (result, "id", 12);
  gchat_message_set_string (result, "request", "auth");
  gchat_message_set_bool (result, "ok", FALSE);
  gchat_message_set_string (result, "code", "rate-limited");
  gchat_message_set_string (result, "message", "Too many attempts \"now\"\n\\ \t\x01\x1f end");
  gchat_message_set_int (result, "retry_after", 86400);
  gchat_message_set_string (result, "user", "alice");
  decoded = round_trip (result);
  g_assert_cmpint (gchat_message_get_int (decoded, "id"), ==, 12);
  g_assert_cmpstr (gchat_message_get_string (decoded, "request"), ==, "auth");
  g_assert_false (gchat_message_get_bool (decoded, "ok"));
  g_assert_true (gchat_message_has_field (decoded, "ok"));
  g_assert_cmpstr (gchat_message_get_string (decoded, "code"), ==, "rate-limited");
  g_assert_cmpstr (gchat_message_get_string (decoded, "message"), ==,
                   "Too many attempts \"now\"\n\\ \t\x01\x1f end");
  g_assert_cmpint (gchat_message_get_int (decoded, "retry_after"), ==, 86400);
  g_assert_cmpstr (gchat_message_get_string (decoded, "user"), ==, "alice");

  gchat_message_set_int (list, "id", 3);
  gchat_message_set_strv (list, "users", users);
  g_clear_pointer (&decoded, gchat_message_unref);
  decoded = round_trip (list);
  strv = gchat_message_dup_strv (decoded, "users");
  g_assert_cmpstrv (strv, users);
  g_clear_pointer (&strv, g_strfreev);

  gchat_message_set_strv (presence, "joined", users);
  gchat_message_set_strv (presence, "left", nobody);
  g_clear_pointer (&decoded, gchat_message_unref);
  decoded = round_trip (presence);
  strv = gchat_message_dup_strv (decoded, "joined");
  g_assert_cmpstrv (strv, users);
  g_clear_pointer (&strv, g_strfreev);
  strv = gchat_message_dup_strv (decoded, "left");
  g_assert_cmpstrv (strv, nobody);
  g_clear_pointer (&strv, g_strfreev);

  /* Both lists are optional. */
  g_clear_pointer (&decoded, gchat_message_unref);
  decoded = assert_decode_ok ("{\"type\":\"presence\"}");
  g_assert_null (gchat_message_dup_strv (decoded, "joined"));
  g_assert_false (gchat_message_has_field (decoded, "left"));
}

static void
test_round_trip_server_more (void)
{
  g_autoptr(GchatMessage) pair_key = gchat_message_new (GCHAT_MESSAGE_PAIR_KEY);
  g_autoptr(GchatMessage) error_msg = gchat_message_new (GCHAT_MESSAGE_ERROR_MSG);
  g_autoptr(GchatMessage) bye = gchat_message_new (GCHAT_MESSAGE_BYE);
  g_autoptr(GchatMessage) decoded = NULL;
  GBytes *key;

  gchat_message_set_int (pair_key, "id", 1);
  gchat_message_set_string (pair_key, "user", "bob");
  gchat_message_set_int (pair_key, "key_id", G_MAXUINT32);
  gchat_message_set_bytes (pair_key, "key", test_key, sizeof test_key);
  gchat_message_set_int (pair_key, "expires", (G_GINT64_CONSTANT (1) << 53) - 1);
  key = gchat_message_get_bytes (pair_key, "key");
  g_assert_cmpmem (g_bytes_get_data (key, NULL), g_bytes_get_size (key), test_key,
                   sizeof test_key);
  decoded = round_trip (pair_key);
  g_assert_cmpstr (gchat_message_get_string (decoded, "user"), ==, "bob");
  g_assert_cmpint (gchat_message_get_int (decoded, "key_id"), ==, G_MAXUINT32);
  g_assert_cmpint (gchat_message_get_int (decoded, "expires"), ==,
                   (G_GINT64_CONSTANT (1) << 53) - 1);
  key = gchat_message_get_bytes (decoded, "key");
  g_assert_nonnull (key);
  g_assert_true (key == gchat_message_get_bytes (decoded, "key"));
  g_assert_cmpmem (g_bytes_get_data (key, NULL), g_bytes_get_size (key), test_key,
                   sizeof test_key);

  gchat_message_set_int (error_msg, "id", 5);
  gchat_message_set_string (error_msg, "code", "no-such-user");
  gchat_message_set_string (error_msg, "message", "");
  g_clear_pointer (&decoded, gchat_message_unref);
  decoded = round_trip (error_msg);
  g_assert_cmpstr (gchat_message_get_string (decoded, "code"), ==, "no-such-user");
  g_assert_cmpstr (gchat_message_get_string (decoded, "message"), ==, "");

  gchat_message_set_string (bye, "code", "shutdown");
  gchat_message_set_string (bye, "message", "The server is going down for maintenance");
  g_clear_pointer (&decoded, gchat_message_unref);
  decoded = round_trip (bye);
  g_assert_cmpstr (gchat_message_get_string (decoded, "code"), ==, "shutdown");

  /* Absent optional fields give the defaults. */
  g_assert_true (gchat_message_has_field (decoded, "message"));
  g_clear_pointer (&decoded, gchat_message_unref);
  decoded = assert_decode_ok ("{\"type\":\"pong\"}");
  g_assert_false (gchat_message_has_field (decoded, "id"));
  g_assert_cmpint (gchat_message_get_int (decoded, "id"), ==, 0);
}

/* A datagram of @len bytes whose every byte value shows, so that a round trip that changed one
 * would be seen. */
static GBytes *
make_datagram (gsize len)
{
  guint8 *data = g_malloc (len);

  for (gsize i = 0; i < len; i++)
    data[i] = (guint8) (i * 37 + 11);
  return g_bytes_new_take (data, len);
}

static void
assert_bytes_field (GchatMessage *message,
                    const char   *field,
                    GBytes       *expected)
{
  GBytes *got = gchat_message_get_bytes (message, field);

  g_assert_nonnull (got);
  g_assert_true (g_bytes_equal (got, expected));
}

static void
test_round_trip_relay (void)
{
  g_autoptr(GchatMessage) relay = gchat_message_new (GCHAT_MESSAGE_RELAY);
  g_autoptr(GchatMessage) relayed = gchat_message_new (GCHAT_MESSAGE_RELAYED);
  g_autoptr(GchatMessage) decoded = NULL;
  g_autoptr(GBytes) smallest = make_datagram (GCHAT_RELAY_DATAGRAM_MIN);
  g_autoptr(GBytes) largest = make_datagram (GCHAT_RELAY_DATAGRAM_MAX);

  gchat_message_set_string (relay, "to", "bob");
  gchat_message_set_bytes (relay, "datagram", g_bytes_get_data (largest, NULL),
                           g_bytes_get_size (largest));
  gchat_message_set_int (relay, "id", 9);
  decoded = round_trip (relay);
  g_assert_cmpstr (gchat_message_get_string (decoded, "to"), ==, "bob");
  assert_bytes_field (decoded, "datagram", largest);
  g_assert_cmpint (gchat_message_get_int (decoded, "id"), ==, 9);

  gchat_message_set_string (relayed, "from", "Alice");
  gchat_message_set_bytes (relayed, "datagram", g_bytes_get_data (smallest, NULL),
                           g_bytes_get_size (smallest));
  g_clear_pointer (&decoded, gchat_message_unref);
  decoded = round_trip (relayed);
  g_assert_cmpstr (gchat_message_get_string (decoded, "from"), ==, "Alice");
  assert_bytes_field (decoded, "datagram", smallest);
}

static void
test_round_trip_mail (void)
{
  static const char text[] = "Hello \"Bob\" \\ \x01 ✓";
  g_autoptr(GchatMessage) post = gchat_message_new (GCHAT_MESSAGE_POST);
  g_autoptr(GchatMessage) mail = gchat_message_new (GCHAT_MESSAGE_MAIL);
  g_autoptr(GchatMessage) receipt = gchat_message_new (GCHAT_MESSAGE_RECEIPT);
  g_autoptr(GchatMessage) result = gchat_message_new (GCHAT_MESSAGE_RESULT);
  g_autoptr(GchatMessage) decoded = NULL;
  g_autoptr(GBytes) text_bytes = g_bytes_new_static (text, strlen (text));
  gint64 max = GCHAT_MESSAGE_MAX_SAFE_INT;

  gchat_message_set_string (post, "to", "bob");
  gchat_message_set_int (post, "msg_id", max);
  gchat_message_set_bytes (post, "text", (const guint8 *) text, strlen (text));
  decoded = round_trip (post);
  g_assert_cmpint (gchat_message_get_int (decoded, "msg_id"), ==, max);
  assert_bytes_field (decoded, "text", text_bytes);
  g_assert_false (gchat_message_has_field (decoded, "id"));

  gchat_message_set_int (mail, "mail_id", 1700000000000001);
  gchat_message_set_string (mail, "from", "alice");
  gchat_message_set_int (mail, "msg_id", 0);
  gchat_message_set_bytes (mail, "text", (const guint8 *) text, strlen (text));
  gchat_message_set_int (mail, "queued", 1700000000);
  g_clear_pointer (&decoded, gchat_message_unref);
  decoded = round_trip (mail);
  g_assert_cmpint (gchat_message_get_int (decoded, "mail_id"), ==, 1700000000000001);
  g_assert_cmpstr (gchat_message_get_string (decoded, "from"), ==, "alice");
  g_assert_cmpint (gchat_message_get_int (decoded, "queued"), ==, 1700000000);
  assert_bytes_field (decoded, "text", text_bytes);

  gchat_message_set_int (receipt, "receipt_id", 5);
  gchat_message_set_string (receipt, "user", "bob");
  gchat_message_set_int (receipt, "msg_id", 77);
  gchat_message_set_int (receipt, "delivered", 1700000001);
  g_clear_pointer (&decoded, gchat_message_unref);
  decoded = round_trip (receipt);
  g_assert_cmpint (gchat_message_get_int (decoded, "receipt_id"), ==, 5);
  g_assert_cmpstr (gchat_message_get_string (decoded, "user"), ==, "bob");
  g_assert_cmpint (gchat_message_get_int (decoded, "msg_id"), ==, 77);
  g_assert_cmpint (gchat_message_get_int (decoded, "delivered"), ==, 1700000001);

  gchat_message_set_string (result, "request", "post");
  gchat_message_set_bool (result, "ok", TRUE);
  gchat_message_set_int (result, "mail_id", max);
  g_clear_pointer (&decoded, gchat_message_unref);
  decoded = round_trip (result);
  g_assert_cmpint (gchat_message_get_int (decoded, "mail_id"), ==, max);

  g_clear_pointer (&decoded, gchat_message_unref);
  decoded = assert_decode_ok ("{\"type\":\"mail-ack\",\"mail_id\":3,\"id\":4}");
  g_assert_cmpint (gchat_message_get_int (decoded, "mail_id"), ==, 3);
  g_clear_pointer (&decoded, gchat_message_unref);
  decoded = assert_decode_ok ("{\"type\":\"receipt-ack\",\"receipt_id\":9007199254740991}");
  g_assert_cmpint (gchat_message_get_int (decoded, "receipt_id"), ==, max);
}

/* A `relay` with a datagram of @len bytes. */
static char *
relay_json (gsize len)
{
  g_autoptr(GBytes) datagram = make_datagram (len);
  g_autofree char *base64 = g_base64_encode (g_bytes_get_data (datagram, NULL), len);

  return g_strdup_printf ("{\"type\":\"relay\",\"to\":\"bob\",\"datagram\":\"%s\"}", base64);
}

/* A `post` with a text of @len bytes. */
static char *
post_json (gsize len)
{
  g_autofree char *text = g_strnfill (len, 'x');
  g_autofree char *base64 = g_base64_encode ((const guint8 *) text, len);

  return g_strdup_printf ("{\"type\":\"post\",\"to\":\"bob\",\"msg_id\":1,\"text\":\"%s\"}",
                          base64);
}

static void
test_relay_mail_limits (void)
{
  static const gsize bad_datagrams[] = { 0, 1, GCHAT_RELAY_DATAGRAM_MIN - 1,
                                         GCHAT_RELAY_DATAGRAM_MAX + 1 };
  static const char *const bad[] = {
    "{\"type\":\"relay\",\"to\":\"bob\"}",
    "{\"type\":\"relay\",\"datagram\":\"AAAA\"}",
    "{\"type\":\"post\",\"to\":\"bob\",\"msg_id\":1}",
    "{\"type\":\"post\",\"to\":\"\",\"msg_id\":1,\"text\":\"eA==\"}",
    ("{\"type\":\"post\",\"to\":\"123456789012345678901234567890123\",\"msg_id\":1,"
     "\"text\":\"eA==\"}"),
    "{\"type\":\"post\",\"to\":\"bob\",\"msg_id\":9223372036854775808,\"text\":\"eA==\"}",
    "{\"type\":\"post\",\"to\":\"bob\",\"msg_id\":-1,\"text\":\"eA==\"}",
    "{\"type\":\"post\",\"to\":\"bob\",\"msg_id\":1,\"text\":\"x\"}",
    "{\"type\":\"post\",\"to\":\"bob\",\"msg_id\":\"1\",\"text\":\"eA==\"}",
    "{\"type\":\"mail-ack\"}",
    "{\"type\":\"mail-ack\",\"mail_id\":-1}",
    "{\"type\":\"receipt-ack\",\"receipt_id\":9007199254740992}",
    "{\"type\":\"mail\",\"mail_id\":1,\"from\":\"a\",\"msg_id\":1,\"text\":\"eA==\"}",
    "{\"type\":\"receipt\",\"receipt_id\":1,\"user\":\"a\",\"msg_id\":1}",
  };
  g_autoptr(GchatMessage) message = NULL;
  g_autofree char *json = NULL;

  for (guint i = 0; i < G_N_ELEMENTS (bad_datagrams); i++)
    {
      g_autofree char *relay = relay_json (bad_datagrams[i]);

      assert_decode_fails (relay, GCHAT_MESSAGE_ERROR_OUT_OF_RANGE);
    }
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GchatMessage) refused = decode_string (bad[i], &error);

      g_test_message ("%s", bad[i]);
      g_assert_nonnull (error);
      g_assert_null (refused);
    }

  /* A conversation's message id takes the whole signed 64-bit range (PROTOCOL.md §7.2). */
  message = assert_decode_ok ("{\"type\":\"post\",\"to\":\"bob\","
                              "\"msg_id\":9223372036854775807,\"text\":\"eA==\"}");
  g_clear_pointer (&message, gchat_message_unref);

  json = relay_json (GCHAT_RELAY_DATAGRAM_MIN);
  message = assert_decode_ok (json);
  g_clear_pointer (&json, g_free);
  g_clear_pointer (&message, gchat_message_unref);
  json = relay_json (GCHAT_RELAY_DATAGRAM_MAX);
  message = assert_decode_ok (json);

  /* The largest text fits a message; one byte more is refused, and an empty text too. */
  g_clear_pointer (&json, g_free);
  g_clear_pointer (&message, gchat_message_unref);
  json = post_json (GCHAT_TEXT_MAX);
  message = assert_decode_ok (json);
  g_assert_cmpuint (g_bytes_get_size (gchat_message_get_bytes (message, "text")), ==,
                    GCHAT_TEXT_MAX);
  g_clear_pointer (&json, g_free);
  json = post_json (GCHAT_TEXT_MAX + 1);
  assert_decode_fails (json, GCHAT_MESSAGE_ERROR_OUT_OF_RANGE);
  g_clear_pointer (&json, g_free);
  json = post_json (0);
  assert_decode_fails (json, GCHAT_MESSAGE_ERROR_OUT_OF_RANGE);
}

/* Setting a field again or to NULL replaces or removes it. */
static void
test_setters_replace (void)
{
  g_autoptr(GchatMessage) message = gchat_message_new (GCHAT_MESSAGE_RESULT);

  gchat_message_set_string (message, "code", "first");
  gchat_message_set_string (message, "code", "second");
  g_assert_cmpstr (gchat_message_get_string (message, "code"), ==, "second");
  gchat_message_set_string (message, "code", NULL);
  g_assert_false (gchat_message_has_field (message, "code"));
  g_assert_null (gchat_message_get_string (message, "code"));
}

static void
test_syntax_errors (void)
{
  static const char *const bad[] = {
    "", " ", "not json", "{", "{\"type\":\"ping\"", "{\"type\":\"ping\",}", "[\"type\"]",
    "\"ping\"", "42", "null", "{\"type\":\"ping\"} {}", "{\"type\":\"ping\"}x",
    /* What json-glib would accept but JSON does not. */
    "{'type':'ping'}", "/* c */{\"type\":\"ping\"}", "{\"type\":\"ping\",\"id\":0x10}",
    "{\"type\":\"ping\",\"id\":01}", "{\"type\":\"ping\",\"id\":+1}",
    "{\"type\":\"ping\",\"id\":NaN}", "{\"type\":\"ping\",\"id\":Infinity}",
    "{\"type\":\"ping\",\"id\":.5}", "{\"type\":\"ping\",\"id\":1.}",
    "{\"type\":\"ping\",\"id\":9223372036854775808}",
    "{\"type\":\"ping\",\"id\":-9223372036854775809}",
    "{\"type\":\"ping\",\"id\":18446744073709551617}",
    "{\"type\":\"ping\",\"x\":\"\\ud800\"}", "{\"type\":\"ping\",\"x\":\"\\udc00\"}",
    "{\"type\":\"ping\",\"x\":\"\\ud800\\u0041\"}", "{\"type\":\"ping\",\"x\":\"\\u0000\"}",
    "{\"type\":\"ping\",\"x\":\"\\x41\"}", "{\"type\":\"ping\",\"x\":\"\\'\"}",
    "{\"type\":\"ping\",\"x\":\"a\tb\"}", "{\"type\":\"ping\",\"x\":\"a\x1f\"}",
    "{\"type\":\"ping\",\"x\":TRUE}", "{\"type\":\"ping\",\"x\":tru}",
    "{\"type\":\"ping\" \"x\":1}",
    "{\"type\":\"ping\",\"x\":[1,]}", "{\"type\":\"ping\",\"x\":[1 2]}", "{type:\"ping\"}",
    "\xef\xbb\xbf{\"type\":\"ping\"}", "{\"type\":\"ping\"}\f", "{\"type\":\"ping\",\"x\":1e}",
    "{\"type\":\"ping\",\"x\":-}", "{\"type\":\"ping\",\"x\":\"\\u12\"}",
    /* Duplicate members. */
    "{\"type\":\"ping\",\"type\":\"pong\"}", "{\"type\":\"ping\",\"id\":1,\"id\":2}",
    "{\"type\":\"ping\",\"x\":{\"a\":1,\"\\u0061\":2}}",
    /* Too deep: the root object counts as one level. */
    "{\"type\":\"ping\",\"x\":[[[[]]]]}", "{\"type\":\"ping\",\"x\":{\"a\":{\"b\":{\"c\":{}}}}}",
  };

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_test_message ("%s", bad[i]);
      assert_decode_fails (bad[i], GCHAT_MESSAGE_ERROR_SYNTAX);
    }
}

/* Strict JSON that json-glib must read the same way as the pre-scan. */
static void
test_strict_json_accepted (void)
{
  static const char *const good[] = {
    " \t\r\n{ \"type\" : \"ping\" , \"id\" : 1 } \n",
    "{\"type\":\"ping\",\"x\":[1,-0,0.5,-1.5e-3,1E5,1e+5,2.0E-0,9223372036854775807]}",
    "{\"type\":\"ping\",\"x\":-9223372036854775808}",
    "{\"type\":\"ping\",\"x\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0001\\u00e9\\ud83d\\ude00\"}",
    "{\"type\":\"ping\",\"x\":[true,false,null,{},[],\"\"]}",
    "{\"type\":\"ping\",\"x\":[[[]]],\"y\":{\"a\":{\"b\":[]}}}",
    "{\"x\":{},\"type\":\"ping\",\"\":1}",
    "{\"type\":\"p\\u0069ng\"}",
    "{\"type\":\"ping\",\"x\":\"/* no comment */ // # ' \\\\\"}",
    "{\"type\":\"ping\",\"x\":[-0.0,1e400,-1e-400,123456789012345678901234567890.5]}",
  };

  for (guint i = 0; i < G_N_ELEMENTS (good); i++)
    {
      g_autoptr(GchatMessage) message = NULL;

      g_test_message ("%s", good[i]);
      message = assert_decode_ok (good[i]);
      g_assert_cmpint (gchat_message_get_message_type (message), ==, GCHAT_MESSAGE_PING);
    }
}

static void
test_escapes_decoded (void)
{
  g_autoptr(GchatMessage) message = assert_decode_ok (
    "{\"type\":\"bye\",\"code\":\"\\u00e9\\ud83d\\ude00\\/\",\"message\":\"a\\u001fb\"}");

  g_assert_cmpstr (gchat_message_get_string (message, "code"), ==, "é😀/");
  g_assert_cmpstr (gchat_message_get_string (message, "message"), ==, "a\x1f" "b");
}

static void
test_not_utf8_or_nul (void)
{
  static const guint8 with_nul[] = "{\"type\":\"ping\",\"x\":\"a\0b\"}";
  g_autoptr(GError) error = NULL;
  g_autoptr(GchatMessage) message = NULL;

  assert_decode_fails ("{\"type\":\"ping\",\"x\":\"\xff\"}", GCHAT_MESSAGE_ERROR_SYNTAX);
  assert_decode_fails ("{\"type\":\"ping\",\"x\":\"\xc3\"}", GCHAT_MESSAGE_ERROR_SYNTAX);
  assert_decode_fails ("{\"type\":\"ping\",\"x\":\"\xed\xa0\x80\"}", GCHAT_MESSAGE_ERROR_SYNTAX);
  assert_decode_fails ("{\"type\":\"ping\",\"x\":\"\xc0\xaf\"}", GCHAT_MESSAGE_ERROR_SYNTAX);

  message = gchat_message_decode (with_nul, sizeof with_nul - 1, &error);
  g_assert_error (error, GCHAT_MESSAGE_ERROR, GCHAT_MESSAGE_ERROR_SYNTAX);
  g_assert_null (message);
  g_clear_error (&error);

  /* A trailing NUL, as from a careless sender, is no better. */
  message = gchat_message_decode ((const guint8 *) "{\"type\":\"ping\"}", 16, &error);
  g_assert_error (error, GCHAT_MESSAGE_ERROR, GCHAT_MESSAGE_ERROR_SYNTAX);
  g_assert_null (message);
}

static void
test_deep_nesting (void)
{
  const gsize depth = 100000;
  g_autofree char *arrays = g_malloc (2 * depth + 1);
  g_autofree char *in_string = NULL;
  g_autoptr(GchatMessage) message = NULL;
  g_autoptr(GString) nested = g_string_new ("{\"type\":\"ping\",\"x\":");
  gint64 start = g_get_monotonic_time ();

  memset (arrays, '[', depth);
  memset (arrays + depth, ']', depth);
  arrays[2 * depth] = '\0';
  assert_decode_fails (arrays, GCHAT_MESSAGE_ERROR_SYNTAX);

  /* Objects take more bytes a level: as deep as fits in the size limit. */
  for (gsize i = 0; i < 40000; i++)
    g_string_append (nested, "{\"a\":");
  g_string_append (nested, "1");
  for (gsize i = 0; i <= 40000; i++)
    g_string_append_c (nested, '}');
  assert_decode_fails (nested->str, GCHAT_MESSAGE_ERROR_SYNTAX);

  /* Unterminated, and deep inside a string, which does not count. */
  arrays[depth] = '\0';
  assert_decode_fails (arrays, GCHAT_MESSAGE_ERROR_SYNTAX);
  in_string = g_strdup_printf ("{\"type\":\"ping\",\"x\":\"%s\"}", arrays);
  message = assert_decode_ok (in_string);

  g_assert_cmpint (g_get_monotonic_time () - start, <, 2 * G_USEC_PER_SEC);
}

static void
test_too_long_message (void)
{
  gsize len = GCHAT_MESSAGE_MAX_SIZE + 1;
  g_autofree char *json = g_malloc (len + 1);
  g_autoptr(GError) error = NULL;
  g_autoptr(GchatMessage) message = NULL;
  const char *prefix = "{\"type\":\"ping\",\"x\":\"";

  memset (json, 'a', len);
  memcpy (json, prefix, strlen (prefix));
  memcpy (json + len - 2, "\"}", 2);
  json[len] = '\0';
  message = gchat_message_decode ((const guint8 *) json, len, &error);
  g_assert_error (error, GCHAT_MESSAGE_ERROR, GCHAT_MESSAGE_ERROR_TOO_LONG);
  g_clear_error (&error);

  /* Exactly at the limit is fine. */
  json[len - 3] = '"';
  json[len - 2] = '}';
  message = gchat_message_decode ((const guint8 *) json, len - 1, &error);
  g_assert_no_error (error);
  g_assert_nonnull (message);
}

static void
test_unknown_type (void)
{
  assert_decode_fails ("{}", GCHAT_MESSAGE_ERROR_UNKNOWN_TYPE);
  assert_decode_fails ("{\"id\":1}", GCHAT_MESSAGE_ERROR_UNKNOWN_TYPE);
  assert_decode_fails ("{\"type\":\"hello\"}", GCHAT_MESSAGE_ERROR_UNKNOWN_TYPE);
  assert_decode_fails ("{\"type\":\"PING\"}", GCHAT_MESSAGE_ERROR_UNKNOWN_TYPE);
  assert_decode_fails ("{\"type\":\"\"}", GCHAT_MESSAGE_ERROR_UNKNOWN_TYPE);
  assert_decode_fails ("{\"type\":1}", GCHAT_MESSAGE_ERROR_UNKNOWN_TYPE);
  assert_decode_fails ("{\"type\":null}", GCHAT_MESSAGE_ERROR_UNKNOWN_TYPE);
  assert_decode_fails ("{\"type\":[\"ping\"]}", GCHAT_MESSAGE_ERROR_UNKNOWN_TYPE);
  assert_decode_fails ("{\"type\":{\"name\":\"ping\"}}", GCHAT_MESSAGE_ERROR_UNKNOWN_TYPE);
}

static void
test_missing_field (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GchatMessage) message = NULL;

  message = decode_string ("{\"type\":\"auth\",\"user\":\"alice\"}", &error);
  g_assert_error (error, GCHAT_MESSAGE_ERROR, GCHAT_MESSAGE_ERROR_MISSING_FIELD);
  g_assert_nonnull (strstr (error->message, "“auth”"));
  g_assert_nonnull (strstr (error->message, "“password”"));

  assert_decode_fails ("{\"type\":\"talk\"}", GCHAT_MESSAGE_ERROR_MISSING_FIELD);
  assert_decode_fails ("{\"type\":\"result\",\"request\":\"auth\"}",
                       GCHAT_MESSAGE_ERROR_MISSING_FIELD);
  assert_decode_fails ("{\"type\":\"users\"}", GCHAT_MESSAGE_ERROR_MISSING_FIELD);
  assert_decode_fails ("{\"type\":\"pair-key\",\"user\":\"a\",\"key_id\":1,\"expires\":1}",
                       GCHAT_MESSAGE_ERROR_MISSING_FIELD);
  assert_decode_fails ("{\"type\":\"error\"}", GCHAT_MESSAGE_ERROR_MISSING_FIELD);
  assert_decode_fails ("{\"type\":\"bye\",\"message\":\"x\"}", GCHAT_MESSAGE_ERROR_MISSING_FIELD);
}

static void
test_field_type (void)
{
  static const char *const bad[] = {
    /* STRING */
    "{\"type\":\"talk\",\"user\":1}", "{\"type\":\"talk\",\"user\":[\"a\"]}",
    "{\"type\":\"talk\",\"user\":null}", "{\"type\":\"talk\",\"user\":true}",
    "{\"type\":\"talk\",\"user\":{}}",
    /* INT */
    "{\"type\":\"ping\",\"id\":\"1\"}", "{\"type\":\"ping\",\"id\":1.0}",
    "{\"type\":\"ping\",\"id\":1e2}", "{\"type\":\"ping\",\"id\":true}",
    "{\"type\":\"ping\",\"id\":null}", "{\"type\":\"ping\",\"id\":[1]}",
    /* BOOL */
    "{\"type\":\"result\",\"request\":\"auth\",\"ok\":1}",
    "{\"type\":\"result\",\"request\":\"auth\",\"ok\":\"true\"}",
    "{\"type\":\"result\",\"request\":\"auth\",\"ok\":null}",
    /* STRING_LIST */
    "{\"type\":\"users\",\"users\":\"alice\"}", "{\"type\":\"users\",\"users\":[\"a\",1]}",
    "{\"type\":\"users\",\"users\":[[\"a\"]]}", "{\"type\":\"users\",\"users\":[null]}",
    "{\"type\":\"users\",\"users\":{}}", "{\"type\":\"presence\",\"left\":null}",
    /* BYTES */
    "{\"type\":\"pair-key\",\"user\":\"a\",\"key_id\":1,\"key\":[1,2],\"expires\":1}",
    "{\"type\":\"pair-key\",\"user\":\"a\",\"key_id\":1,\"key\":32,\"expires\":1}",
  };

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_test_message ("%s", bad[i]);
      assert_decode_fails (bad[i], GCHAT_MESSAGE_ERROR_FIELD_TYPE);
    }
}

static char *
repeat (char  c,
        gsize n)
{
  char *s = g_malloc (n + 1);

  memset (s, c, n);
  s[n] = '\0';
  return s;
}

static void
test_string_limits (void)
{
  g_autofree char *name_max = repeat ('n', GCHAT_USER_NAME_MAX);
  g_autofree char *name_over = repeat ('n', GCHAT_USER_NAME_MAX + 1);
  g_autofree char *reason_max = repeat ('r', GCHAT_REASON_MAX);
  g_autofree char *reason_over = repeat ('r', GCHAT_REASON_MAX + 1);
  g_autofree char *json = NULL;
  g_autoptr(GchatMessage) message = NULL;
  g_autoptr(GError) error = NULL;

  json = g_strdup_printf ("{\"type\":\"talk\",\"user\":\"%s\"}", name_max);
  message = assert_decode_ok (json);
  g_clear_pointer (&json, g_free);
  json = g_strdup_printf ("{\"type\":\"talk\",\"user\":\"%s\"}", name_over);
  assert_decode_fails (json, GCHAT_MESSAGE_ERROR_TOO_LONG);
  g_clear_pointer (&json, g_free);

  /* Limits count bytes, not characters: 16 two-byte characters fill 32 bytes. */
  json = g_strdup ("{\"type\":\"talk\",\"user\":\"éééééééééééééééé\"}");
  g_clear_pointer (&message, gchat_message_unref);
  message = assert_decode_ok (json);
  g_clear_pointer (&json, g_free);
  json = g_strdup ("{\"type\":\"talk\",\"user\":\"ééééééééééééééééx\"}");
  assert_decode_fails (json, GCHAT_MESSAGE_ERROR_TOO_LONG);
  g_clear_pointer (&json, g_free);

  assert_decode_fails ("{\"type\":\"talk\",\"user\":\"\"}", GCHAT_MESSAGE_ERROR_OUT_OF_RANGE);

  json = g_strdup_printf ("{\"type\":\"bye\",\"code\":\"c\",\"message\":\"%s\"}", reason_max);
  g_clear_pointer (&message, gchat_message_unref);
  message = assert_decode_ok (json);
  g_clear_pointer (&json, g_free);
  json = g_strdup_printf ("{\"type\":\"bye\",\"code\":\"c\",\"message\":\"%s\"}", reason_over);
  g_clear_pointer (&message, gchat_message_unref);
  message = decode_string (json, &error);
  g_assert_error (error, GCHAT_MESSAGE_ERROR, GCHAT_MESSAGE_ERROR_TOO_LONG);
  g_assert_cmpstr (error->message, ==, "“bye” message: field “message” is longer than 512 bytes");
}

static void
test_list_limits (void)
{
  g_autoptr(GString) json = g_string_new ("{\"type\":\"users\",\"users\":[");
  g_autofree char *name_over = repeat ('n', GCHAT_USER_NAME_MAX + 1);
  g_autofree char *bad_item = NULL;
  g_autoptr(GchatMessage) message = NULL;
  g_auto(GStrv) users = NULL;

  for (guint i = 0; i < GCHAT_USER_LIST_MAX; i++)
    g_string_append_printf (json, "%s\"u%u\"", i == 0 ? "" : ",", i % 1000);
  g_string_append (json, "]}");
  message = assert_decode_ok (json->str);
  users = gchat_message_dup_strv (message, "users");
  g_assert_cmpuint (g_strv_length (users), ==, GCHAT_USER_LIST_MAX);

  g_string_truncate (json, json->len - 2);
  g_string_append (json, ",\"one-more\"]}");
  assert_decode_fails (json->str, GCHAT_MESSAGE_ERROR_TOO_LONG);

  bad_item = g_strdup_printf ("{\"type\":\"presence\",\"joined\":[\"a\",\"%s\"]}", name_over);
  assert_decode_fails (bad_item, GCHAT_MESSAGE_ERROR_TOO_LONG);
  assert_decode_fails ("{\"type\":\"presence\",\"left\":[\"a\",\"\"]}",
                       GCHAT_MESSAGE_ERROR_OUT_OF_RANGE);
  g_clear_pointer (&message, gchat_message_unref);
  message = assert_decode_ok ("{\"type\":\"users\",\"users\":[]}");
}

static void
test_int_limits (void)
{
  g_autoptr(GchatMessage) message = NULL;
  g_autoptr(GError) error = NULL;

  message = assert_decode_ok ("{\"type\":\"ping\",\"id\":2147483647}");
  g_clear_pointer (&message, gchat_message_unref);
  message = assert_decode_ok ("{\"type\":\"ping\",\"id\":-0}");
  assert_decode_fails ("{\"type\":\"ping\",\"id\":2147483648}", GCHAT_MESSAGE_ERROR_OUT_OF_RANGE);
  assert_decode_fails ("{\"type\":\"ping\",\"id\":-1}", GCHAT_MESSAGE_ERROR_OUT_OF_RANGE);
  assert_decode_fails ("{\"type\":\"ping\",\"id\":-9223372036854775808}",
                       GCHAT_MESSAGE_ERROR_OUT_OF_RANGE);
  assert_decode_fails ("{\"type\":\"result\",\"request\":\"x\",\"ok\":true,\"retry_after\":86401}",
                       GCHAT_MESSAGE_ERROR_OUT_OF_RANGE);
  assert_decode_fails ("{\"type\":\"pair-key\",\"user\":\"a\",\"key_id\":4294967296,"
                       "\"key\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\",\"expires\":1}",
                       GCHAT_MESSAGE_ERROR_OUT_OF_RANGE);
  g_clear_pointer (&message, gchat_message_unref);
  message = decode_string ("{\"type\":\"pair-key\",\"user\":\"a\",\"key_id\":4294967295,"
                           "\"key\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\","
                           "\"expires\":9007199254740992}", &error);
  g_assert_error (error, GCHAT_MESSAGE_ERROR, GCHAT_MESSAGE_ERROR_OUT_OF_RANGE);
  g_assert_cmpstr (error->message, ==,
                   "“pair-key” message: field “expires” must be between 0 and 9007199254740991");
}

static void
test_bytes (void)
{
  static const char *const bad_base64[] = {
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",      /* no padding */
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",    /* too much padding */
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=A",     /* padding inside */
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=",     /* bits set under the padding */
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAA AAAAAAAAAAAAAAA=",    /* space */
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA-_",     /* URL-safe alphabet */
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAA\\nAAAAAAAAAAAAAAA=",  /* escaped newline */
    "====",
    "=",
  };
  static const char *const wrong_size[] = {
    "", "AAAA", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",  /* 31 bytes */
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",              /* 33 bytes */
  };
  g_autoptr(GchatMessage) message = NULL;
  GBytes *key;

  for (guint i = 0; i < G_N_ELEMENTS (bad_base64) + G_N_ELEMENTS (wrong_size); i++)
    {
      gsize n_bad = G_N_ELEMENTS (bad_base64);
      const char *text = i < n_bad ? bad_base64[i] : wrong_size[i - n_bad];
      g_autofree char *json = g_strdup_printf (
        "{\"type\":\"pair-key\",\"user\":\"a\",\"key_id\":1,\"key\":\"%s\",\"expires\":1}", text);

      g_test_message ("%s", json);
      assert_decode_fails (json, GCHAT_MESSAGE_ERROR_OUT_OF_RANGE);
    }

  message = assert_decode_ok ("{\"type\":\"pair-key\",\"user\":\"a\",\"key_id\":1,\"expires\":1,"
                              "\"key\":\"/+/+AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"}");
  key = gchat_message_get_bytes (message, "key");
  g_assert_cmpuint (g_bytes_get_size (key), ==, 32);
  g_assert_cmpmem (g_bytes_get_data (key, NULL), 3, "\xff\xef\xfe", 3);
}

static void
test_unknown_fields_dropped (void)
{
  g_autoptr(GchatMessage) message = assert_decode_ok (
    "{\"extra\":{\"deep\":[1,2]},\"type\":\"ping\",\"id\":9,\"user\":\"x\",\"zz\":null}");
  g_autoptr(GBytes) wire = gchat_message_encode (message, NULL);

  g_assert_cmpmem (g_bytes_get_data (wire, NULL), g_bytes_get_size (wire),
                   "{\"type\":\"ping\",\"id\":9}", 22);
}

static void
test_encode_checks (void)
{
  g_autoptr(GchatMessage) auth = gchat_message_new (GCHAT_MESSAGE_AUTH);
  g_autoptr(GchatMessage) ping = gchat_message_new (GCHAT_MESSAGE_PING);
  g_autoptr(GchatMessage) key = gchat_message_new (GCHAT_MESSAGE_PAIR_KEY);
  g_autofree char *long_name = repeat ('n', GCHAT_USER_NAME_MAX + 1);
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) wire = NULL;

  gchat_message_set_string (auth, "user", "alice");
  wire = gchat_message_encode (auth, &error);
  g_assert_error (error, GCHAT_MESSAGE_ERROR, GCHAT_MESSAGE_ERROR_MISSING_FIELD);
  g_assert_null (wire);
  g_clear_error (&error);

  gchat_message_set_string (auth, "password", "hunter22");
  gchat_message_set_string (auth, "user", long_name);
  wire = gchat_message_encode (auth, &error);
  g_assert_error (error, GCHAT_MESSAGE_ERROR, GCHAT_MESSAGE_ERROR_TOO_LONG);
  g_clear_error (&error);

  gchat_message_set_string (auth, "user", "\xff\xfe");
  wire = gchat_message_encode (auth, &error);
  g_assert_error (error, GCHAT_MESSAGE_ERROR, GCHAT_MESSAGE_ERROR_SYNTAX);
  g_clear_error (&error);

  gchat_message_set_int (ping, "id", -5);
  wire = gchat_message_encode (ping, &error);
  g_assert_error (error, GCHAT_MESSAGE_ERROR, GCHAT_MESSAGE_ERROR_OUT_OF_RANGE);
  g_clear_error (&error);

  gchat_message_set_string (key, "user", "bob");
  gchat_message_set_int (key, "key_id", 1);
  gchat_message_set_int (key, "expires", 1);
  gchat_message_set_bytes (key, "key", test_key, 31);
  wire = gchat_message_encode (key, &error);
  g_assert_error (error, GCHAT_MESSAGE_ERROR, GCHAT_MESSAGE_ERROR_OUT_OF_RANGE);
  g_clear_error (&error);
  gchat_message_set_bytes (key, "key", test_key, 32);
  wire = gchat_message_encode (key, &error);
  g_assert_no_error (error);
  g_assert_nonnull (wire);
}

/* Too large only once encoded: two full lists of 32-byte names. */
static void
test_encode_too_large (void)
{
  g_autoptr(GchatMessage) message = gchat_message_new (GCHAT_MESSAGE_PRESENCE);
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) wire = NULL;

  for (guint i = 0; i < GCHAT_USER_LIST_MAX; i++)
    g_ptr_array_add (names, g_strdup_printf ("%032u", i));
  g_ptr_array_add (names, NULL);
  /* A full online list of the longest names still fits one message... */
  {
    g_autoptr(GchatMessage) users = gchat_message_new (GCHAT_MESSAGE_USERS);
    g_autoptr(GBytes) full = NULL;

    gchat_message_set_strv (users, "users", (const char * const *) names->pdata);
    gchat_message_set_bool (users, "more", TRUE);
    full = gchat_message_encode (users, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (g_bytes_get_size (full), <=, GCHAT_MESSAGE_MAX_SIZE);
  }
  /* ...but both presence lists full do not. */
  gchat_message_set_strv (message, "joined", (const char * const *) names->pdata);
  gchat_message_set_strv (message, "left", (const char * const *) names->pdata);
  wire = gchat_message_encode (message, &error);
  g_assert_error (error, GCHAT_MESSAGE_ERROR, GCHAT_MESSAGE_ERROR_TOO_LONG);
  g_assert_null (wire);
}

/* No error message quotes a value: they could be passwords or keys. */
static void
test_errors_hide_values (void)
{
  g_autofree char *secret = repeat ('S', GCHAT_PASSWORD_MAX + 1);
  g_autofree char *json = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GchatMessage) message = NULL;
  const char *const cases[] = {
    "{\"type\":\"auth\",\"user\":\"SECRETSECRETSECRETSECRETSECRETSECRET\",\"password\":\"x\"}",
    "{\"type\":\"auth\",\"user\":\"SECRETSECRET\",\"password\":\"\"}",
    "{\"type\":\"auth\",\"user\":\"a\",\"password\":SECRETSECRET}",
    "{\"type\":\"auth\",\"user\":\"a\",\"password\":[\"SECRETSECRET\"]}",
    "{\"type\":\"SECRETSECRET\"}",
    "{\"type\":\"auth\",\"user\":\"a\",\"password\":\"SECRETSECRET\\x\"}",
    "{\"type\":\"auth\",\"user\":\"a\",\"password\":\"SECRETSECRET\"",
    "{\"type\":\"auth\",\"user\":\"a\",\"password\":'SECRETSECRET'}",
    "{\"type\":\"pair-key\",\"user\":\"a\",\"key_id\":1,\"key\":\"SECRETSECRET\",\"expires\":1}",
    ("{\"type\":\"pair-key\",\"user\":\"a\",\"key_id\":1,\"key\":\"SECRETSECRET====\","
     "\"expires\":1}"),
    "{\"type\":\"ping\",\"id\":123456789012}",
  };

  json = g_strdup_printf ("{\"type\":\"auth\",\"user\":\"a\",\"password\":\"%s\"}", secret);
  message = decode_string (json, &error);
  g_assert_error (error, GCHAT_MESSAGE_ERROR, GCHAT_MESSAGE_ERROR_TOO_LONG);
  g_assert_cmpstr (error->message, ==,
                   "“auth” message: field “password” is longer than 1024 bytes");
  g_clear_error (&error);

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      message = decode_string (cases[i], &error);
      g_assert_null (message);
      g_assert_nonnull (error);
      g_test_message ("%s → %s", cases[i], error->message);
      g_assert_null (strstr (error->message, "SECRET"));
      g_assert_null (strstr (error->message, "123456789012"));
      g_clear_error (&error);
    }
}

/* Using a field the type does not have is a programming error. */
static void
test_setter_misuse (void)
{
  if (g_test_subprocess ())
    {
      g_autoptr(GchatMessage) message = gchat_message_new (GCHAT_MESSAGE_PING);

      gchat_message_set_string (message, "id", "1");
      return;
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_failed ();
  g_test_trap_assert_stderr ("*'ping' messages have no string field 'id'*");
}

static void
test_setter_misuse_unknown (void)
{
  if (g_test_subprocess ())
    {
      g_autoptr(GchatMessage) message = gchat_message_new (GCHAT_MESSAGE_AUTH);

      gchat_message_set_int (message, "type", 1);
      return;
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_failed ();
  g_test_trap_assert_stderr ("*'auth' messages have no integer field 'type'*");
}

/* Valid encodings of every type, as seeds for mutation. */
static GPtrArray *
valid_samples (void)
{
  static const char *const samples[] = {
    "{\"type\":\"sign\",\"user\":\"alice\",\"password\":\"pa55word\",\"id\":1}",
    "{\"type\":\"auth\",\"user\":\"alice\",\"password\":\"pa\\u00e9\\n\",\"id\":2}",
    "{\"type\":\"list\",\"id\":3}",
    "{\"type\":\"talk\",\"user\":\"bob\",\"id\":4}",
    "{\"type\":\"logout\"}",
    "{\"type\":\"ping\",\"id\":5}",
    "{\"type\":\"result\",\"id\":6,\"request\":\"auth\",\"ok\":false,\"code\":\"c\","
    "\"message\":\"m\",\"retry_after\":30,\"user\":\"u\"}",
    "{\"type\":\"users\",\"id\":7,\"users\":[\"a\",\"b\",\"c\"]}",
    "{\"type\":\"presence\",\"joined\":[\"a\"],\"left\":[\"b\",\"c\"]}",
    "{\"type\":\"pair-key\",\"id\":8,\"user\":\"b\",\"key_id\":9,"
    "\"key\":\"AAECA/z9/v8QIDBAUGBwgD4/+++//wAAAACZiHdmVUQ=\",\"expires\":10}",
    "{\"type\":\"error\",\"id\":11,\"code\":\"bad\",\"message\":\"\"}",
    "{\"type\":\"bye\",\"code\":\"shutdown\"}",
    "{\"type\":\"pong\",\"id\":12,\"x\":[{\"y\":[1.5e3,null]}]}",
  };
  GPtrArray *array = g_ptr_array_new ();

  for (guint i = 0; i < G_N_ELEMENTS (samples); i++)
    g_ptr_array_add (array, (gpointer) samples[i]);
  return array;
}

static void
mutate (GByteArray *data)
{
  static const char interesting[] = "{}[]\",:\\0123456789-.eE+ tfnu\x1f\x7f\xc3\xff";
  guint n = (guint) g_test_rand_int_range (1, 5);

  for (guint i = 0; i < n; i++)
    {
      guint pos = data->len > 0 ? (guint) g_test_rand_int_range (0, (gint32) data->len) : 0;
      guint8 byte = g_test_rand_bit () ? (guint8) interesting[g_test_rand_int_range (
                                           0, sizeof interesting - 1)]
                                       : (guint8) g_test_rand_int_range (0, 256);

      switch (g_test_rand_int_range (0, 4))
        {
        case 0:
          if (data->len > 0)
            data->data[pos] ^= (guint8) (1 << g_test_rand_int_range (0, 8));
          break;
        case 1:
          if (data->len > 0)
            data->data[pos] = byte;
          break;
        case 2:
          g_array_insert_val ((GArray *) data, pos, byte);
          break;
        default:
          if (data->len > 0)
            g_byte_array_remove_index (data, pos);
          break;
        }
    }
}

/* Mutated messages either decode, and then encode again, or fail with one of our errors. */
static void
test_random_mutations (void)
{
  g_autoptr(GPtrArray) samples = valid_samples ();
  guint n_ok = 0;

  for (guint i = 0; i < samples->len; i++)
    {
      G_GNUC_UNUSED g_autoptr(GchatMessage) message = assert_decode_ok (samples->pdata[i]);
    }

  for (guint round = 0; round < 5000; round++)
    {
      const char *sample = samples->pdata[round % samples->len];
      g_autoptr(GByteArray) data = g_byte_array_new ();
      g_autoptr(GError) error = NULL;
      g_autoptr(GchatMessage) message = NULL;

      g_byte_array_append (data, (const guint8 *) sample, (guint) strlen (sample));
      mutate (data);
      message = gchat_message_decode (data->data, data->len, &error);
      g_assert_true ((message == NULL) != (error == NULL));
      if (message == NULL)
        {
          g_assert_true (error->domain == GCHAT_MESSAGE_ERROR);
          continue;
        }

      n_ok++;
      {
        g_autoptr(GBytes) wire = gchat_message_encode (message, &error);
        g_autoptr(GchatMessage) again = NULL;

        g_assert_no_error (error);
        again = gchat_message_decode (g_bytes_get_data (wire, NULL), g_bytes_get_size (wire),
                                      &error);
        g_assert_no_error (error);
      }
    }
  g_test_message ("%u of 5000 mutated messages were still valid", n_ok);
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/message/type-names", test_type_names);
  g_test_add_func ("/message/boxed", test_boxed);
  g_test_add_func ("/message/round-trip/client", test_round_trip_client);
  g_test_add_func ("/message/round-trip/server", test_round_trip_server);
  g_test_add_func ("/message/round-trip/server-more", test_round_trip_server_more);
  g_test_add_func ("/message/round-trip/relay", test_round_trip_relay);
  g_test_add_func ("/message/round-trip/mail", test_round_trip_mail);
  g_test_add_func ("/message/decode/relay-mail-limits", test_relay_mail_limits);
  g_test_add_func ("/message/setters-replace", test_setters_replace);
  g_test_add_func ("/message/decode/syntax", test_syntax_errors);
  g_test_add_func ("/message/decode/strict-json-accepted", test_strict_json_accepted);
  g_test_add_func ("/message/decode/escapes", test_escapes_decoded);
  g_test_add_func ("/message/decode/not-utf8-or-nul", test_not_utf8_or_nul);
  g_test_add_func ("/message/decode/deep-nesting", test_deep_nesting);
  g_test_add_func ("/message/decode/too-long", test_too_long_message);
  g_test_add_func ("/message/decode/unknown-type", test_unknown_type);
  g_test_add_func ("/message/decode/missing-field", test_missing_field);
  g_test_add_func ("/message/decode/field-type", test_field_type);
  g_test_add_func ("/message/decode/string-limits", test_string_limits);
  g_test_add_func ("/message/decode/list-limits", test_list_limits);
  g_test_add_func ("/message/decode/int-limits", test_int_limits);
  g_test_add_func ("/message/decode/bytes", test_bytes);
  g_test_add_func ("/message/decode/unknown-fields-dropped", test_unknown_fields_dropped);
  g_test_add_func ("/message/decode/errors-hide-values", test_errors_hide_values);
  g_test_add_func ("/message/encode/checks", test_encode_checks);
  g_test_add_func ("/message/encode/too-large", test_encode_too_large);
  g_test_add_func ("/message/setter-misuse/kind", test_setter_misuse);
  g_test_add_func ("/message/setter-misuse/unknown", test_setter_misuse_unknown);
  g_test_add_func ("/message/random-mutations", test_random_mutations);

  return g_test_run ();
}
