#!/usr/bin/python3
"""Reads monefilter's classification from Python through GObject introspection.

monefilter attaches a GstCustomMeta to every buffer; its GstStructure carries the result (the same
fields as the `mone-classification` bus message). This example plays a source through monefilter,
reads the structure in a pad probe on the filter's src pad, prints one line per fresh result, and
lowers the budget every --sweep seconds while it plays.

    pipelines/mone-example.py --model models/scene-mone.safetensors --video pipelines/sample/scene.mp4
    pipelines/mone-example.py --model M --sweep 2 "videotestsrc is-live=true pattern=ball"

Needs python3-gi and gir1.2-gstreamer-1.0 (Debian), and the plugin on GST_PLUGIN_PATH (the
pipeline scripts set it to the build tree's gst/ folder; so does `source pipelines/env.sh`).
"""
import argparse
import sys

try:
    import gi
except ImportError:
    sys.exit("mone-example.py: needs PyGObject (Debian: python3-gi and gir1.2-gstreamer-1.0; "
             "run it with /usr/bin/python3 if another python3 comes first on PATH)")

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402

# The name monefilter registers its GstCustomMeta under (include/mone/gstmonemeta.h).
META_NAME = "GstMoneMeta"


def read_result(buffer):
    """The classification structure on a buffer, or None."""
    meta = buffer.get_custom_meta(META_NAME)
    if meta is None:
        return None
    return meta.get_structure()


def quote(path):
    """A path as a double-quoted gst-launch value (backslashes and quotes escaped)."""
    return '"%s"' % path.replace("\\", "\\\\").replace('"', '\\"')


def field(structure, name, default=None):
    return structure.get_value(name) if structure.has_field(name) else default


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", nargs="?", default="videotestsrc is-live=true pattern=ball",
                        help="gst-launch description of the source (default: %(default)s)")
    parser.add_argument("--model", "-m", help="model file (default: monefilter's default model)")
    parser.add_argument("--video", "-v", help="play this file (filesrc ! decodebin) instead")
    parser.add_argument("--budget", "-b", type=float, default=1.0, help="starting budget")
    parser.add_argument("--sweep", "-s", type=float, default=0.0,
                        help="lower the budget by 0.1 every S seconds (0 = off)")
    parser.add_argument("--scale-mode", choices=("stretch", "letterbox", "crop"),
                        help="how frames fit the model input (default: the element's stretch; full-frame samples: crop)")
    parser.add_argument("--frames", "-n", type=int, default=0,
                        help="stop after N results (0 = play to the end)")
    args = parser.parse_args()
    if not 0.0 < args.budget <= 1.0:
        parser.error("--budget must be in (0, 1]")
    if not args.sweep >= 0.0:
        parser.error("--sweep must be >= 0")
    if args.frames < 0:
        parser.error("--frames must be >= 0")

    Gst.init(None)
    if Gst.ElementFactory.find("monefilter") is None:
        sys.exit("monefilter not found: set GST_PLUGIN_PATH to the build's gst/ folder")

    source = args.source
    if args.video:
        source = "filesrc location=%s ! decodebin" % quote(args.video)
    model = " model=%s" % quote(args.model) if args.model else ""
    if args.scale_mode:
        model += " scale-mode=" + args.scale_mode
    description = ("%s ! videoconvert ! monefilter name=mone%s budget=%g ! fakesink sync=true"
                   % (source, model, args.budget))
    print("pipeline:", description)
    try:
        pipeline = Gst.parse_launch(description)
    except GLib.Error as error:
        sys.exit("mone-example.py: %s" % error.message)
    mone = pipeline.get_by_name("mone")
    loop = GLib.MainLoop()
    state = {"results": 0, "status": 0}

    def on_buffer(pad, info):
        result = read_result(info.get_buffer())
        if result is None or field(result, "reused", False):
            return Gst.PadProbeReturn.OK
        state["results"] += 1
        print("%-12s %5.1f%%  budget %.2f (used %.2f)  %.4f GFLOPs  %.2f ms"
              % (field(result, "label", "?"), 100.0 * field(result, "score", 0.0),
                 field(result, "budget-requested", 0.0), field(result, "budget-used", 0.0),
                 field(result, "gflops", 0.0), field(result, "latency-ms", 0.0)), flush=True)
        if args.frames and state["results"] >= args.frames:
            GLib.idle_add(loop.quit)
        return Gst.PadProbeReturn.OK

    def on_message(bus, message):
        if message.type == Gst.MessageType.EOS:
            loop.quit()
        elif message.type == Gst.MessageType.ERROR:
            error, debug = message.parse_error()
            print("mone-example.py: %s: %s\n  (%s)" % (message.src.get_name(), error.message,
                                                       debug), file=sys.stderr)
            state["status"] = 1
            loop.quit()
        return True

    def on_sweep():
        low = mone.get_property("min-budget")
        budget = mone.get_property("budget")
        budget = 1.0 if budget <= low + 1e-9 else max(low, budget - 0.1)
        mone.set_property("budget", budget)
        print("-- budget set to %.3f" % budget, flush=True)
        return True

    mone.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, on_buffer)
    bus = pipeline.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_message)
    if args.sweep > 0:
        GLib.timeout_add(int(args.sweep * 1000), on_sweep)

    pipeline.set_state(Gst.State.PLAYING)
    try:
        loop.run()
    except KeyboardInterrupt:
        state["status"] = 130  # as a shell reports a program stopped by Ctrl-C
    pipeline.set_state(Gst.State.NULL)
    bus.remove_signal_watch()
    print("%d results" % state["results"])
    return state["status"]


if __name__ == "__main__":
    sys.exit(main())
