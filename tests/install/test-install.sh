#!/usr/bin/env bash
# Installs the build into a throwaway root (meson install --destdir) and uses it from there the way
# a user of an installed plugin would: a clean environment with nothing but GST_PLUGIN_PATH (and a
# private registry), no LD_LIBRARY_PATH, no MONE_MODEL. Checks that
#   - libmone.so carries a versioned SONAME and exports exactly the functions of mone.h;
#   - no installed binary holds a path into the source or build tree in its data;
#   - gst-inspect-1.0 loads the plugin, whose default model is the installed copy, and a pipeline
#     classifies frames with it;
#   - the installed mone command runs.
#
#   test-install.sh BUILD_DIR SOURCE_DIR PREFIX LIBDIR BINDIR DATADIR
set -euo pipefail
build=$1 source=$2 prefix=$3 libdir=$4 bindir=$5 datadir=$6

fail () { echo "test-install: $*" >&2; exit 1; }

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
meson install -C "$build" --no-rebuild --quiet --destdir "$scratch/root" >/dev/null
root=$scratch/root$prefix
case $libdir in /*) lib=$scratch/root$libdir ;; *) lib=$root/$libdir ;; esac
case $bindir in /*) bin=$scratch/root$bindir ;; *) bin=$root/$bindir ;; esac
case $datadir in /*) data=$scratch/root$datadir ;; *) data=$root/$datadir ;; esac
plugin_dir=$lib/gstreamer-1.0
[ -f "$plugin_dir/libgstmone.so" ] || fail "no plugin in $plugin_dir"

# The library's interface: a versioned SONAME, and the exported functions are those mone.h declares.
soname=$(readelf -d "$lib/libmone.so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[ "$soname" = libmone.so.0 ] || fail "libmone.so has SONAME '$soname', expected libmone.so.0"
exported=$(nm -D --defined-only "$lib/libmone.so" | awk '$2 == "T" {print $3}' | sort)
declared=$(sed -n 's/^MONE_API [^(]*[ *]\(mone_[a-z_0-9]*\) (.*/\1/p' "$root/include/mone/mone.h" | sort)
[ -n "$declared" ] || fail "no MONE_API declarations found in the installed mone.h"
if [ "$exported" != "$declared" ]; then
  diff <(echo "$declared") <(echo "$exported") >&2 || true
  fail "libmone.so exports differ from mone.h (< declared only, > exported only)"
fi

# No installed binary may depend on the trees it was built from (debug information aside).
# A tree path counts only as a whole path: "/src/models" is one, but "../src/engine.c" (the relative
# source names in assertion messages) is not, even when the source tree is /src.
source_real=$(realpath "$source") build_real=$(realpath "$build")
regex_quote () { sed 's/[][\\.*^$+?(){}|]/\\&/g' <<<"$1"; }
tree_path="(^|[^[:alnum:]._/-])($(regex_quote "$source_real")|$(regex_quote "$build_real"))(/|$|[^[:alnum:]._-])"
while IFS= read -r -d '' file; do
  if readelf -h "$file" >/dev/null 2>&1; then
    for section in .rodata .data .dynstr; do
      # readelf -p prints each string as "  [offset]  text"; keep the text alone.
      # grep without -q: an early match must not end the pipe under readelf (pipefail, SIGPIPE).
      if readelf -p "$section" "$file" 2>/dev/null | sed -n 's/^ *\[ *[0-9a-f]*\]  //p' | grep -E "$tree_path" >/dev/null; then
        fail "$file holds a source- or build-tree path in $section"
      fi
    done
  fi
done < <(find "$scratch/root" -type f -print0)

clean_env=(env -i "HOME=$scratch" "PATH=/usr/bin:/bin" "GST_PLUGIN_PATH=$plugin_dir"
  "GST_REGISTRY=$scratch/registry.bin" "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-}")

inspect=$("${clean_env[@]}" gst-inspect-1.0 monefilter) || fail "gst-inspect-1.0 cannot load monefilter from $plugin_dir"
model=$(realpath "$data/gst-mone/"*.safetensors | head -n 1)
grep -q -F "Default: \"$model\"" <<<"$inspect" \
  || fail "the model property's default is not the installed model $model"

messages=$("${clean_env[@]}" gst-launch-1.0 -m videotestsrc num-buffers=3 \
  ! video/x-raw,width=64,height=48 ! monefilter message=true ! fakesink 2>&1) \
  || { echo "$messages" >&2; fail "the pipeline failed with the installed plugin"; }
[ "$(grep -c 'mone-classification' <<<"$messages")" -eq 3 ] \
  || { echo "$messages" >&2; fail "expected 3 classification messages"; }

"${clean_env[@]}" "$bin/mone" --version >/dev/null || fail "the installed mone command does not run"
"${clean_env[@]}" "$bin/mone" info "$model" >/dev/null || fail "mone info fails on the installed model"
echo "install into $prefix: plugin, model, library interface and mone command work from a clean environment"
