# Sourced by the pipeline scripts: finds the repository, the build tree's plugin and the model.
#   MONE_BUILD_DIR  build folder to take the plugin from (default: build, else the newest build-*)
#   MONE_MODEL      model file (default: models/scene-mone.safetensors, the element's default)
mone_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

mone_find_build_dir() {
  if [ -n "${MONE_BUILD_DIR:-}" ]; then
    echo "$MONE_BUILD_DIR"
    return
  fi
  if [ -f "$mone_repo/build/build.ninja" ]; then
    echo "$mone_repo/build"
    return
  fi
  # The newest configured build-* (a glob, not ls, so paths with spaces survive).
  local candidate newest=""
  for candidate in "$mone_repo"/build-*; do
    if [ -f "$candidate/build.ninja" ] && { [ -z "$newest" ] || [ "$candidate/build.ninja" -nt "$newest/build.ninja" ]; }; then
      newest=$candidate
    fi
  done
  [ -n "$newest" ] && echo "$newest"
  return 0
}

# Prefer the build tree's plugin over an installed one, so the scripts run straight after `ninja`.
mone_build_dir=$(mone_find_build_dir)
if [ -n "$mone_build_dir" ] && [ -d "$mone_build_dir/gst" ]; then
  export GST_PLUGIN_PATH="$(cd "$mone_build_dir/gst" && pwd)${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
fi

mone_default_model="$mone_repo/models/scene-mone.safetensors"
# The element's own default is the installed model (share/gst-mone), absent from a build tree:
# applications started after sourcing this file (mone-example, yours) find the repository's.
if [ -z "${MONE_MODEL:-}" ] && [ -r "$mone_default_model" ]; then
  export MONE_MODEL="$mone_default_model"
fi

mone_require_element() {
  if ! gst-inspect-1.0 "$1" >/dev/null 2>&1; then
    echo "$(basename "$0"): GStreamer element '$1' not found. $2" >&2
    exit 1
  fi
}

# Parses the options the classifying scripts share into the caller's variables model (-m), budget
# (-b), scale_mode (-c), interval (-i), device (-d), sink (-s) and output (-o); the caller sets their defaults
# and a usage function first. $1 is the getopts spec of the options the script takes ("m:b:s:");
# -h prints usage. What follows the options lands in the array mone_operands.
mone_parse_options() {
  local spec=$1 opt OPTIND=1
  shift
  while getopts "${spec}h" opt; do
    case $opt in
      a) detections=1 ;;
      m) model=$OPTARG ;;
      b) budget=$OPTARG ;;
      c) scale_mode=$OPTARG ;;
      i) interval=$OPTARG ;;
      d) device=$OPTARG ;;
      s) sink=$OPTARG ;;
      o) output=$OPTARG ;;
      H) host=$OPTARG ;;
      p) port=$OPTARG ;;
      t) topic=$OPTARG ;;
      h) usage; exit 0 ;;
      *) usage >&2; exit 2 ;;
    esac
  done
  shift $((OPTIND - 1))
  mone_operands=("$@")
}

# What goes between monefilter and a sink that shows the video: moneoverlay when the plugin has
# it; nothing for fakesink.
# The FILE operand of a script (at most one): the sample video by default, the H.264 one or else
# the VP8 one (demo.sh with MONE_DEMO_CODEC=vp8). Sets mone_file, or exits saying why.
mone_take_file() {
  if [ $# -gt 1 ]; then
    echo "$(basename "$0"): one FILE at most (got $#)" >&2
    usage >&2
    exit 2
  fi
  local sample=$mone_repo/pipelines/sample/scene.mp4
  if [ ! -r "$sample" ] && [ -r "${sample%.mp4}.webm" ]; then
    sample=${sample%.mp4}.webm
  fi
  mone_file=${1:-$sample}
  if [ ! -r "$mone_file" ]; then
    echo "$(basename "$0"): cannot read '$mone_file' (make the sample with: bash pipelines/demo.sh)" >&2
    exit 1
  fi
}

mone_display_chain() {
  if [ "$1" = fakesink ]; then
    echo ""
  elif gst-inspect-1.0 moneoverlay >/dev/null 2>&1; then
    echo "videoconvert ! moneoverlay ! videoconvert !"
  else
    echo "videoconvert !"
  fi
}

# Option checks shared by the scripts: the element would only warn about an out-of-range value
# and keep its default, so the run would not be what was asked for.
mone_require_budget() {
  if ! awk -v b="$1" 'BEGIN { exit !(b ~ /^[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?$/ && b > 0 && b <= 1) }'; then
    echo "$(basename "$0"): budget '$1' is not a number in (0, 1]" >&2
    exit 2
  fi
}

mone_require_interval() {
  if ! [[ $1 =~ ^[0-9]+$ ]] || [ "$1" -lt 1 ] || [ "$1" -gt 1000000 ]; then
    echo "$(basename "$0"): interval '$1' is not a whole number of frames >= 1" >&2
    exit 2
  fi
}

mone_require_model() {
  if [ ! -r "$1" ]; then
    echo "$(basename "$0"): model '$1' not found or not readable (pass -m MODEL or set MONE_MODEL)" >&2
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
