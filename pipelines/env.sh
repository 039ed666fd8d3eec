# Sourced by the pipeline scripts: finds the repository, the build tree's plugin and the model.
#   MONE_BUILD_DIR  build folder to take the plugin from (default: build, else the newest build-*)
#   MONE_MODEL      model file (default: models/fashion-mone.safetensors)
mone_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

mone_find_build_dir() {
  if [ -n "${MONE_BUILD_DIR:-}" ]; then
    echo "$MONE_BUILD_DIR"
    return
  fi
  local candidate
  for candidate in "$mone_repo/build" $(ls -td "$mone_repo"/build-* 2>/dev/null); do
    if [ -f "$candidate/build.ninja" ]; then
      echo "$candidate"
      return
    fi
  done
}

# Prefer the build tree's plugin over an installed one, so the scripts run straight after `ninja`.
mone_build_dir=$(mone_find_build_dir)
if [ -n "$mone_build_dir" ] && [ -d "$mone_build_dir/gst" ]; then
  export GST_PLUGIN_PATH="$(cd "$mone_build_dir/gst" && pwd)${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
fi

mone_default_model="$mone_repo/models/fashion-mone.safetensors"

mone_require_element() {
  if ! gst-inspect-1.0 "$1" >/dev/null 2>&1; then
    echo "$(basename "$0"): GStreamer element '$1' not found. $2" >&2
    exit 1
  fi
}

mone_require_model() {
  if [ ! -r "$1" ]; then
    echo "$(basename "$0"): model '$1' not found or not readable (pass -m MODEL)" >&2
    exit 1
  fi
}

# Prints each mone-classification element message as one short line. gst-launch -m prints the
# message structure; we keep the fields a person watching wants.
mone_print_results() {
  grep --line-buffered 'mone-classification' |
    sed -u -E 's/.*mone-classification, //; s/\\//g'
}
