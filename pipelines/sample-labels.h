/* The labels CSV that mone-sample-video writes next to a sample video, and the per-item verdict
 * from per-frame classifications. Shared by the demo, the example and the pipeline tests. */
#ifndef MONE_SAMPLE_LABELS_H
#define MONE_SAMPLE_LABELS_H

#include <glib.h>

typedef struct {
  int item;        /* position in the video, 0-based */
  int test_index;  /* index in the Fashion-MNIST test set */
  int first_frame; /* first and last frame (inclusive, 0-based) showing the item */
  int last_frame;
  int label; /* recorded class id */
  char *label_name;
  gboolean has_box;                 /* the CSV has the box columns */
  float box_x, box_y, box_w, box_h; /* the item's 28x28 cell in frame pixels, not clipped */
} SampleItem;

typedef struct {
  SampleItem *items;
  int count;
  int frames; /* frames in the video: last_frame of the last item + 1 */
} SampleLabels;

/* The labels file mone-sample-video writes beside a video: the video's path with its extension
 * (if its last component has one) replaced by ".csv". Free with g_free. */
char *sample_labels_path_for (const char *video);
/* Reads and checks the CSV (header, column count, numbers, items in order, contiguous frames).
 * The box columns are optional: videos made before them have none (has_box FALSE). */
gboolean sample_labels_load (const char *path, SampleLabels *out, GError **error);
void sample_labels_clear (SampleLabels *labels);

/* The class the frames of one item voted for: the most frequent top-1 class among frames
 * [first, last] of frame_class (-1 = frame not classified, ignored); ties go to the class with the
 * larger summed score. Returns -1 when none of its frames was classified. */
int sample_item_verdict (const SampleItem *item, const int *frame_class, const float *frame_score,
    int n_frames, int n_classes);

/* Fraction of items whose verdict equals the recorded label; verdicts[i] for item i. */
double sample_labels_accuracy (const SampleLabels *labels, const int *verdicts);

#endif
