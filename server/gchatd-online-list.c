/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Who is online, kept as the `users` messages that tell it.
 *
 * The names sit in pages of GCHATD_ONLINE_LIST_PAGE_SIZE, every page full but the last. A new
 * name goes at the end of the last page; a name that leaves takes the last name of the last page
 * in its place. Either way at most two pages change, and only those are encoded again: with ten
 * thousand users online, log-ins and log-outs that each encoded the whole list again were most
 * of gchatd's work. The order of the names means nothing (clients sort them). */

#include "config.h"

#include "gchat-message.h"
#include "gchatd-online-list.h"

typedef struct _Page Page;

typedef struct {
  char  *user;   /* as shown */
  char  *folded; /* the key */
  Page  *page;
  guint  index;  /* in page->entries */
} Entry;

struct _Page {
  GPtrArray *entries; /* Entry, borrowed from the table */
  GBytes    *more;    /* encoded with `more`, or NULL when it changed */
  GBytes    *last;    /* encoded without it, or NULL */
};

struct _GchatdOnlineList {
  GHashTable *entries; /* folded name → Entry, owned */
  GPtrArray  *pages;   /* Page, owned */
};

static void
entry_free (gpointer data)
{
  Entry *entry = data;

  g_free (entry->user);
  g_free (entry->folded);
  g_free (entry);
}

static void
page_changed (Page *page)
{
  g_clear_pointer (&page->more, g_bytes_unref);
  g_clear_pointer (&page->last, g_bytes_unref);
}

static void
page_free (gpointer data)
{
  Page *page = data;

  page_changed (page);
  g_ptr_array_unref (page->entries);
  g_free (page);
}

GchatdOnlineList *
gchatd_online_list_new (void)
{
  GchatdOnlineList *self = g_new0 (GchatdOnlineList, 1);

  G_STATIC_ASSERT (GCHATD_ONLINE_LIST_PAGE_SIZE <= GCHAT_USER_LIST_MAX);

  self->entries = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, entry_free);
  self->pages = g_ptr_array_new_with_free_func (page_free);
  return self;
}

void
gchatd_online_list_free (GchatdOnlineList *self)
{
  if (self == NULL)
    return;
  g_ptr_array_unref (self->pages);
  g_hash_table_unref (self->entries);
  g_free (self);
}

void
gchatd_online_list_add (GchatdOnlineList *self,
                        const char       *user)
{
  g_autofree char *folded = NULL;
  Page *page = NULL;
  Entry *entry;

  g_return_if_fail (self != NULL);
  g_return_if_fail (user != NULL);

  folded = g_ascii_strdown (user, -1);
  if (g_hash_table_contains (self->entries, folded))
    return;
  if (self->pages->len > 0)
    page = g_ptr_array_index (self->pages, self->pages->len - 1);
  if (page == NULL || page->entries->len >= GCHATD_ONLINE_LIST_PAGE_SIZE)
    {
      page = g_new0 (Page, 1);
      page->entries = g_ptr_array_sized_new (GCHATD_ONLINE_LIST_PAGE_SIZE);
      g_ptr_array_add (self->pages, page);
    }
  entry = g_new0 (Entry, 1);
  entry->user = g_strdup (user);
  entry->folded = g_steal_pointer (&folded);
  entry->page = page;
  entry->index = page->entries->len;
  g_ptr_array_add (page->entries, entry);
  g_hash_table_insert (self->entries, entry->folded, entry);
  page_changed (page);
}

void
gchatd_online_list_remove (GchatdOnlineList *self,
                           const char       *user)
{
  g_autofree char *folded = NULL;
  Page *last_page;
  Entry *entry, *moved;

  g_return_if_fail (self != NULL);
  g_return_if_fail (user != NULL);

  folded = g_ascii_strdown (user, -1);
  entry = g_hash_table_lookup (self->entries, folded);
  if (entry == NULL)
    return;
  last_page = g_ptr_array_index (self->pages, self->pages->len - 1);
  moved = g_ptr_array_steal_index (last_page->entries, last_page->entries->len - 1);
  if (moved != entry)
    {
      moved->page = entry->page;
      moved->index = entry->index;
      entry->page->entries->pdata[entry->index] = moved;
    }
  page_changed (entry->page);
  page_changed (last_page);
  if (last_page->entries->len == 0)
    g_ptr_array_remove_index (self->pages, self->pages->len - 1);
  g_hash_table_remove (self->entries, folded);
}

guint
gchatd_online_list_get_size (GchatdOnlineList *self)
{
  g_return_val_if_fail (self != NULL, 0);

  return g_hash_table_size (self->entries);
}

static GBytes *
page_encode (Page     *page,
             gboolean  more)
{
  g_autoptr(GchatMessage) message = gchat_message_new (GCHAT_MESSAGE_USERS);
  g_autofree const char **names = g_new0 (const char *, page->entries->len + 1);

  for (guint i = 0; i < page->entries->len; i++)
    names[i] = ((Entry *) g_ptr_array_index (page->entries, i))->user;
  gchat_message_set_strv (message, "users", names);
  if (more)
    gchat_message_set_bool (message, "more", TRUE);
  return gchat_message_encode (message, NULL);
}

GPtrArray *
gchatd_online_list_encode (GchatdOnlineList *self)
{
  GPtrArray *messages;

  g_return_val_if_fail (self != NULL, NULL);

  messages = g_ptr_array_new_full (self->pages->len, (GDestroyNotify) g_bytes_unref);
  for (guint i = 0; i < self->pages->len; i++)
    {
      Page *page = g_ptr_array_index (self->pages, i);
      gboolean more = i + 1 < self->pages->len;
      GBytes **json = more ? &page->more : &page->last;

      if (*json == NULL)
        *json = page_encode (page, more);
      /* Names were checked at log-in, so this cannot fail; a page that did is left out. */
      if (*json != NULL)
        g_ptr_array_add (messages, g_bytes_ref (*json));
    }
  return messages;
}
