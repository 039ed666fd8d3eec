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

# Prints each mone-classification element message (gst-launch-1.0 -m) as one short line.
mone_print_results() {
  perl -ne '
    BEGIN { $| = 1 }
    next unless /mone-classification, /;
    my %f;
    while (/([a-z-]+)=\([a-z0-9]+\)("(?:[^"\\]|\\.)*"|[^,;]*)/g) { $f{$1} = $2 }
    (my $label = $f{label} // "?") =~ s/^"|"$//g;
    $label =~ s/\\(.)/$1/g;
    printf "frame %6d  %-12s %5.1f%%  budget %.3f  %8.5f GFLOPs  %6.2f ms%s\n", $f{frame},
      $label, 100 * $f{score}, $f{"budget-used"}, $f{gflops}, $f{"latency-ms"},
      $f{reused} eq "true" ? "  (reused)" : "";
  '
}
