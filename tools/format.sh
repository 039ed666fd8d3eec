#!/usr/bin/env bash
# Formats the C sources in place, each part in its own style:
#   - the GStreamer elements and their tests (gst/*.c, tests/{gst,adaptive,pipelines}/*.c):
#     GStreamer's gst-indent rules (GNU indent), at this tree's 100 columns;
#   - everything else (engine, trainer, tool, examples, benchmarks, their tests): clang-format
#     with the .clang-format files of the tree.
# Headers of gst/ are left alone, as GStreamer leaves its own (indent misreads G_BEGIN_DECLS).
#
#   tools/format.sh            # format
#   tools/format.sh --check    # list the files that would change; exit 1 if any
set -euo pipefail
cd "$(dirname "$0")/.."

check=0
case "${1:-}" in
  "") ;;
  --check) check=1 ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac
for tool in indent clang-format; do
  command -v "$tool" >/dev/null || { echo "format.sh: $tool not found (apt-get install $tool)" >&2; exit 2; }
done

gst_indent=(indent --braces-on-if-line --case-brace-indentation0 --case-indentation2
  --braces-after-struct-decl-line --line-length100 --no-tabs --cuddle-else --dont-line-up-parentheses
  --continuation-indentation4 --honour-newlines --tab-size8 --indent-level2 --leave-preprocessor-space)

mapfile -t gst_files < <(git ls-files 'gst/*.c' 'tests/gst/*.c' 'tests/adaptive/*.c' 'tests/pipelines/*.c')
mapfile -t engine_files < <(git ls-files '*.c' '*.h' | grep -v -E '^(gst/|tests/(gst|adaptive|pipelines)/)')

changed=0
format_one () { # format_one FILE COMMAND...: formats FILE (or, with --check, reports a change)
  local file=$1 out
  shift
  out=$(mktemp)
  "$@" < "$file" > "$out"
  if ! cmp -s "$file" "$out"; then
    changed=$((changed + 1))
    if [ "$check" -eq 1 ]; then echo "$file"; else cat "$out" > "$file"; fi
  fi
  rm -f "$out"
}
for file in "${gst_files[@]}"; do
  format_one "$file" "${gst_indent[@]}" -st
done
for file in "${engine_files[@]}"; do
  format_one "$file" clang-format --assume-filename="$file"
done
if [ "$check" -eq 1 ] && [ "$changed" -gt 0 ]; then
  echo "format.sh: $changed files are not formatted (run tools/format.sh)" >&2
  exit 1
fi
[ "$check" -eq 1 ] || echo "format.sh: $changed files formatted"
