/* SPDX-License-Identifier: GPL-3.0-or-later */
/* gchatd's mailboxes: messages and receipts held for offline users, durable and bounded. */

#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define GCHATD_MAILBOX_ERROR (gchatd_mailbox_error_quark ())

typedef enum {
  GCHATD_MAILBOX_ERROR_IO,               /* a mailbox file could not be read or saved */
  GCHATD_MAILBOX_ERROR_CORRUPT,          /* a mailbox file is not one this version reads */
  GCHATD_MAILBOX_ERROR_INVALID_NAME,     /* a user name outside the allowed set */
  GCHATD_MAILBOX_ERROR_INVALID_ARGUMENT, /* text too long, not UTF-8, or holding a NUL */
  GCHATD_MAILBOX_ERROR_FULL,             /* the recipient's box is at its message or byte limit */
  GCHATD_MAILBOX_ERROR_RECEIPTS_FULL,    /* the sender already has the most receipts waiting */
  GCHATD_MAILBOX_ERROR_TIMED_OUT,        /* gchatd_mailbox_flush_sync() gave up waiting */
} GchatdMailboxError;

/* Per recipient: at most this many messages, of at most this many bytes of text in all. */
#define GCHATD_MAILBOX_MAX_MESSAGES   1000
#define GCHATD_MAILBOX_MAX_BYTES      (8 * 1024 * 1024)
/* Per sender: at most this many "delivered" receipts waiting for the sender to log in. */
#define GCHATD_MAILBOX_MAX_RECEIPTS   1000
/* The longest text of one message, in bytes of UTF-8. */
#define GCHATD_MAILBOX_MAX_TEXT       65536

GQuark gchatd_mailbox_error_quark (void);

/* One held message, immutable and reference-counted, so it can be read on any thread. */
#define GCHATD_TYPE_MAIL (gchatd_mail_get_type ())

typedef struct _GchatdMail GchatdMail;

GType        gchatd_mail_get_type       (void) G_GNUC_CONST;
GchatdMail  *gchatd_mail_ref            (GchatdMail       *mail);
void         gchatd_mail_unref          (GchatdMail       *mail);
/* Assigned by the mailbox: unique among the messages and receipts of one user, and never
 * reused while the mailbox folder exists (see the .c). */
guint64      gchatd_mail_get_id         (const GchatdMail *mail);
/* The names as the post gave them. */
const char  *gchatd_mail_get_sender     (const GchatdMail *mail);
const char  *gchatd_mail_get_recipient  (const GchatdMail *mail);
/* The sender's own id of the message, for its "delivered" state. */
guint64      gchatd_mail_get_msg_id     (const GchatdMail *mail);
/* UTF-8 without NUL, NUL-terminated; @len (may be NULL) gets its length in bytes. */
const char  *gchatd_mail_get_text       (const GchatdMail *mail,
                                         gsize            *len);
/* When the message was queued, in seconds since 1970 (UTC). */
gint64       gchatd_mail_get_queued     (const GchatdMail *mail);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (GchatdMail, gchatd_mail_unref)

/* One "delivered" receipt waiting for its sender: @recipient got message @msg_id. */
#define GCHATD_TYPE_MAIL_RECEIPT (gchatd_mail_receipt_get_type ())

typedef struct _GchatdMailReceipt GchatdMailReceipt;

GType              gchatd_mail_receipt_get_type      (void) G_GNUC_CONST;
GchatdMailReceipt *gchatd_mail_receipt_ref           (GchatdMailReceipt       *receipt);
void               gchatd_mail_receipt_unref         (GchatdMailReceipt       *receipt);
guint64            gchatd_mail_receipt_get_id        (const GchatdMailReceipt *receipt);
const char        *gchatd_mail_receipt_get_sender    (const GchatdMailReceipt *receipt);
const char        *gchatd_mail_receipt_get_recipient (const GchatdMailReceipt *receipt);
guint64            gchatd_mail_receipt_get_msg_id    (const GchatdMailReceipt *receipt);
/* When the message was delivered, in seconds since 1970 (UTC). */
gint64             gchatd_mail_receipt_get_delivered (const GchatdMailReceipt *receipt);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (GchatdMailReceipt, gchatd_mail_receipt_unref)

#define GCHATD_TYPE_MAILBOX (gchatd_mailbox_get_type ())

G_DECLARE_FINAL_TYPE (GchatdMailbox, gchatd_mailbox, GCHATD, MAILBOX, GObject)

/* Loads every box in @folder, which is made (0700) when missing. A box file that cannot be read
 * or is not valid fails the whole load with an error naming the file and the position, and no
 * file is touched. All functions may be called from any thread; callbacks run in the
 * thread-default main context of the caller. */
GchatdMailbox *gchatd_mailbox_new               (const char          *folder,
                                                 GError             **error);
const char    *gchatd_mailbox_get_folder        (GchatdMailbox       *self);
/* How many box files have been written or deleted since the mailbox was loaded. */
guint          gchatd_mailbox_get_n_writes      (GchatdMailbox       *self);

/* Queues @text for @recipient (any case; the box is the same). Completes with TRUE only once
 * the message is durable; posts made while a save runs are saved together by the next one.
 * Refused at once with GCHATD_MAILBOX_ERROR_FULL when the box would hold more than
 * GCHATD_MAILBOX_MAX_MESSAGES messages or GCHATD_MAILBOX_MAX_BYTES bytes of text, counting
 * posts not yet saved. A failed save fails the post and leaves the file as it was. */
void           gchatd_mailbox_post_async        (GchatdMailbox       *self,
                                                 const char          *recipient,
                                                 const char          *sender,
                                                 guint64              sender_msg_id,
                                                 const char          *text,
                                                 gsize                len,
                                                 GCancellable        *cancellable,
                                                 GAsyncReadyCallback  callback,
                                                 gpointer             user_data);
/* The held message on success (owned), or NULL. */
GchatdMail    *gchatd_mailbox_post_finish       (GchatdMailbox       *self,
                                                 GAsyncResult        *result,
                                                 GError             **error);

/* The durable messages of @recipient, oldest first (a GPtrArray of GchatdMail, owning them);
 * empty for an unknown or invalid name. */
GPtrArray     *gchatd_mailbox_peek              (GchatdMailbox       *self,
                                                 const char          *recipient);

/* Removes the messages @ids of @recipient, once they were delivered. Ids that are not in the
 * box (removed before, or never there) are skipped, so a repeated acknowledgement is harmless.
 * Completes once the box without them is durable, with a GPtrArray of the GchatdMail really
 * removed, so that the server can tell each sender "delivered". */
void           gchatd_mailbox_remove_async      (GchatdMailbox       *self,
                                                 const char          *recipient,
                                                 const guint64       *ids,
                                                 gsize                n_ids,
                                                 GCancellable        *cancellable,
                                                 GAsyncReadyCallback  callback,
                                                 gpointer             user_data);
GPtrArray     *gchatd_mailbox_remove_finish     (GchatdMailbox       *self,
                                                 GAsyncResult        *result,
                                                 GError             **error);

/* Keeps a "delivered" receipt for @sender, who is offline, saying that @recipient got
 * @sender_msg_id. Durable before it completes; GCHATD_MAILBOX_ERROR_RECEIPTS_FULL past
 * GCHATD_MAILBOX_MAX_RECEIPTS. */
void           gchatd_mailbox_add_receipt_async (GchatdMailbox       *self,
                                                 const char          *sender,
                                                 const char          *recipient,
                                                 guint64              sender_msg_id,
                                                 GCancellable        *cancellable,
                                                 GAsyncReadyCallback  callback,
                                                 gpointer             user_data);
gboolean       gchatd_mailbox_add_receipt_finish (GchatdMailbox      *self,
                                                  GAsyncResult       *result,
                                                  GError            **error);

/* The durable receipts waiting for @sender, oldest first (GPtrArray of GchatdMailReceipt). They
 * stay until removed with gchatd_mailbox_remove_receipts_async(), so that a receipt lost with a
 * connection is sent again at the next log-in. */
GPtrArray     *gchatd_mailbox_peek_receipts     (GchatdMailbox       *self,
                                                 const char          *sender);
void           gchatd_mailbox_remove_receipts_async  (GchatdMailbox       *self,
                                                      const char          *sender,
                                                      const guint64       *ids,
                                                      gsize                n_ids,
                                                      GCancellable        *cancellable,
                                                      GAsyncReadyCallback  callback,
                                                      gpointer             user_data);
/* The GchatdMailReceipt really removed. */
GPtrArray     *gchatd_mailbox_remove_receipts_finish (GchatdMailbox       *self,
                                                      GAsyncResult        *result,
                                                      GError             **error);

/* Blocks until every change made so far is saved or has failed, or @timeout_ms passed (then
 * GCHATD_MAILBOX_ERROR_TIMED_OUT). For a graceful stop: callbacks still need the main loop. */
gboolean       gchatd_mailbox_flush_sync        (GchatdMailbox       *self,
                                                 guint                timeout_ms,
                                                 GError             **error);

G_END_DECLS
