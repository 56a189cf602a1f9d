/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The users online, as a sorted GListModel that follows presence in batches. */

#include "config.h"

#include <string.h>

#include "gchat-online-users.h"

/* A batch with more changes than this is applied by rebuilding the list and announcing one
 * change, so that 10,000 joins cost one "items-changed", not 10,000. */
#define BATCH_REBUILD 64

struct _GchatOnlineUser
{
  GObject  parent_instance;
  char    *name;
  char    *folded;
};

G_DEFINE_FINAL_TYPE (GchatOnlineUser, gchat_online_user, G_TYPE_OBJECT)

enum {
  USER_PROP_0,
  USER_PROP_NAME,
  USER_N_PROPS
};

static GParamSpec *user_properties[USER_N_PROPS];

static void
gchat_online_user_finalize (GObject *object)
{
  GchatOnlineUser *self = GCHAT_ONLINE_USER (object);

  g_free (self->name);
  g_free (self->folded);
  G_OBJECT_CLASS (gchat_online_user_parent_class)->finalize (object);
}

static void
gchat_online_user_get_property (GObject    *object,
                                guint       prop_id,
                                GValue     *value,
                                GParamSpec *pspec)
{
  GchatOnlineUser *self = GCHAT_ONLINE_USER (object);

  switch (prop_id)
    {
    case USER_PROP_NAME:
      g_value_set_string (value, self->name);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
gchat_online_user_class_init (GchatOnlineUserClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = gchat_online_user_finalize;
  object_class->get_property = gchat_online_user_get_property;

  user_properties[USER_PROP_NAME] =
    g_param_spec_string ("name", NULL, NULL, NULL, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, USER_N_PROPS, user_properties);
}

static void
gchat_online_user_init (GchatOnlineUser *self)
{
}

static GchatOnlineUser *
gchat_online_user_new (const char *name)
{
  GchatOnlineUser *self = g_object_new (GCHAT_TYPE_ONLINE_USER, NULL);

  self->name = g_strdup (name);
  self->folded = g_ascii_strdown (name, -1);
  return self;
}

const char *
gchat_online_user_get_name (GchatOnlineUser *self)
{
  g_return_val_if_fail (GCHAT_IS_ONLINE_USER (self), NULL);

  return self->name;
}

struct _GchatOnlineUsers
{
  GObject     parent_instance;
  GPtrArray  *items;  /* of GchatOnlineUser, sorted by folded name */
  GHashTable *index;  /* folded name → GchatOnlineUser (borrowed from items) */
};

static void list_model_iface_init (GListModelInterface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (GchatOnlineUsers, gchat_online_users, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (G_TYPE_LIST_MODEL, list_model_iface_init))

static GType
get_item_type (GListModel *model)
{
  return GCHAT_TYPE_ONLINE_USER;
}

static guint
get_n_items (GListModel *model)
{
  return GCHAT_ONLINE_USERS (model)->items->len;
}

static gpointer
get_item (GListModel *model,
          guint       position)
{
  GchatOnlineUsers *self = GCHAT_ONLINE_USERS (model);

  if (position >= self->items->len)
    return NULL;
  return g_object_ref (g_ptr_array_index (self->items, position));
}

static void
list_model_iface_init (GListModelInterface *iface)
{
  iface->get_item_type = get_item_type;
  iface->get_n_items = get_n_items;
  iface->get_item = get_item;
}

static void
gchat_online_users_finalize (GObject *object)
{
  GchatOnlineUsers *self = GCHAT_ONLINE_USERS (object);

  g_hash_table_unref (self->index);
  g_ptr_array_unref (self->items);
  G_OBJECT_CLASS (gchat_online_users_parent_class)->finalize (object);
}

static void
gchat_online_users_class_init (GchatOnlineUsersClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = gchat_online_users_finalize;
}

static void
gchat_online_users_init (GchatOnlineUsers *self)
{
  self->items = g_ptr_array_new_with_free_func (g_object_unref);
  self->index = g_hash_table_new (g_str_hash, g_str_equal);
}

GchatOnlineUsers *
gchat_online_users_new (void)
{
  return g_object_new (GCHAT_TYPE_ONLINE_USERS, NULL);
}

static int
compare_users (gconstpointer a,
               gconstpointer b)
{
  const GchatOnlineUser *ua = *(GchatOnlineUser * const *) a;
  const GchatOnlineUser *ub = *(GchatOnlineUser * const *) b;

  return strcmp (ua->folded, ub->folded);
}

/* Where @folded is, or would go. */
static guint
find_position (GchatOnlineUsers *self,
               const char       *folded)
{
  guint lo = 0;
  guint hi = self->items->len;

  while (lo < hi)
    {
      guint mid = lo + (hi - lo) / 2;
      GchatOnlineUser *user = g_ptr_array_index (self->items, mid);

      if (strcmp (user->folded, folded) < 0)
        lo = mid + 1;
      else
        hi = mid;
    }
  return lo;
}

static gboolean
add_one (GchatOnlineUsers *self,
         const char       *name,
         gboolean          announce)
{
  g_autofree char *folded = g_ascii_strdown (name, -1);
  GchatOnlineUser *user;
  guint position;

  if (g_hash_table_contains (self->index, folded))
    return FALSE;
  user = gchat_online_user_new (name);
  g_hash_table_insert (self->index, user->folded, user);
  if (!announce)
    {
      g_ptr_array_add (self->items, user);
      return TRUE;
    }
  position = find_position (self, folded);
  g_ptr_array_insert (self->items, position, user);
  g_list_model_items_changed (G_LIST_MODEL (self), position, 0, 1);
  return TRUE;
}

static gboolean
remove_one (GchatOnlineUsers *self,
            const char       *name,
            gboolean          announce)
{
  g_autofree char *folded = g_ascii_strdown (name, -1);
  GchatOnlineUser *user = g_hash_table_lookup (self->index, folded);
  guint position;

  if (user == NULL)
    return FALSE;
  g_hash_table_remove (self->index, folded);
  position = find_position (self, folded);
  g_ptr_array_remove_index (self->items, position);
  if (announce)
    g_list_model_items_changed (G_LIST_MODEL (self), position, 1, 0);
  return TRUE;
}

void
gchat_online_users_update (GchatOnlineUsers   *self,
                           const char * const *joined,
                           const char * const *left)
{
  guint n_changes = (joined ? g_strv_length ((char **) joined) : 0)
                    + (left ? g_strv_length ((char **) left) : 0);
  gboolean announce = n_changes <= BATCH_REBUILD;
  guint old_len = self->items->len;
  gboolean changed = FALSE;

  g_return_if_fail (GCHAT_IS_ONLINE_USERS (self));

  for (guint i = 0; left != NULL && left[i] != NULL; i++)
    changed |= remove_one (self, left[i], announce);
  for (guint i = 0; joined != NULL && joined[i] != NULL; i++)
    changed |= add_one (self, joined[i], announce);
  if (announce || !changed)
    return;
  g_ptr_array_sort (self->items, compare_users);
  g_list_model_items_changed (G_LIST_MODEL (self), 0, old_len, self->items->len);
}

void
gchat_online_users_set_all (GchatOnlineUsers   *self,
                            const char * const *names)
{
  guint old_len;

  g_return_if_fail (GCHAT_IS_ONLINE_USERS (self));

  old_len = self->items->len;
  g_hash_table_remove_all (self->index);
  g_ptr_array_set_size (self->items, 0);
  for (guint i = 0; names != NULL && names[i] != NULL; i++)
    add_one (self, names[i], FALSE);
  g_ptr_array_sort (self->items, compare_users);
  if (old_len > 0 || self->items->len > 0)
    g_list_model_items_changed (G_LIST_MODEL (self), 0, old_len, self->items->len);
}

void
gchat_online_users_clear (GchatOnlineUsers *self)
{
  gchat_online_users_set_all (self, NULL);
}

const char *
gchat_online_users_lookup (GchatOnlineUsers *self,
                           const char       *name)
{
  g_autofree char *folded = NULL;
  GchatOnlineUser *user;

  g_return_val_if_fail (GCHAT_IS_ONLINE_USERS (self), NULL);

  folded = g_ascii_strdown (name, -1);
  user = g_hash_table_lookup (self->index, folded);
  return user != NULL ? user->name : NULL;
}

gboolean
gchat_online_users_contains (GchatOnlineUsers *self,
                             const char       *name)
{
  return gchat_online_users_lookup (self, name) != NULL;
}
