/* SPDX-License-Identifier: GPL-3.0-or-later */
/* What every gchatd test shares: a blocking test client, an in-process server, the daemon. */

#pragma once

#include <gio/gio.h>

#include "gchat-channel.h"
#include "gchat-frame.h"
#include "gchat-handshake.h"
#include "gchat-message.h"
#include "gchat-rsa-key.h"
#include "gchat-test-util.h"
#include "gchatd-server.h"

G_BEGIN_DECLS

/* No wait in these tests takes longer than this, so none can hang; ten times that under
 * valgrind (GCHAT_TEST_SLOW=1). */
#define TEST_WAIT_TIMEOUT_US (gchat_test_scale_us (10 * G_USEC_PER_SEC))
#define TEST_PASSWORD "correct horse battery"

/* The server's key pair: made (2048 bits, to start quickly) at the first call. Clients pin its
 * public half; the in-process server and the daemon are given the private half. */
GchatRsaKey  *test_server_key_get     (void);
/* Pins another key, such as one a daemon made itself; NULL frees the current one. */
void          test_server_key_set     (GchatRsaKey *key);

/* An in-process GchatdServer on a free loopback port, with its files in a temporary folder.
 * The fixture data, when not NULL, is more configuration text; a line `# idle-ms N` in it sets
 * an idle deadline of N ms, shorter than the configuration's 10 s floor. */
typedef struct {
  char         *dir;
  GchatdServer *server;
  guint16       port;
} TestFixture;

void          test_fixture_setup      (TestFixture   *f,
                                       gconstpointer  data);
void          test_fixture_teardown   (TestFixture   *f,
                                       gconstpointer  data);

/* A client that blocks on its socket while still running the main loop an in-process server
 * lives in. Every wait has a deadline of TEST_WAIT_TIMEOUT_US. */
typedef struct {
  GSocketConnection *connection;
  GSocket           *socket;
  GchatHandshake    *handshake;
  GchatChannel      *channel;
  GchatFrameDecoder *decoder;
  GBytes            *client_key_frame; /* as sent, for replay tests */
  GBytes            *last_frame;       /* the last sealed frame sent, likewise */
  gboolean           closed;
} TestClient;

TestClient   *test_client_connect     (guint16            port);
/* The same with a receive buffer of @receive_buffer bytes (SO_RCVBUF, 0 for the default):
 * a small one makes a client that does not read fill the server's queue sooner. */
TestClient   *test_client_connect_with_buffer (guint16    port,
                                       int                receive_buffer);
void          test_client_free        (TestClient        *c);
/* Sends every byte, unless the server closes first: the test finds that out when it reads. */
void          test_client_send_raw    (TestClient        *c,
                                       const guint8      *data,
                                       gsize              len);
/* Reads what has arrived, without waiting; sets `closed` at the end of the stream. */
void          test_client_read_available (TestClient     *c);
/* The next frame payload, or NULL once the server has closed the connection. */
GBytes       *test_client_recv_frame  (TestClient        *c);
/* Reads the hello and sends the client key; the channel is usable at once. */
void          test_client_handshake   (TestClient        *c);
/* Reads the hello and resumes (PROTOCOL.md §3.5) with @ticket and @secret instead of sending
 * the client key; the channel is usable at once, and the server's `result` "resume" follows. */
void          test_client_resume_handshake (TestClient   *c,
                                       GBytes            *ticket,
                                       const guint8      *secret);
void          test_client_send        (TestClient        *c,
                                       GchatMessage      *message);
/* The next message already read, or NULL. */
GchatMessage *test_client_pop_message (TestClient        *c);
/* The next message, or NULL once the server has closed the connection. */
GchatMessage *test_client_recv        (TestClient        *c);
/* The next message of @type, passing over presence and lists. */
GchatMessage *test_client_expect      (TestClient        *c,
                                       GchatMessageType   type);
/* Waits for the server to close, passing over what it still sends, unless @silently. */
void          test_client_wait_closed (TestClient        *c,
                                       gboolean           silently);
void          test_client_expect_closed (TestClient      *c);
/* Sends @type (`sign`, `auth` or `talk`) with id 42 and returns the answer: a `result`, or a
 * `pair-key` for `talk`. */
GchatMessage *test_client_request     (TestClient        *c,
                                       const char        *type,
                                       const char        *user,
                                       const char        *password);
/* A connected client that did @type (`sign` or `auth`) as @user, successfully. */
TestClient   *test_client_log_in      (guint16            port,
                                       const char        *type,
                                       const char        *user,
                                       const char        *password);
/* Waits for a presence batch that has @name in @field (`joined` or `left`). */
void          test_client_expect_presence (TestClient    *c,
                                       const char        *field,
                                       const char        *name);
/* A ping and its pong: the server still serves this client. */
void          test_client_ping        (TestClient        *c);
/* Seals and sends @json as it is, even when it breaks the schema. */
void          test_client_send_json   (TestClient        *c,
                                       const char        *json);
/* Sends a `relay` of @datagram to @to; nothing answers it. */
void          test_client_relay       (TestClient        *c,
                                       const char        *to,
                                       const guint8      *datagram,
                                       gsize              len);
/* Sends a `post` of @text to @to with @id (< 0: none), without waiting for the answer. */
void          test_client_send_post   (TestClient        *c,
                                       const char        *to,
                                       gint64             msg_id,
                                       const char        *text,
                                       gsize              len,
                                       gint64             id);
/* Sends a `post` with id 42 and returns its `result`. */
GchatMessage *test_client_post        (TestClient        *c,
                                       const char        *to,
                                       gint64             msg_id,
                                       const char        *text);
/* Sends a `mail-ack` for @mail_id, or a `receipt-ack` for @receipt_id; nothing answers them. */
void          test_client_mail_ack    (TestClient        *c,
                                       gint64             mail_id);
void          test_client_receipt_ack (TestClient        *c,
                                       gint64             receipt_id);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (TestClient, test_client_free)

/* Waits up to @timeout_ms for any of @clients that is not closed to have something to read,
 * then reads what each has; pop the messages with test_client_pop_message(). */
void          test_clients_poll       (TestClient       **clients,
                                       guint              n,
                                       int                timeout_ms);

/* Asserts a `result` with the error @code (NULL: success) answering id 42. */
void          test_assert_result      (GchatMessage      *result,
                                       const char        *code);
gboolean      test_message_has_name   (GchatMessage      *message,
                                       const char        *field,
                                       const char        *name);

/* The gchatd binary ($GCHATD) on a free loopback port, with its files in a temporary folder
 * and its log (--verbose) in “gchatd.log” there. */
typedef struct {
  char        *dir;
  char        *config_path;
  char        *log_path;
  guint16      port;
  GSubprocess *process;
  char       **env;         /* "NAME=value" pairs added to gchatd's environment, or NULL */
} TestDaemon;

/* Writes the configuration (with @extra, which may be NULL, at its end) and the pinned key,
 * starts gchatd and returns once it listens. NULL, after g_test_skip(), without $GCHATD. */
TestDaemon   *test_daemon_new         (const char        *extra);
/* The same, with gchatd's data (store, key, mailboxes) in @data_dir when not NULL: a folder the
 * caller made and removes, such as a small file system of its own. @env, when not NULL, holds
 * "NAME=value" strings up to NULL that are added to gchatd's environment at every start. */
TestDaemon   *test_daemon_new_full    (const char        *extra,
                                       const char        *data_dir,
                                       const char * const *env);
/* Starts it (again) on the same files and port. */
void          test_daemon_start       (TestDaemon        *d);
/* Sends @signal_number and waits for the exit; after SIGTERM, gchatd must exit 0. */
void          test_daemon_stop        (TestDaemon        *d,
                                       int                signal_number);
/* What gchatd has logged so far. */
char         *test_daemon_dup_log     (TestDaemon        *d);
/* Stops it with SIGTERM when running and removes its folder. */
void          test_daemon_free        (TestDaemon        *d);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (TestDaemon, test_daemon_free)

/* Runs the main loop until @done says so, failing the test after TEST_WAIT_TIMEOUT_US. */
void          test_iterate_until      (gboolean         (*done) (gpointer),
                                       gpointer           data);
void          test_remove_dir         (const char        *path);
/* A loopback port nothing listens on now. */
guint16       test_find_free_port     (void);
/* Whether something listens on @port of 127.0.0.1. */
gboolean      test_port_in_use        (guint16            port);
/* A launcher whose children are killed when the test process dies (on Linux): a daemon left
 * running by a failed test would hold its port and folder for good. */
GSubprocessLauncher *test_launcher_new (GSubprocessFlags   flags);
/* Runs $GCHATD with the arguments that follow, up to NULL. */
GSubprocess  *test_spawn_gchatd       (GSubprocessFlags   flags,
                                       GError           **error,
                                       ...) G_GNUC_NULL_TERMINATED;
/* Runs $GCHATCTL with @password (or nothing) on its standard input and the arguments that
 * follow, up to NULL; returns its exit status, with its standard error in @err. */
int           test_run_gchatctl       (const char        *password,
                                       char             **err,
                                       ...) G_GNUC_NULL_TERMINATED;

G_END_DECLS
