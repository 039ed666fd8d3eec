/* libFuzzer target for the model loader: every input is handed to mone_model_load_memory (the full
 * safetensors + metadata + tensor-table validation) and to the JSON parser on its own.
 * Build and run (docs/model-format.md, "Fuzzing"):
 *   CC=clang meson setup build-fuzz -Dfuzz=true && ninja -C build-fuzz tests/loader/fuzz-loader
 *   mkdir -p fuzz-corpus && build-fuzz/tests/loader/fuzz-loader fuzz-corpus tests/loader/hostile \
 *       tests/loader -dict=tests/loader/fuzz-loader.dict -max_len=8192 -max_total_time=300
 * Any crash-* file it writes becomes a hostile fixture (tests/loader/hostile/fuzz-*.safetensors). */
#include "json.h"
#include "mone-private.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  GError *error = NULL;
  MoneModel *model = mone_model_load_memory (data, size, &error);
  if (model != NULL) {
    /* A model that loads must be internally consistent. */
    const MoneConfig *c = mone_model_get_config (model);
    for (int k = 0; k < c->classes; k++)
      if (mone_model_get_label (model, k) == NULL)
        __builtin_trap ();
    volatile float sink = model->weights.head_bias[c->classes - 1] + model->weights.alpha[0];
    (void) sink;
    mone_model_unref (model);
  } else if (error == NULL || error->message == NULL || error->message[0] == '\0') {
    __builtin_trap (); /* every failure must say why */
  }
  g_clear_error (&error);

  MoneJsonError json_error;
  MoneJson *json = mone_json_parse ((const char *) data, size, NULL, &json_error);
  mone_json_free (json);
  return 0;
}
