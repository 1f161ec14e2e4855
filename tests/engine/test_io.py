"""engine.io: panorama/mask/region/depth loading, every format and every way input goes wrong."""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from engine.errors import InputError
from engine.io import (
    MAX_SIZE,
    Panorama,
    Region,
    load_depth,
    load_mask,
    load_panorama,
    load_regions,
    regions_from_mask,
    save_regions,
    tonemap_linear,
    validate_regions,
)

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "resources" / "samples"
PARK = SAMPLES / "park_2048x1024.png"
SHARED_DATA = ROOT.parent / "shared" / "data"  # the project's shared/ sits beside the clone
PARK_ORIGINAL = SHARED_DATA / "eilenriede-park_2048x1024.png"
BIG_JPEG = SHARED_DATA / "pannellum_examplepano_4096x2048.jpg"

H, W = 128, 256  # the smallest valid panorama keeps these tests fast


def rng_image(shape, dtype=np.uint8, seed=0):
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    return rng.integers(0, top + 1, size=shape, dtype=np.int64).astype(dtype)


def write_cv(path: Path, rgb_like: np.ndarray) -> Path:
    """Write with OpenCV from RGB(A) order."""
    data = rgb_like
    if data.ndim == 3 and data.shape[2] == 3:
        data = data[:, :, ::-1]
    elif data.ndim == 3 and data.shape[2] == 4:
        data = data[:, :, [2, 1, 0, 3]]
    assert cv2.imwrite(str(path), np.ascontiguousarray(data))
    return path


def write_exr(path: Path, channels: dict[str, np.ndarray]) -> Path:
    import OpenEXR

    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    # the writer ignores strides: hand it contiguous arrays
    channels = {k: np.ascontiguousarray(v) for k, v in channels.items()}
    OpenEXR.File(header, channels).write(str(path))
    return path


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose IHDR claims width x height, with no pixel data at all."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr
    chunk += struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    iend = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk + iend)
    return path


def expect_input_error(fn, *args, mentions: str, contains: str | None = None) -> str:
    with pytest.raises(InputError) as info:
        fn(*args)
    message = str(info.value)
    assert "\n" not in message and message.strip() == message, message
    assert mentions in message, f"{mentions!r} not in {message!r}"
    if contains is not None:
        assert contains.lower() in message.lower(), f"{contains!r} not in {message!r}"
    return message


def round257(v: np.ndarray) -> np.ndarray:
    return np.floor(v.astype(np.float64) / 257.0 + 0.5).astype(np.uint8)


# ----------------------------------------------------------------------------- panoramas


def test_png_8bit_rgb_is_bit_exact(tmp_path):
    rgb = rng_image((H, W, 3))
    pano = load_panorama(write_cv(tmp_path / "p.png", rgb))
    assert isinstance(pano, Panorama)
    assert pano.rgb.dtype == np.uint8 and pano.rgb.shape == (H, W, 3)
    assert np.array_equal(pano.rgb, rgb)
    assert (pano.height, pano.width, pano.size) == (H, W, (H, W))
    assert pano.source.startswith("PNG 8-bit RGB")
    assert pano.path == str(tmp_path / "p.png")
    assert np.allclose(pano.as_float(), rgb / 255.0)


def test_png_16bit_rounds_v_over_257(tmp_path):
    rgb = rng_image((H, W, 3), np.uint16, seed=1)
    # the values around the rounding boundaries: 257k + 128 -> k, 257k + 129 -> k + 1
    rgb[0, :6, 0] = [0, 128, 129, 385, 386, 65535]
    pano = load_panorama(write_cv(tmp_path / "p16.png", rgb))
    assert np.array_equal(pano.rgb, round257(rgb))
    assert pano.rgb[0, :6, 0].tolist() == [0, 0, 1, 1, 2, 255]
    assert "16-bit" in pano.source


def test_png_gray_8_and_16_bit_replicated(tmp_path):
    gray = rng_image((H, W), seed=2)
    pano = load_panorama(write_cv(tmp_path / "g.png", gray))
    assert np.array_equal(pano.rgb, np.repeat(gray[:, :, None], 3, axis=2))
    assert "gray" in pano.source
    gray16 = rng_image((H, W), np.uint16, seed=3)
    pano16 = load_panorama(write_cv(tmp_path / "g16.png", gray16))
    assert np.array_equal(pano16.rgb[:, :, 1], round257(gray16))


def test_png_rgba_composited_on_black(tmp_path):
    rgba = rng_image((H, W, 4), seed=4)
    rgba[0, 0] = [200, 100, 50, 0]
    rgba[0, 1] = [200, 100, 50, 255]
    rgba[0, 2] = [200, 100, 51, 128]
    pano = load_panorama(write_cv(tmp_path / "a.png", rgba))
    expected = np.floor(rgba[:, :, :3] * (rgba[:, :, 3:] / 255.0) + 0.5).astype(np.uint8)
    assert np.array_equal(pano.rgb, expected)
    assert pano.rgb[0, 0].tolist() == [0, 0, 0]
    assert pano.rgb[0, 1].tolist() == [200, 100, 50]
    assert pano.rgb[0, 2].tolist() == [100, 50, 26]  # 51 * 128 / 255 = 25.6
    assert "alpha composited on black" in pano.source


def test_png_rgba_16bit_composite_and_opaque_alpha(tmp_path):
    rgba = rng_image((H, W, 4), np.uint16, seed=5)
    pano = load_panorama(write_cv(tmp_path / "a16.png", rgba))
    c = rgba[:, :, :3].astype(np.float64) * rgba[:, :, 3:] / 65535.0
    assert np.array_equal(pano.rgb, np.floor(c / 257.0 + 0.5).astype(np.uint8))
    rgba[:, :, 3] = 65535  # opaque: alpha is dropped, colours exact
    pano = load_panorama(write_cv(tmp_path / "o16.png", rgba))
    assert np.array_equal(pano.rgb, round257(rgba[:, :, :3]))
    assert "opaque" in pano.source


def test_png_gray_alpha_and_palette(tmp_path):
    gray = rng_image((H, W), seed=6)
    alpha = rng_image((H, W), seed=7)
    Image.fromarray(np.dstack([gray, alpha]), "LA").save(tmp_path / "la.png")
    pano = load_panorama(tmp_path / "la.png")
    expected = np.floor(gray * (alpha / 255.0) + 0.5).astype(np.uint8)
    assert np.array_equal(pano.rgb[:, :, 0], expected)
    assert np.array_equal(pano.rgb[:, :, 2], expected)
    assert "gray+alpha" in pano.source and "composited" in pano.source
    rgb = rng_image((H, W, 3), seed=8) // 64 * 64  # few colours
    Image.fromarray(rgb).quantize(colors=64, method=Image.Quantize.FASTOCTREE, dither=0).save(
        tmp_path / "pal.png"
    )
    pal = load_panorama(tmp_path / "pal.png")
    ref = np.asarray(Image.open(tmp_path / "pal.png").convert("RGB"))
    assert np.array_equal(pal.rgb, ref)


def test_webp_lossless_roundtrip(tmp_path):
    rgb = rng_image((H, W, 3), seed=9)
    Image.fromarray(rgb).save(tmp_path / "p.webp", lossless=True, quality=100)
    pano = load_panorama(tmp_path / "p.webp")
    assert np.array_equal(pano.rgb, rgb)
    assert pano.source.startswith("WebP")


def test_tiff_16bit_rgb_contiguous_and_planar(tmp_path):
    import tifffile

    rgb = rng_image((H, W, 3), np.uint16, seed=10)
    tifffile.imwrite(tmp_path / "c.tif", rgb, photometric="rgb")
    tifffile.imwrite(
        tmp_path / "p.tiff",
        np.moveaxis(rgb, -1, 0),
        photometric="rgb",
        planarconfig="separate",
        compression="zlib",
    )
    for name in ("c.tif", "p.tiff"):
        pano = load_panorama(tmp_path / name)
        assert np.array_equal(pano.rgb, round257(rgb)), name
        assert pano.source.startswith("TIFF 16-bit RGB")


def test_tiff_8bit_rgba_unassociated_alpha(tmp_path):
    import tifffile

    rgba = rng_image((H, W, 4), seed=11)
    tifffile.imwrite(tmp_path / "a.tif", rgba, photometric="rgb", extrasamples=["unassalpha"])
    pano = load_panorama(tmp_path / "a.tif")
    expected = np.floor(rgba[:, :, :3] * (rgba[:, :, 3:] / 255.0) + 0.5).astype(np.uint8)
    assert np.array_equal(pano.rgb, expected)


def test_jpeg_loads_close_and_ignores_exif_orientation(tmp_path):
    y, x = np.mgrid[0:H, 0:W]
    rgb = np.dstack([x * 255 // W, y * 255 // H, (x + y) % 256]).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW": must be ignored for a panorama
    Image.fromarray(rgb).save(tmp_path / "p.jpg", quality=95, exif=exif)
    pano = load_panorama(tmp_path / "p.jpg")
    assert pano.rgb.shape == (H, W, 3)
    assert np.abs(pano.rgb.astype(int) - rgb).mean() < 3
    assert pano.source.startswith("JPEG 8-bit RGB")


def ramp_linear(h=H, w=W):
    ramp = np.geomspace(1e-3, 1e3, w, dtype=np.float32)
    return np.broadcast_to(ramp[None, :, None], (h, w, 3)).copy()


def assert_tonemapped_ramp(pano: Panorama):
    row = pano.rgb[H // 2, :, 1].astype(int)
    assert np.all(np.diff(row) >= 0), "tone mapping must be monotonic"
    assert row[0] <= 5 and row[-1] >= 250, row[[0, -1]]
    assert 90 <= row[W // 2] <= 190  # the median maps to mid-grey, not to black or white
    assert "tone-mapped" in pano.source


def test_exr_float_and_half_tonemapped_monotonic(tmp_path):
    lin = ramp_linear()
    path = write_exr(
        tmp_path / "p.exr",
        {"R": lin[..., 0].astype(np.float16), "G": lin[..., 1], "B": lin[..., 2]},
    )
    pano = load_panorama(path)
    assert pano.rgb.dtype == np.uint8 and pano.rgb.shape == (H, W, 3)
    assert_tonemapped_ramp(pano)
    assert pano.source.startswith("EXR float RGB")


def test_exr_nan_inf_negative_are_handled(tmp_path):
    lin = ramp_linear()
    lin[0, 0] = np.nan
    lin[0, 1] = np.inf
    lin[0, 2] = -np.inf
    lin[0, 3] = -5.0
    pano = load_panorama(write_exr(tmp_path / "bad.exr", {"RGB": lin}))
    assert pano.rgb[0, 0].tolist() == [0, 0, 0]
    assert pano.rgb[0, 1].tolist() == [255, 255, 255]  # +inf -> the brightest value
    assert pano.rgb[0, 2].tolist() == [0, 0, 0]
    assert pano.rgb[0, 3].tolist() == [0, 0, 0]
    assert "non-finite" in pano.source


def test_a_float_panorama_with_no_finite_colour_is_refused(tmp_path):
    lin = ramp_linear()
    lin[:] = np.nan
    lin[0, 0] = np.inf  # not finite either
    expect_input_error(
        load_panorama, write_exr(tmp_path / "nan.exr", {"RGB": lin}), mentions="no finite colour"
    )


def test_exr_luminance_only(tmp_path):
    lin = ramp_linear()[..., 0]
    pano = load_panorama(write_exr(tmp_path / "y.exr", {"Y": lin}))
    assert np.array_equal(pano.rgb[..., 0], pano.rgb[..., 2])
    assert np.all(np.diff(pano.rgb[H // 2, :, 0].astype(int)) >= 0)


def test_radiance_hdr_tonemapped_monotonic(tmp_path):
    path = tmp_path / "p.hdr"
    assert cv2.imwrite(str(path), ramp_linear())
    pano = load_panorama(path)
    assert_tonemapped_ramp(pano)
    assert pano.source.startswith("HDR float")


def test_tonemap_linear_exposure_invariant():
    lin = ramp_linear(4, 64)
    a = tonemap_linear(lin)
    b = tonemap_linear(lin * 1000.0)  # exposure is normalised by the median luminance
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


@pytest.mark.skipif(not PARK.exists(), reason="bundled sample missing")
def test_bundled_park_sample_loads_rgba():
    pano = load_panorama(PARK)
    assert pano.size == (1024, 2048)
    assert "RGBA" in pano.source
    ref = np.asarray(Image.open(PARK).convert("RGB"))
    assert np.array_equal(pano.rgb, ref)  # alpha is opaque: bit-identical colours
    if PARK_ORIGINAL.exists():
        assert PARK.read_bytes() == PARK_ORIGINAL.read_bytes()


@pytest.mark.skipif(not BIG_JPEG.exists(), reason="shared 4K test image missing")
def test_real_4k_jpeg_loads():
    pano = load_panorama(BIG_JPEG)
    assert pano.size == (2048, 4096)
    assert pano.rgb.dtype == np.uint8
    assert 40 < pano.rgb.mean() < 220


def test_the_largest_panorama_is_refused_from_its_header(tmp_path):
    """16384x8192 passes the size check; one column more is refused before any decoding
    (the PNG holds only a header: nothing is decoded either way)."""
    import struct
    import zlib

    def header_only(path, w, h):
        ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
        chunk = b"IHDR" + ihdr
        data = struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + data)
        return path

    too_big = header_only(tmp_path / "big.png", MAX_SIZE[1] + 2, MAX_SIZE[0] + 1)
    msg = expect_input_error(load_panorama, too_big, mentions="big.png")
    assert "larger than the maximum 16384x8192" in msg
    at_limit = header_only(tmp_path / "limit.png", MAX_SIZE[1], MAX_SIZE[0])
    msg = expect_input_error(load_panorama, at_limit, mentions="limit.png")  # no pixel data
    assert "maximum" not in msg and "aspect" not in msg


def test_size_and_aspect_boundaries_inclusive(tmp_path):
    load_panorama(write_cv(tmp_path / "min.png", np.zeros((128, 256, 3), np.uint8)))
    load_panorama(write_cv(tmp_path / "a198.png", np.zeros((200, 396, 3), np.uint8)))  # 1.98
    load_panorama(write_cv(tmp_path / "a202.png", np.zeros((200, 404, 3), np.uint8)))  # 2.02
    expect_input_error(
        load_panorama,
        write_cv(tmp_path / "a197.png", np.zeros((200, 394, 3), np.uint8)),
        mentions="a197.png",
        contains="2:1",
    )


# ------------------------------------------------------------------ bad panorama inputs


def _missing(p):
    return p / "nope.png"


def _directory(p):
    d = p / "folder.png"
    d.mkdir()
    return d


def _empty(p):
    f = p / "empty.png"
    f.write_bytes(b"")
    return f


def _truncated_png(p):
    f = write_cv(p / "full.png", rng_image((H, W, 3)))
    data = f.read_bytes()
    out = p / "truncated.png"
    out.write_bytes(data[: len(data) // 2])
    return out


def _random_jpg(p):
    f = p / "random.jpg"
    f.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    return f


def _fake_jpeg(p):  # JPEG magic, garbage after it
    f = p / "fake.jpg"
    f.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 300)
    return f


def _wrong_aspect(p):
    return write_cv(p / "square.png", np.zeros((512, 512, 3), np.uint8))


def _too_small(p):
    return write_cv(p / "tiny.png", np.zeros((64, 128, 3), np.uint8))


def _too_big_real(p):
    f = p / "huge.png"
    Image.new("1", (17000, 8500)).save(f)  # a real 1-bit PNG: small on disk
    return f


def _too_big_header(p):
    return png_header_only(p / "giant.png", 40000, 20000)


def _zero_size(p):
    return png_header_only(p / "zero.png", 0, 0)


def _unsupported_ext(p):
    f = p / "anim.gif"
    Image.new("RGB", (W, H)).save(f)
    return f


def _npy_panorama(p):
    f = p / "pano.npy"
    np.save(f, np.zeros((H, W, 3), np.uint8))
    return f


def _truncated_exr(p):
    f = write_exr(p / "full.exr", {"RGB": ramp_linear()})
    out = p / "cut.exr"
    out.write_bytes(f.read_bytes()[:400])
    return out


def _truncated_hdr(p):
    f = p / "full.hdr"
    cv2.imwrite(str(f), ramp_linear())
    out = p / "cut.hdr"
    out.write_bytes(f.read_bytes()[:2000])
    return out


def _truncated_tiff(p):
    import tifffile

    f = p / "full.tif"
    tifffile.imwrite(f, rng_image((H, W, 3)), photometric="rgb", compression="zlib")
    out = p / "cut.tif"
    out.write_bytes(f.read_bytes()[:3000])
    return out


def _truncated_jpeg(p):
    f = p / "full.jpg"
    Image.fromarray(rng_image((H, W, 3))).save(f, quality=90)
    out = p / "cut.jpg"
    out.write_bytes(f.read_bytes()[:3000])
    return out


BAD_PANORAMAS = {
    "missing": (_missing, "not found"),
    "directory": (_directory, "folder"),
    "empty": (_empty, "empty"),
    "truncated_png": (_truncated_png, "truncated"),
    "random_bytes_jpg": (_random_jpg, "not a valid JPEG"),
    "fake_jpeg": (_fake_jpeg, "JPEG"),
    "wrong_aspect": (_wrong_aspect, "2:1"),
    "too_small": (_too_small, "minimum"),
    "too_big_real": (_too_big_real, "maximum"),
    "too_big_header": (_too_big_header, "maximum"),
    "zero_size": (_zero_size, "zero size"),
    "unsupported_ext": (_unsupported_ext, "unsupported"),
    "npy_as_panorama": (_npy_panorama, "not accepted"),
    "truncated_exr": (_truncated_exr, "EXR"),
    "truncated_hdr": (_truncated_hdr, "HDR"),
    "truncated_tiff": (_truncated_tiff, "TIFF"),
    "truncated_jpeg": (_truncated_jpeg, "truncated"),
}


@pytest.mark.parametrize("case", sorted(BAD_PANORAMAS))
def test_bad_panorama_is_one_line_input_error(tmp_path, capfd, case):
    make, contains = BAD_PANORAMAS[case]
    path = make(tmp_path)
    expect_input_error(load_panorama, path, mentions=path.name, contains=contains)
    # native decoders must not have printed anything either (the CLI prints exactly one line)
    out, err = capfd.readouterr()
    assert out == "" and err == "", (out, err)


# --------------------------------------------------------------------------------- masks


def test_mask_gray_png_and_npy(tmp_path):
    m = np.zeros((H, W), np.uint8)
    m[10:20, 30:90] = 255
    got = load_mask(write_cv(tmp_path / "m.png", m), (H, W))
    assert got.dtype == np.bool_ and np.array_equal(got, m > 0)
    np.save(tmp_path / "m.npy", m > 0)
    assert np.array_equal(load_mask(tmp_path / "m.npy", (H, W)), m > 0)


def test_mask_any_channel_nonzero_and_varying_alpha_wins(tmp_path):
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[0:5, :, 2] = 1  # any nonzero channel counts
    got = load_mask(write_cv(tmp_path / "rgb.png", rgb), (H, W))
    assert got[0:5].all() and not got[5:].any()
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[..., :3] = 255  # colour everywhere (a painted layer exported with transparency)
    rgba[50:60, 10:20, 3] = 200
    got = load_mask(write_cv(tmp_path / "rgba.png", rgba), (H, W))
    assert got.sum() == 100 and got[50:60, 10:20].all()


def test_mask_resampled_down_and_up(tmp_path):
    big = np.zeros((2 * H, 2 * W), np.uint8)
    big[: H // 2, :] = 255  # top eighth... a quarter of the rows
    got = load_mask(write_cv(tmp_path / "big.png", big), (H, W))
    assert got[: H // 4].all() and not got[H // 4 :].any()
    small = np.zeros((H // 2, W // 2), np.uint8)
    small[:, : W // 4] = 255
    got = load_mask(write_cv(tmp_path / "small.png", small), (H, W))
    assert got.shape == (H, W)
    assert 0.45 < got.mean() < 0.55


def test_mask_one_pixel_thin_region_survives_downscaling(tmp_path):
    m = np.zeros((1024, 2048), np.uint8)
    m[300, 100:900] = 255  # one pixel thin line
    m[600:1000, 1500] = 255  # and a vertical one
    got = load_mask(write_cv(tmp_path / "thin.png", m), (H, W))
    assert got.any()
    assert got[300 * H // 1024, 100 * W // 2048 + 2 : 900 * W // 2048 - 2].all()
    assert got[:, 1500 * W // 2048].any()
    single = np.zeros((1024, 2048), np.uint8)
    single[5, 7] = 1  # a single pixel of value 1 is still "nonzero"
    assert load_mask(write_cv(tmp_path / "one.png", single), (H, W)).sum() >= 1


def test_mask_jpeg_threshold_ignores_compression_noise(tmp_path):
    m = np.zeros((H, W), np.uint8)
    m[40:80, 60:160] = 255
    Image.fromarray(m).save(tmp_path / "m.jpg", quality=70)
    got = load_mask(tmp_path / "m.jpg", (H, W))
    assert np.mean(got != (m > 0)) < 0.01


def test_mask_aspect_mismatch(tmp_path):
    path = write_cv(tmp_path / "square_mask.png", np.full((200, 200), 255, np.uint8))
    expect_input_error(load_mask, path, (H, W), mentions="square_mask.png", contains="match")


# ------------------------------------------------------------------------------- regions


def write_regions(tmp_path: Path, regions: list[dict], **top) -> Path:
    doc = {"format": "pano4d-regions", "version": 1, "regions": regions, **top}
    path = tmp_path / "regions.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture
def mask_file(tmp_path) -> Path:
    m = np.zeros((H, W), np.uint8)
    m[:40] = 255
    return write_cv(tmp_path / "sky.png", m)


def test_load_regions_defaults_and_fields(tmp_path, mask_file):
    path = write_regions(
        tmp_path,
        [
            {
                "name": "sky",
                "mask": "sky.png",
                "direction_deg": -90,
                "speed_deg_s": 3,
                "feather_px": 12,
                "color": [80, 160, 255],
            },
            {"name": "all-defaults", "mask": str(mask_file)},
        ],
    )
    sky, other = load_regions(path, (H, W))
    assert sky.name == "sky" and sky.mask.dtype == np.bool_ and sky.mask.shape == (H, W)
    assert sky.mask[:40].all() and not sky.mask[40:].any()
    assert (sky.direction_deg, sky.speed_deg_s, sky.feather_px) == (270.0, 3.0, 12.0)
    assert sky.color == (80, 160, 255)
    assert (other.direction_deg, other.speed_deg_s, other.feather_px) == (0.0, 2.0, 8.0)
    assert other.color == (255, 80, 80)


def test_load_regions_label_map_shared(tmp_path):
    labels = np.zeros((H // 2, W // 2), np.uint8)  # half resolution: resampled per region
    labels[:20] = 1
    labels[40:50] = 2
    write_cv(tmp_path / "labels.png", labels)
    path = write_regions(
        tmp_path,
        [
            {"name": "a", "mask": "labels.png", "label": 1},
            {"name": "b", "mask": "labels.png", "label": 2},
        ],
    )
    a, b = load_regions(path, (H, W))
    assert a.mask[:40].all() and not a.mask[40:].any()
    assert b.mask[80:100].all() and b.mask.sum() == 20 * W


def test_save_then_load_regions_roundtrip(tmp_path):
    m1 = np.zeros((H, W), bool)
    m1[:30, :] = True
    m2 = np.zeros((H, W), bool)
    m2[60:70, 5:50] = True
    m2[0, W - 1] = True  # touches the seam
    regions = [
        Region(
            "sky", m1, direction_deg=10.5, speed_deg_s=3.0, feather_px=16.0, color=(80, 160, 255)
        ),
        Region("water / pond", m2, direction_deg=200.0, speed_deg_s=0.5),
    ]
    out = tmp_path / "scene" / "park_regions.json"
    save_regions(out, regions)
    files = sorted(p.name for p in out.parent.iterdir())
    assert files == ["park_regions.json", "park_sky.png", "park_water_pond.png"]  # no temp files
    plain = out.parent / "plain.txt"
    plain.write_text("x")  # atomic writes get the mode a plain open() gives, not 0600
    assert os.stat(out).st_mode == os.stat(out.parent / "park_sky.png").st_mode
    assert os.stat(out).st_mode == os.stat(plain).st_mode
    plain.unlink()
    doc = json.loads(out.read_text())
    assert doc["format"] == "pano4d-regions" and doc["version"] == 1
    assert doc["regions"][0]["mask"] == "park_sky.png"
    mask_png = cv2.imread(str(out.parent / "park_sky.png"), cv2.IMREAD_UNCHANGED)
    assert (
        mask_png.dtype == np.uint8 and mask_png.ndim == 2 and set(np.unique(mask_png)) == {0, 255}
    )
    back = load_regions(out, (H, W))
    for a, b in zip(regions, back):
        assert a.name == b.name and np.array_equal(a.mask, b.mask)
        assert (a.direction_deg, a.speed_deg_s, a.feather_px, a.color) == (
            b.direction_deg,
            b.speed_deg_s,
            b.feather_px,
            b.color,
        )
    # a separate mask folder is referenced relative to the JSON
    save_regions(tmp_path / "regions.json", regions[:1], mask_dir=tmp_path / "masks")
    doc = json.loads((tmp_path / "regions.json").read_text())
    assert doc["regions"][0]["mask"] == "masks/sky.png"
    assert np.array_equal(load_regions(tmp_path / "regions.json", (H, W))[0].mask, m1)


@pytest.mark.skipif(not (SAMPLES / "park_regions.json").exists(), reason="sample missing")
def test_bundled_park_regions_are_sensible():
    sky, trees = load_regions(SAMPLES / "park_regions.json", (1024, 2048))
    assert (sky.name, trees.name) == ("sky", "trees")
    assert 0.25 < sky.mask.mean() < 0.45 and 0.08 < trees.mask.mean() < 0.25
    assert sky.mask[0].all()  # the sky reaches the zenith row
    assert not (sky.mask & trees.mask).any()
    assert not sky.mask[560:].any() and not trees.mask[560:].any()  # grass stays static
    assert trees.mask[470].mean() > 0.95  # the tree line is covered all around
    # the masks wrap: the seam columns agree
    assert np.array_equal(sky.mask[:, 0], sky.mask[:, -1])
    for m in (sky.mask, trees.mask):
        assert np.mean(m[:, 0] != m[:, -1]) < 0.01
    assert 0 <= sky.direction_deg < 360 and 0 < sky.speed_deg_s <= 90
    # a half-resolution load (what a preview does) works as well
    small = load_regions(SAMPLES / "park_regions.json", (512, 1024))
    assert small[0].mask.shape == (512, 1024)


def region_case(tmp_path, **changes):
    entry = {"name": "sky", "mask": "sky.png", "speed_deg_s": 1.0}
    entry.update(changes)
    return write_regions(tmp_path, [entry])


BAD_REGIONS = {
    "unknown_key": (lambda p: region_case(p, sped=3), "'sped'"),
    "negative_speed": (lambda p: region_case(p, speed_deg_s=-1), "speed_deg_s"),
    "too_fast": (lambda p: region_case(p, speed_deg_s=500), "speed_deg_s"),
    "string_speed": (lambda p: region_case(p, speed_deg_s="fast"), "speed_deg_s"),
    "bool_feather": (lambda p: region_case(p, feather_px=True), "feather_px"),
    "negative_feather": (lambda p: region_case(p, feather_px=-2), "feather_px"),
    "bad_color": (lambda p: region_case(p, color=[1, 2]), "color"),
    "bad_label": (lambda p: region_case(p, label=1.5), "label"),
    "label_absent": (lambda p: region_case(p, label=7), "label 7"),
    "missing_mask_file": (lambda p: region_case(p, mask="nowhere.png"), "nowhere.png"),
    "mask_not_string": (lambda p: region_case(p, mask=3), "mask"),
    "empty_name": (lambda p: region_case(p, name=" "), "name"),
}


@pytest.mark.parametrize("case", sorted(BAD_REGIONS))
def test_bad_region_field(tmp_path, mask_file, case):
    make, contains = BAD_REGIONS[case]
    path = make(tmp_path)
    expect_input_error(load_regions, path, (H, W), mentions="regions.json", contains=contains)


def test_region_nan_is_rejected(tmp_path, mask_file):
    path = tmp_path / "nan_regions.json"
    path.write_text(
        '{"format": "pano4d-regions", "version": 1, "regions": '
        '[{"name": "sky", "mask": "sky.png", "direction_deg": NaN}]}'
    )
    msg = expect_input_error(load_regions, path, (H, W), mentions="nan_regions.json")
    assert "direction_deg" in msg and "finite" in msg and "'sky'" in msg


def test_regions_file_level_errors(tmp_path, mask_file):
    bad = tmp_path / "broken.json"
    bad.write_text('{"format": "pano4d-regions", "version": 1, "regions": [')
    expect_input_error(load_regions, bad, (H, W), mentions="broken.json", contains="JSON")
    for name, doc, contains in [
        ("zero.json", {"format": "pano4d-regions", "version": 1, "regions": []}, "empty"),
        ("fmt.json", {"format": "other", "version": 1, "regions": []}, "format"),
        ("newer.json", {"format": "pano4d-regions", "version": 2, "regions": []}, "newer"),
        ("extra.json", {"format": "pano4d-regions", "version": 1, "regions": [], "x": 1}, "'x'"),
        ("list.json", [1, 2], "object"),
        (
            "dup.json",
            {
                "format": "pano4d-regions",
                "version": 1,
                "regions": [{"name": "a", "mask": "sky.png"}, {"name": "a", "mask": "sky.png"}],
            },
            "duplicate",
        ),
    ]:
        (tmp_path / name).write_text(json.dumps(doc))
        expect_input_error(load_regions, tmp_path / name, (H, W), mentions=name, contains=contains)
    expect_input_error(load_regions, tmp_path / "absent.json", (H, W), mentions="absent.json")


def test_region_empty_mask_and_mask_aspect_mismatch(tmp_path):
    write_cv(tmp_path / "blank.png", np.zeros((H, W), np.uint8))
    path = write_regions(tmp_path, [{"name": "water", "mask": "blank.png"}])
    msg = expect_input_error(load_regions, path, (H, W), mentions="regions.json", contains="empty")
    assert "'water'" in msg
    write_cv(tmp_path / "tall.png", np.full((300, 300), 255, np.uint8))
    path = write_regions(tmp_path, [{"name": "fog", "mask": "tall.png"}])
    msg = expect_input_error(load_regions, path, (H, W), mentions="tall.png", contains="match")
    assert "'fog'" in msg


def test_validate_regions_and_regions_from_mask():
    m = np.zeros((H, W), bool)
    m[3:5, 3:5] = True
    (region,) = regions_from_mask(m, direction_deg=-45, speed_deg_s=1.5, name="water")
    assert region.direction_deg == 315.0 and region.speed_deg_s == 1.5 and region.mask is not None
    validate_regions([region], (H, W))
    with pytest.raises(InputError, match="'empty'.*empty"):
        validate_regions([Region("empty", np.zeros((H, W), bool), 0.0, 1.0)], (H, W))
    with pytest.raises(InputError, match="shape"):
        validate_regions([Region("small", m[:10], 0.0, 1.0)], (H, W))
    with pytest.raises(InputError, match="bool"):
        validate_regions([Region("uint8", m.astype(np.uint8), 0.0, 1.0)], (H, W))
    with pytest.raises(InputError, match="speed_deg_s"):
        validate_regions([Region("fast", m, 0.0, 91.0)], (H, W))
    with pytest.raises(InputError, match="no regions"):
        validate_regions([], (H, W))
    with pytest.raises(InputError, match="duplicate"):
        validate_regions([region, region], (H, W))
    # overlapping regions are allowed
    validate_regions([region, Region("overlap", m.copy(), 0.0, 1.0)], (H, W))
    with pytest.raises(InputError, match="empty"):
        regions_from_mask(np.zeros((H, W), bool))


# --------------------------------------------------------------------------------- depth


def test_depth_png16_scale_and_invalid_zero(tmp_path):
    d = np.full((H, W), 2500, np.uint16)
    d[0, 0] = 0
    depth = load_depth(write_cv(tmp_path / "d.png", d), (H, W))
    assert depth.dtype == np.float32 and depth.shape == (H, W)
    assert np.isnan(depth[0, 0]) and np.allclose(depth[1:], 2.5)
    depth = load_depth(tmp_path / "d.png", (H, W), png16_scale=0.01)
    assert np.allclose(depth[1:], 25.0)


def test_depth_float_tiff_exr_npy_and_resampling(tmp_path):
    import tifffile

    d = np.linspace(1.0, 10.0, W, dtype=np.float32)[None, :].repeat(H, axis=0)
    d[5, 5] = -1.0
    d[6, 6] = np.inf
    tifffile.imwrite(tmp_path / "d.tif", d)
    np.save(tmp_path / "d.npy", d)
    write_exr(tmp_path / "d.exr", {"Z": d})
    for name in ("d.tif", "d.npy", "d.exr"):
        got = load_depth(tmp_path / name, (H, W))
        assert np.isnan(got[5, 5]) and np.isnan(got[6, 6]), name
        valid = np.isfinite(d) & (d > 0)
        assert np.allclose(got[valid], d[valid]), name
    half = load_depth(tmp_path / "d.npy", (H // 2, W // 2))
    assert half.shape == (H // 2, W // 2) and np.isfinite(half).all()  # invalid minority dropped
    double = load_depth(tmp_path / "d.npy", (2 * H, 2 * W))
    assert double.shape == (2 * H, 2 * W) and np.nanmin(double) >= 1.0 and np.nanmax(double) <= 10.0


def test_depth_errors(tmp_path):
    np.save(tmp_path / "invalid.npy", np.full((H, W), np.nan, np.float32))
    expect_input_error(
        load_depth, tmp_path / "invalid.npy", (H, W), mentions="invalid.npy", contains="no valid"
    )
    write_cv(tmp_path / "zeros.png", np.zeros((H, W), np.uint16))
    expect_input_error(
        load_depth, tmp_path / "zeros.png", (H, W), mentions="zeros.png", contains="no valid"
    )
    write_cv(tmp_path / "d8.png", np.full((H, W), 9, np.uint8))
    expect_input_error(
        load_depth, tmp_path / "d8.png", (H, W), mentions="d8.png", contains="16-bit"
    )
    np.save(tmp_path / "square.npy", np.ones((H, H), np.float32))
    expect_input_error(
        load_depth, tmp_path / "square.npy", (H, W), mentions="square.npy", contains="match"
    )
    (tmp_path / "pickle.npy").write_bytes(b"\x93NUMPY garbage")
    expect_input_error(load_depth, tmp_path / "pickle.npy", (H, W), mentions="pickle.npy")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    expect_input_error(load_depth, tmp_path / "objects.npy", (H, W), mentions="objects.npy")


def test_no_path_in_message_is_absolute_only_when_given(tmp_path, monkeypatch):
    # relative paths are reported as the user typed them
    monkeypatch.chdir(tmp_path)
    msg = expect_input_error(load_panorama, "rel.png", mentions="rel.png")
    assert not msg.startswith(os.sep)


def test_enlarging_depth_wraps_the_seam():
    """Reference: bilinear interpolation along a periodic longitude (numpy's interp with
    period = width) of a smooth depth field; the first and last output columns blend the
    panorama's two edges, as the sphere does."""
    from engine.io import resize_depth

    h, w, H, W = 8, 16, 16, 32
    cols = (np.arange(w) + 0.5) / w
    depth = (2 + 0.15 * np.sin(2 * np.pi * cols) + 0.1 * (cols > 0.9))[None].repeat(h, 0)
    got = resize_depth(depth.astype(np.float32), (H, W))
    x = (np.arange(W) + 0.5) * w / W - 0.5
    want = np.interp(x, np.arange(w), depth[0], period=w)
    np.testing.assert_allclose(got[H // 2], want, atol=1e-5)


def test_enlarging_depth_never_blends_across_a_depth_edge():
    """Foreground blocks (1 m) before a background (10 m), one with its edge on the seam:
    enlarged 4x, every pixel is one of the two depths, the nearest source pixel's (a blend
    would float Gaussians between them). Reference: nearest-neighbour upsampling."""
    from engine.io import resize_depth

    h, w, s = 8, 16, 4
    depth = np.full((h, w), 10.0, np.float32)
    depth[2:6, 6:9] = 1.0
    depth[1:7, 0:2] = 1.0  # its left edge is the seam (column 15 is background)
    got = resize_depth(depth, (h * s, w * s))
    np.testing.assert_array_equal(got, depth.repeat(s, 0).repeat(s, 1))
