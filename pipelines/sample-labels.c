/* See sample-labels.h. */
#include "sample-labels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SAMPLE_LABELS_HEADER "item,test_index,first_frame,last_frame,label,label_name"
/* Since the scene videos: the item's box in frame pixels. Files without it still load. */
#define SAMPLE_LABELS_BOX ",box_x,box_y,box_w,box_h"

static gboolean
parse_float (const char *text, float *value)
{
  char *end;
  double v = g_ascii_strtod (text, &end);

  if (end == text || *end || !isfinite (v))
    return FALSE;
  *value = (float) v;
  return TRUE;
}

static gboolean
parse_int (const char *text, int *value)
{
  char *end;
  gint64 v = g_ascii_strtoll (text, &end, 10);

  if (end == text || *end || v < 0 || v > G_MAXINT)
    return FALSE;
  *value = (int) v;
  return TRUE;
}

char *
sample_labels_path_for (const char *video)
{
  const char *dot = strrchr (video, '.');
  const char *slash = strrchr (video, '/');
  const size_t stem = dot && (!slash || dot > slash) ? (size_t) (dot - video) : strlen (video);

  return g_strdup_printf ("%.*s.csv", (int) stem, video);
}

gboolean
sample_labels_load (const char *path, SampleLabels *out, GError **error)
{
  char *contents = NULL;
  char **lines = NULL;
  GArray *items = g_array_new (FALSE, TRUE, sizeof (SampleItem));
  int line_no = 0, columns;
  gboolean ok = FALSE, has_box;

  memset (out, 0, sizeof *out);
  if (!g_file_get_contents (path, &contents, NULL, error))
    goto done;
  lines = g_strsplit (contents, "\n", -1);
  has_box = lines[0] && !strcmp (g_strchomp (lines[0]), SAMPLE_LABELS_HEADER SAMPLE_LABELS_BOX);
  if (!lines[0] || (!has_box && strcmp (lines[0], SAMPLE_LABELS_HEADER) != 0)) {
    g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_INVAL, "%s: first line must be '%s'", path,
        SAMPLE_LABELS_HEADER SAMPLE_LABELS_BOX);
    goto done;
  }
  columns = has_box ? 10 : 6;
  for (line_no = 1; lines[line_no]; line_no++) {
    char **fields;
    SampleItem item = { 0 };
    gboolean valid;

    g_strchomp (lines[line_no]);
    if (!lines[line_no][0])
      continue;
    fields = g_strsplit (lines[line_no], ",", -1);
    valid = g_strv_length (fields) == (guint) columns && parse_int (fields[0], &item.item)
        && parse_int (fields[1], &item.test_index) && parse_int (fields[2], &item.first_frame)
        && parse_int (fields[3], &item.last_frame) && parse_int (fields[4], &item.label)
        && item.item == (int) items->len && item.last_frame >= item.first_frame
        && item.first_frame
            == (items->len ? g_array_index (items, SampleItem, items->len - 1).last_frame + 1 : 0)
        && (!has_box
            || (parse_float (fields[6], &item.box_x) && parse_float (fields[7], &item.box_y)
                && parse_float (fields[8], &item.box_w) && parse_float (fields[9], &item.box_h)
                && item.box_w > 0 && item.box_h > 0));
    item.has_box = has_box;
    if (valid)
      item.label_name = g_strdup (fields[5]);
    g_strfreev (fields);
    if (!valid) {
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
          "%s:%d: expected '%s' with items in "
          "order, frames contiguous and a box of positive size",
          path, line_no + 1,
          has_box ? SAMPLE_LABELS_HEADER SAMPLE_LABELS_BOX : SAMPLE_LABELS_HEADER);
      goto done;
    }
    g_array_append_val (items, item);
  }
  if (items->len == 0) {
    g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_INVAL, "%s: no items", path);
    goto done;
  }
  out->count = items->len;
  out->frames = g_array_index (items, SampleItem, items->len - 1).last_frame + 1;
  out->items = (SampleItem *) g_array_free (items, FALSE);
  items = NULL;
  ok = TRUE;

done:
  if (items) {
    for (guint i = 0; i < items->len; i++)
      g_free (g_array_index (items, SampleItem, i).label_name);
    g_array_free (items, TRUE);
  }
  g_strfreev (lines);
  g_free (contents);
  return ok;
}

void
sample_labels_clear (SampleLabels *labels)
{
  for (int i = 0; i < labels->count; i++)
    g_free (labels->items[i].label_name);
  g_free (labels->items);
  memset (labels, 0, sizeof *labels);
}

int
sample_item_verdict (const SampleItem *item, const int *frame_class, const float *frame_score,
    int n_frames, int n_classes)
{
  int *votes = g_new0 (int, n_classes);
  double *score = g_new0 (double, n_classes);
  int best = -1;

  for (int f = item->first_frame; f <= item->last_frame && f < n_frames; f++) {
    int k = frame_class[f];

    if (k < 0 || k >= n_classes)
      continue;
    votes[k]++;
    score[k] += frame_score[f];
  }
  for (int k = 0; k < n_classes; k++)
    if (votes[k] > 0
        && (best < 0 || votes[k] > votes[best]
            || (votes[k] == votes[best] && score[k] > score[best])))
      best = k;
  g_free (votes);
  g_free (score);
  return best;
}

double
sample_labels_accuracy (const SampleLabels *labels, const int *verdicts)
{
  int correct = 0;

  for (int i = 0; i < labels->count; i++)
    correct += verdicts[i] == labels->items[i].label;
  return labels->count ? (double) correct / labels->count : 0.0;
}
