/* Zero heap allocations per frame after the first: this binary replaces malloc and friends for the
 * whole process (symbols in the executable take precedence over libc's for every shared object,
 * including libmone, GLib and OpenBLAS), counts calls while a flag is set, and runs frames at
 * changing budgets with 1 and 2 threads. Not run under valgrind, which replaces malloc itself.
 * Under AddressSanitizer or ThreadSanitizer, whose allocator must stay the only one, the
 * sanitizer's allocation hook counts instead. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forced-isa.h"
#include "mone-private.h"

static atomic_int counting;
static atomic_long allocations;

static inline void
count (void)
{
  if (atomic_load_explicit (&counting, memory_order_relaxed))
    atomic_fetch_add (&allocations, 1);
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
/* compiler-rt's allocator interface (GCC ships the function but not its header). */
int __sanitizer_install_malloc_and_free_hooks (void (*malloc_hook) (const volatile void *, size_t),
    void (*free_hook) (const volatile void *));

static void
on_malloc (const volatile void *p, size_t size)
{
  count ();
}

static void
on_free (const volatile void *p)
{
}

static void
install_counter (void)
{
  __sanitizer_install_malloc_and_free_hooks (on_malloc, on_free);
}
#else
extern void *__libc_malloc (size_t size);
extern void *__libc_calloc (size_t n, size_t size);
extern void *__libc_realloc (void *p, size_t size);
extern void *__libc_memalign (size_t alignment, size_t size);
extern void __libc_free (void *p);

void *
malloc (size_t size)
{
  count ();
  return __libc_malloc (size);
}

void *
calloc (size_t n, size_t size)
{
  count ();
  return __libc_calloc (n, size);
}

void *
realloc (void *p, size_t size)
{
  count ();
  return __libc_realloc (p, size);
}

void
free (void *p)
{
  __libc_free (p);
}

int
posix_memalign (void **out, size_t alignment, size_t size)
{
  count ();
  void *p = __libc_memalign (alignment, size);
  if (!p)
    return ENOMEM;
  *out = p;
  return 0;
}

void *
aligned_alloc (size_t alignment, size_t size)
{
  count ();
  return __libc_memalign (alignment, size);
}

void *
memalign (size_t alignment, size_t size)
{
  count ();
  return __libc_memalign (alignment, size);
}

static void
install_counter (void)
{
}
#endif

static long
frames_allocations (const char *config_name, const char *const *overrides, int threads)
{
  MoneConfig config;
  GError *error = NULL;
  g_assert (mone_config_from_name (config_name, &config, &error));
  for (int i = 0; overrides && overrides[i]; i++)
    g_assert (mone_config_apply_override (&config, overrides[i], NULL, &error));
  MoneParameters *params = mone_parameters_new_random (&config, 7, &error);
  g_assert_no_error (error);
  MoneModel *model = mone_model_new_borrowed (&params->config, NULL,
      (const float *const *) params->tensors, &error);
  g_assert_no_error (error);
  MoneContext *ctx = mone_context_new (model, threads, &error);
  g_assert_no_error (error);
  const MoneConfig *c = mone_model_get_config (model);
  size_t n_input = (size_t) c->frames * c->channels * c->height * c->width;
  float *input = g_new (float, n_input);
  for (size_t i = 0; i < n_input; i++)
    input[i] = (float) ((i * 2654435761u) % 1000) / 1000.0f;

  MoneResult result;
  atomic_store (&allocations, 0);
  atomic_store (&counting, 1);
  mone_context_run (ctx, input, 1.0, &result, NULL); /* first run: allowed to allocate */
  atomic_store (&counting, 0);
  long first = atomic_load (&allocations);

  atomic_store (&allocations, 0);
  atomic_store (&counting, 1);
  static const double budgets[] = { 1.0, 0.75, 0.5, 0.25, 0.125, 0.9, 0.3, 2.0, -1.0, 0.6 };
  for (int frame = 0; frame < 30; frame++) {
    input[frame] += 0.001f; /* different pixels every frame */
    if (!mone_context_run (ctx, input, budgets[frame % G_N_ELEMENTS (budgets)], &result, NULL))
      break;
  }
  atomic_store (&counting, 0);
  long later = atomic_load (&allocations);
  g_autofree char *shown = overrides ? g_strjoinv (" ", (char **) overrides) : NULL;
  printf ("%-8s %s threads=%d: %ld allocations in frame 1, %ld in frames 2..31\n", config_name,
      shown ? shown : "", threads, first, later);

  mone_context_free (ctx);
  mone_model_unref (model);
  mone_parameters_free (params);
  g_free (input);
  return later;
}

/* The counter must see allocations at all, or a zero below would prove nothing. */
static void
test_counter_sees_allocations (void)
{
  atomic_store (&allocations, 0);
  atomic_store (&counting, 1);
  void *probe = g_malloc (10), *probe2 = g_malloc (20);
  g_free (probe);
  g_free (probe2);
  void *aligned = g_aligned_alloc (4, 4, 64);
  g_aligned_free (aligned);
  atomic_store (&counting, 0);
  g_assert_cmpint (atomic_load (&allocations), >=, 2);
  atomic_store (&allocations, 0);
}

static void
test_no_allocation_per_frame (void)
{
  static const char *const video[] = { "frames=4", "tubelet=2", "height=64", "width=64", NULL };
  /* Convolutional stems: their maps and im2col rows are context workspaces too. */
  static const char *const stem[] = { "stem=16,32", NULL };
  static const char *const video_stem[] = { "frames=4", "tubelet=2", "height=64", "width=64",
    "stem=8,16", "pool=cls", NULL };
  for (int threads = 1; threads <= 2; threads++) {
    g_assert_cmpint (frames_allocations ("tiny", NULL, threads), ==, 0);
    g_assert_cmpint (frames_allocations ("tiny", video, threads), ==, 0);
    g_assert_cmpint (frames_allocations ("scene64", stem, threads), ==, 0);
    g_assert_cmpint (frames_allocations ("tiny", video_stem, threads), ==, 0);
  }
}

int
main (int argc, char **argv)
{
  skip_if_forced_isa_unsupported ();
  install_counter ();
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/allocations/counter-sees-allocations", test_counter_sees_allocations);
  g_test_add_func ("/allocations/none-per-frame", test_no_allocation_per_frame);
  return g_test_run ();
}
