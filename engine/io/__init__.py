"""Loading and validating what the user gives Pano4D: panorama, masks, regions, depth.

One module per concern: :mod:`.common` (limits, one-line errors, quiet native decoders,
content sniffing), :mod:`.images` (decoders: OpenCV, Pillow, tifffile, OpenEXR, NumPy),
:mod:`.panorama`, :mod:`.masks`, :mod:`.regions`, :mod:`.depth`; this package re-exports
their public API.

Every user-facing failure raises :class:`engine.errors.InputError` with one line that names the
file, says what is wrong and what is expected; no exception of a decoder (OpenCV, Pillow,
OpenEXR, tifffile, json, NumPy) escapes, and native decoders' own chatter on stdout/stderr
(libpng, OpenEXR, OpenCV logging) is swallowed while they run.

Files are recognised by their content (magic bytes), not by their extension; the extension is
only used to phrase the error when the content is not recognised.

Panorama (:func:`load_panorama`)
================================
Equirectangular 360x180 image, width = 2 x height within +/-1 % (W/H in [1.98, 2.02]),
between 256x128 and 16384x8192 pixels inclusive. The size is read from the header before the
pixels are decoded, so an oversized file fails at once.

* PNG, JPEG, WebP, TIFF: 1/8/16-bit, gray, gray+alpha, palette, RGB, RGBA.
  16-bit samples become 8-bit by ``round(v / 257)`` (exact for values that came from 8-bit).
  Gray is replicated into R, G and B. An alpha channel that is not fully opaque is composited
  over black (``c * a / a_max``, rounded once at the end); a fully opaque one is dropped. The
  result says which in :attr:`Panorama.source`.
* EXIF orientation is **ignored** on purpose: a panorama's rows are latitudes, and rotating it
  would break the equirectangular mapping.
* EXR, Radiance HDR, float TIFF: scene-linear float RGB, tone-mapped to 8-bit sRGB by
  :func:`tonemap_linear`: NaN and -inf become 0, +inf the largest finite value, negatives 0;
  an exposure maps the median luminance (Rec. 709 weights, over pixels with positive
  luminance) to 0.18; then the ACES filmic fit of K. Narkowicz,
  ``f(x) = x (2.51 x + 0.03) / (x (2.43 x + 0.59) + 0.14)`` clamped to [0, 1], per channel;
  then the sRGB transfer function and rounding. The mapping is monotonic. EXR colour is
  premultiplied by convention, so its alpha is ignored (compositing over black is a no-op).
  EXR channels used: ``R, G, B`` (or the first ``<layer>.R/G/B``), else ``Y``, else a lone
  channel.

:attr:`Panorama.rgb` (uint8 sRGB, H x W x 3) is the canonical image: "static pixels are
bit-identical" is judged against it. Treat it as read-only.

Masks (:func:`load_mask`)
=========================
Any image the panorama loader reads, or a ``.npy`` array ([H, W] or [H, W, C]). Nonzero means
"animate": the maximum over the colour channels is compared with 0 -- except that if the image
has an alpha channel that is not constant, the alpha channel alone is the mask (a painted
layer exported with transparency), and JPEG masks are thresholded at half scale because lossy
compression scatters small nonzero values around the edges. The mask may have any size whose
aspect is within +/-2 % of the panorama's; it is resampled to the panorama size (area
averaging when shrinking, bilinear with the left/right seam wrapped when enlarging) and
thresholded at 0.5 -- but a region is never lost: if nothing survives 0.5, every pixel with
any coverage (> 0) is kept, so a one-pixel-thin stroke survives downscaling.

Regions file (:func:`load_regions`, :func:`save_regions`) -- format ``pano4d-regions`` v1
=========================================================================================
A UTF-8 JSON object::

    {"format": "pano4d-regions", "version": 1,
     "regions": [
       {"name": "sky", "mask": "sky.png", "label": null, "motion": "flow",
        "direction_deg": 0, "speed_deg_s": 2.0, "feather_px": 12,
        "color": [80, 160, 255]}]}

Top-level keys are exactly ``format``, ``version`` and ``regions`` (a non-empty list). Per
region:

``name`` (required)
    non-empty string without control characters, unique within the file.
``mask`` (required)
    path of a mask image, relative to the JSON file's folder or absolute.
``label`` (optional, default null)
    null: the region is the mask's nonzero pixels (rules of :func:`load_mask`). An integer
    0..65535: the mask is a label map shared by several regions and the region is the pixels
    equal to this value (single-channel image or ``.npy``; the value must occur).
``motion`` (optional, default "flow")
    ``"flow"``: the region drifts along its direction (clouds, water, smoke); the clip
    loops by cross-fading. ``"sway"``: it oscillates back and forth along its direction
    once per loop, with a phase that varies smoothly across the region (foliage, grass,
    ripples); it loops exactly, with no cross-fade.
``direction_deg`` (optional, default 0)
    motion direction on the sphere's local tangent plane, degrees, in the east/north frame
    of every point of the region: 0 = east (to the right in the image, +longitude),
    90 = north (up), 180 = west, 270 = south. Any finite number; stored modulo 360. (The
    flow animator makes this a field that is smooth through the poles: see
    :mod:`engine.animate.flow`.)
``speed_deg_s`` (optional, default 2.0)
    angular speed in degrees per second: on the horizon this is degrees of arc per second;
    the motion slows as cos(latitude) towards the poles, 0..90.
``feather_px`` (optional, default 8)
    edge feather width in panorama pixels at full resolution, 0..1024.
``color`` (optional, default [255, 80, 80])
    UI colour, three integers 0..255.
``prompt`` (optional)
    what the region is and how it moves ("clouds drifting slowly to the left"): conditions
    text video models, and when the entry gives none of ``motion``, ``direction_deg`` and
    ``speed_deg_s`` its words set them (:mod:`engine.text.motion`).
``mask_prompt`` (optional, instead of ``mask``)
    what to select ("sky"): segmented on the panorama by the seg model (``--seg-model``).

Any other key is an error, as are wrong types, non-finite numbers (JSON ``NaN``), values out
of range, duplicate names, missing mask files and regions that are empty after resampling.
Regions may overlap; where they do, the later region wins. :func:`save_regions` writes the
masks as 8-bit single-channel 0/255 PNGs next to the JSON (or in ``mask_dir``) and the JSON
last, each atomically (temporary file + ``os.replace``).

Depth (:func:`load_depth`)
==========================
Distance along the ray (not planar z), one value per panorama pixel, in metre-like units:
16-bit PNG/TIFF (``value * png16_scale``; 0 = invalid), float TIFF, EXR (channel ``Z``,
``depth``, ``distance``, ``Y``, ``R`` or a lone channel) or ``.npy`` (real numbers, taken as
they are; [H, W] or [H, W, 1]). 8-bit depth is refused (too coarse). Aspect within +/-2 % of
the panorama's; resampled to the panorama size with validity weighting (invalid pixels do not
bleed into valid ones). Non-finite and non-positive values are invalid and are returned as
**NaN** -- the caller decides how to fill them (e.g. with the far shell). A map with no valid
value is an error. Enlarging keeps depth edges: where the four source pixels of a sample
differ by more than 10 %, the nearest one is taken instead of a blend (a blend would float
Gaussians between a foreground and its background).

Per-frame depth (:func:`load_depth_frames`): a folder of ``frame_0000.<ext>``,
``frame_0001.<ext>``, ... depth images (any of the formats above, numbered from 0 with no
gaps), or a ``.npy`` array [T, H, W] (or [T, H, W, 1]). There must be exactly one depth per
animation frame; every frame must share one size (a 2:1 aspect as above) and hold at least
one valid value. A single depth map is the same depth for every frame.
"""

from .common import (
    MAX_FEATHER_PX,
    MAX_LABEL,
    MAX_SIZE,
    MAX_SPEED_DEG_S,
    MIN_SIZE,
    REGIONS_FORMAT,
    REGIONS_VERSION,
)
from .depth import load_depth, load_depth_frames, resize_depth
from .masks import load_mask
from .panorama import Panorama, load_panorama, tonemap_linear
from .regions import (
    MAX_PROMPT_CHARS,
    MOTIONS,
    Region,
    load_regions,
    regions_from_mask,
    save_regions,
    validate_regions,
)

__all__ = [
    "MAX_FEATHER_PX",
    "MAX_LABEL",
    "MAX_PROMPT_CHARS",
    "MAX_SIZE",
    "MAX_SPEED_DEG_S",
    "MIN_SIZE",
    "MOTIONS",
    "Panorama",
    "REGIONS_FORMAT",
    "REGIONS_VERSION",
    "Region",
    "load_depth",
    "load_depth_frames",
    "load_mask",
    "load_panorama",
    "load_regions",
    "regions_from_mask",
    "resize_depth",
    "save_regions",
    "tonemap_linear",
    "validate_regions",
]
