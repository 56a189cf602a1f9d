/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Slows failed log-ins down per user name and per source address, with exponential backoff. */

#include "config.h"

#include <inttypes.h>
#include <string.h>

#include <gio/gio.h>

#include "gchatd-throttle.h"

#define USEC_PER_SEC G_GINT64_CONSTANT (1000000)

/* Past this many doublings every delay is at its cap; it also keeps the shift defined. */
#define MAX_DOUBLINGS 30

/* The failures of one user name or one address. */
typedef struct {
  GList  link;            /* in the table's mild or severe queue; data is the record */
  char  *key;
  guint  failures;        /* since the record was made or last forgotten */
  gint64 last_failure_us;
  gint64 locked_until_us; /* no attempt before this time; 0 when never locked */
} Record;

/* All the records of one kind, with their rules. */
typedef struct {
  const char *what; /* "name" or "address", for debug messages */
  guint       free_failures;
  gint64      max_delay_us;
  guint       max_records;
  GHashTable *records; /* key → Record, which owns its key */
  /* Both queues are ordered by last failure, oldest first, as records move to the tail on
   * each failure. "Mild" records are still within their free failures and are dropped first
   * when the table is full; "severe" records are locked out or have been. */
  GQueue      mild;
  GQueue      severe;
} Table;

struct _GchatdThrottle
{
  GObject parent_instance;

  Table   names;
  Table   addresses;
};

G_DEFINE_FINAL_TYPE (GchatdThrottle, gchatd_throttle, G_TYPE_OBJECT)

static void
record_free (gpointer data)
{
  Record *record = data;

  g_free (record->key);
  g_free (record);
}

static void
table_init (Table      *table,
            const char *what,
            guint       free_failures,
            guint       max_delay_s,
            guint       max_records)
{
  table->what = what;
  table->free_failures = free_failures;
  table->max_delay_us = max_delay_s * USEC_PER_SEC;
  table->max_records = max_records;
  table->records = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, record_free);
  g_queue_init (&table->mild);
  g_queue_init (&table->severe);
}

static void
table_clear (Table *table)
{
  /* The queue links live inside the records, which the hash table frees. */
  g_queue_init (&table->mild);
  g_queue_init (&table->severe);
  g_clear_pointer (&table->records, g_hash_table_unref);
}

static GQueue *
table_queue_of (Table  *table,
                Record *record)
{
  return record->failures > table->free_failures ? &table->severe : &table->mild;
}

static void
table_remove (Table  *table,
              Record *record)
{
  g_queue_unlink (table_queue_of (table, record), &record->link);
  g_hash_table_remove (table->records, record->key);
}

/* Brings @record to @now_us and says whether it still counts. When the clock has gone
 * backwards, the record is moved back with it, keeping its remaining delay: no lock-out then
 * lasts longer than the maximum delay, and none is lifted early either. */
static gboolean
record_is_current (Record *record,
                   gint64  now_us)
{
  if (now_us < record->last_failure_us)
    {
      gint64 shift = record->last_failure_us - now_us;

      record->last_failure_us = now_us;
      record->locked_until_us -= shift;
    }

  return now_us - record->last_failure_us < GCHATD_THROTTLE_DECAY_S * USEC_PER_SEC;
}

/* Microseconds before @key may try again; 0 when it may now. */
static gint64
table_wait (Table      *table,
            const char *key,
            gint64      now_us)
{
  Record *record;

  if (key == NULL)
    return 0;

  record = g_hash_table_lookup (table->records, key);
  if (record == NULL)
    return 0;
  if (!record_is_current (record, now_us))
    {
      table_remove (table, record);
      return 0;
    }

  return MAX (record->locked_until_us - now_us, 0);
}

/* Makes room for one more record: the mildest, oldest one goes. */
static void
table_make_room (Table *table)
{
  GList *oldest;

  if (g_hash_table_size (table->records) < table->max_records)
    return;

  oldest = table->mild.head != NULL ? table->mild.head : table->severe.head;
  if (oldest != NULL)
    table_remove (table, oldest->data);
}

/* The record of @key, made (empty) when there is none or the old one has decayed. */
static Record *
table_lookup_or_add (Table      *table,
                     const char *key,
                     gint64      now_us)
{
  Record *record = g_hash_table_lookup (table->records, key);

  if (record != NULL && !record_is_current (record, now_us))
    {
      table_remove (table, record);
      record = NULL;
    }
  if (record != NULL)
    return record;

  table_make_room (table);
  record = g_new0 (Record, 1);
  record->key = g_strdup (key);
  record->link.data = record;
  g_hash_table_insert (table->records, record->key, record);
  g_queue_push_tail_link (&table->mild, &record->link);

  return record;
}

static gint64
saturating_add (gint64 a,
                gint64 b)
{
  return a > G_MAXINT64 - b ? G_MAXINT64 : a + b;
}

/* @key as it may appear in a log: it came from the network, so control characters are
 * escaped and invalid UTF-8 replaced, while other letters stay as they are. */
static char *
printable_key (const char *key)
{
  g_autofree char *valid = g_utf8_make_valid (key, -1);
  char             non_ascii[129];

  for (guint i = 0; i < 128; i++)
    non_ascii[i] = (char) (0x80 + i);
  non_ascii[128] = '\0';

  return g_strescape (valid, non_ascii);
}

static void
table_note_failure (Table      *table,
                    const char *key,
                    gint64      now_us)
{
  Record *record;

  if (key == NULL)
    return;

  record = table_lookup_or_add (table, key, now_us);

  /* Off its queue while the count changes, since the count picks the queue. */
  g_queue_unlink (table_queue_of (table, record), &record->link);
  if (record->failures < G_MAXUINT)
    record->failures++;
  record->last_failure_us = now_us;

  if (record->failures > table->free_failures)
    {
      guint            doublings = MIN (record->failures - table->free_failures - 1,
                                        MAX_DOUBLINGS);
      gint64           delay_us = MIN ((GCHATD_THROTTLE_INITIAL_DELAY_S * USEC_PER_SEC)
                                         << doublings,
                                       table->max_delay_us);
      g_autofree char *printable = printable_key (key);

      record->locked_until_us = saturating_add (now_us, delay_us);
      g_debug ("Log-ins for the %s “%s” held back for %" PRId64 " s after %u failures",
               table->what, printable, delay_us / USEC_PER_SEC, record->failures);
    }
  g_queue_push_tail_link (table_queue_of (table, record), &record->link);
}

/* Drops the decayed records of one queue, oldest first, up to the first one still current. */
static guint
queue_expire (Table  *table,
              GQueue *queue,
              gint64  now_us)
{
  guint  dropped = 0;
  GList *link = queue->head;

  while (link != NULL)
    {
      Record *record = link->data;
      gboolean was_ahead = now_us < record->last_failure_us;

      link = link->next;
      if (!record_is_current (record, now_us))
        {
          table_remove (table, record);
          dropped++;
        }
      else if (!was_ahead)
        break;
      /* After a backwards clock jump, records "from the future" were just rebased; the walk
       * goes on past them so that all get rebased at once. */
    }

  return dropped;
}

/* The key of a user name: case-insensitive, and bounded in size. */
static char *
name_key (const char *name)
{
  g_autofree char *bounded = NULL;
  g_autofree char *normalized = NULL;

  if (name == NULL)
    return NULL;

  bounded = g_strndup (name, GCHATD_THROTTLE_MAX_KEY_SIZE);
  if (!g_utf8_validate (bounded, -1, NULL))
    return g_ascii_strdown (bounded, -1);

  normalized = g_utf8_normalize (bounded, -1, G_NORMALIZE_NFKC);
  return g_utf8_casefold (normalized, -1);
}

/* The key of an IPv6 address: its /64 prefix, or the IPv4 address it maps. */
static char *
ipv6_key (GInetAddress *inet)
{
  const guint8  *bytes = g_inet_address_to_bytes (inet);
  static const guint8 v4_mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
  guint8         prefix[16] = { 0 };
  g_autoptr (GInetAddress) network = NULL;
  g_autofree char *text = NULL;

  if (memcmp (bytes, v4_mapped, sizeof v4_mapped) == 0)
    return g_strdup_printf ("%u.%u.%u.%u", bytes[12], bytes[13], bytes[14], bytes[15]);

  memcpy (prefix, bytes, 8);
  network = g_inet_address_new_from_bytes (prefix, G_SOCKET_FAMILY_IPV6);
  text = g_inet_address_to_string (network);
  return g_strconcat (text, "/64", NULL);
}

/* The key of a source address (see the header). */
static char *
address_key (const char *address)
{
  g_autoptr (GInetAddress) inet = NULL;

  if (address == NULL)
    return NULL;
  if (strnlen (address, GCHATD_THROTTLE_MAX_KEY_SIZE + 1) > GCHATD_THROTTLE_MAX_KEY_SIZE)
    return g_strndup (address, GCHATD_THROTTLE_MAX_KEY_SIZE);

  inet = g_inet_address_new_from_string (address);
  if (inet == NULL)
    return g_strdup (address);
  if (g_inet_address_get_family (inet) == G_SOCKET_FAMILY_IPV6)
    return ipv6_key (inet);

  /* Written back by GIO so that equal addresses give equal keys. */
  return g_inet_address_to_string (inet);
}

static void
gchatd_throttle_finalize (GObject *object)
{
  GchatdThrottle *self = GCHATD_THROTTLE (object);

  table_clear (&self->names);
  table_clear (&self->addresses);

  G_OBJECT_CLASS (gchatd_throttle_parent_class)->finalize (object);
}

static void
gchatd_throttle_class_init (GchatdThrottleClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = gchatd_throttle_finalize;
}

static void
gchatd_throttle_init (GchatdThrottle *self)
{
  table_init (&self->names, "name", GCHATD_THROTTLE_NAME_FREE_FAILURES,
              GCHATD_THROTTLE_NAME_MAX_DELAY_S, GCHATD_THROTTLE_MAX_NAMES);
  table_init (&self->addresses, "address", GCHATD_THROTTLE_ADDRESS_FREE_FAILURES,
              GCHATD_THROTTLE_ADDRESS_MAX_DELAY_S, GCHATD_THROTTLE_MAX_ADDRESSES);
}

GchatdThrottle *
gchatd_throttle_new (void)
{
  return g_object_new (GCHATD_TYPE_THROTTLE, NULL);
}

gboolean
gchatd_throttle_check (GchatdThrottle *self,
                       const char     *name,
                       const char     *address,
                       gint64          now_us,
                       guint          *retry_after_s)
{
  g_autofree char *nkey = NULL;
  g_autofree char *akey = NULL;
  gint64           wait_us;

  if (retry_after_s != NULL)
    *retry_after_s = 0;

  g_return_val_if_fail (GCHATD_IS_THROTTLE (self), FALSE);
  g_return_val_if_fail (now_us >= 0, FALSE);

  nkey = name_key (name);
  akey = address_key (address);
  wait_us = MAX (table_wait (&self->names, nkey, now_us),
                 table_wait (&self->addresses, akey, now_us));

  if (retry_after_s != NULL)
    *retry_after_s = (guint) ((wait_us + USEC_PER_SEC - 1) / USEC_PER_SEC);

  return wait_us == 0;
}

void
gchatd_throttle_failure (GchatdThrottle *self,
                         const char     *name,
                         const char     *address,
                         gint64          now_us)
{
  g_autofree char *nkey = NULL;
  g_autofree char *akey = NULL;

  g_return_if_fail (GCHATD_IS_THROTTLE (self));
  g_return_if_fail (now_us >= 0);

  nkey = name_key (name);
  akey = address_key (address);
  table_note_failure (&self->names, nkey, now_us);
  table_note_failure (&self->addresses, akey, now_us);
}

void
gchatd_throttle_success (GchatdThrottle *self,
                         const char     *name,
                         const char     *address,
                         gint64          now_us)
{
  g_autofree char *nkey = NULL;
  Record          *record;

  g_return_if_fail (GCHATD_IS_THROTTLE (self));
  g_return_if_fail (now_us >= 0);

  nkey = name_key (name);
  if (nkey == NULL)
    return;

  record = g_hash_table_lookup (self->names.records, nkey);
  if (record != NULL)
    table_remove (&self->names, record);
}

guint
gchatd_throttle_expire (GchatdThrottle *self,
                        gint64          now_us)
{
  guint dropped = 0;

  g_return_val_if_fail (GCHATD_IS_THROTTLE (self), 0);
  g_return_val_if_fail (now_us >= 0, 0);

  dropped += queue_expire (&self->names, &self->names.mild, now_us);
  dropped += queue_expire (&self->names, &self->names.severe, now_us);
  dropped += queue_expire (&self->addresses, &self->addresses.mild, now_us);
  dropped += queue_expire (&self->addresses, &self->addresses.severe, now_us);

  return dropped;
}

guint
gchatd_throttle_get_n_names (GchatdThrottle *self)
{
  g_return_val_if_fail (GCHATD_IS_THROTTLE (self), 0);

  return g_hash_table_size (self->names.records);
}

guint
gchatd_throttle_get_n_addresses (GchatdThrottle *self)
{
  g_return_val_if_fail (GCHATD_IS_THROTTLE (self), 0);

  return g_hash_table_size (self->addresses.records);
}
