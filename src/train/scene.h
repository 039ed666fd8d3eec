/* The scene and close-up render protocols (scene.c) and the item sampling they share with data.c.
 * Internal to the trainer; the protocol is selected through mone_render (include/mone/mone-train.h). */
#ifndef MONE_TRAIN_SCENE_H
#define MONE_TRAIN_SCENE_H

#include "mone/mone-train.h"

G_BEGIN_DECLS

/* Bilinear sample of a grey item (rows x cols bytes) at continuous source coordinates (pixel
 * centres at integers), zero outside; value in [0,1]. */
float mone_item_sample (const guint8 *img, int rows, int cols, float u, float v);

/* The item's source rectangle mapped onto the destination rectangle at (x0, y0) of size w x h;
 * the value at destination pixel (x, y), averaged over n x n samples so shrinking does not alias. */
float mone_item_render_pixel (const guint8 *img, int rows, int cols, gboolean flip, float x0, float y0, float w,
    float h, int n, int x, int y);

/* Renders item `index` of a grey set as a camera scene into plane (height, width), drawing every
 * random choice from rng; box receives where the item is (plane pixels, not clipped). aspect is
 * the camera frame's width / height: <= 0 draws one of the camera aspects and stretches the frame
 * to height x width (the protocol); width / height draws the frame as it is (a video frame). */
void mone_render_scene (const MoneImageSet *set, int index, MoneTrainRng *rng, gboolean augment, float aspect,
    int height, int width, float *plane, MoneItemBox *box);

/* Renders item `index` as a close-up: a camera frame (aspect drawn as for scenes, stretched to
 * height x width) with a lit plain background and the item at 60-100% of its height near the
 * centre, then the scene's camera effects; box receives where the item is. */
void mone_render_close_up (const MoneImageSet *set, int index, MoneTrainRng *rng, gboolean augment, int height,
    int width, float *plane, MoneItemBox *box);

G_END_DECLS

#endif /* MONE_TRAIN_SCENE_H */
