//! Image files → pixels: JPEG through libjpeg-turbo's decoder (the `mozjpeg` crate), PNG,
//! WebP, GIF (first frame), BMP and TIFF through the `image` crate.
//!
//! **Why mozjpeg.** PIL decodes JPEG with libjpeg-turbo (integer "slow" IDCT, fancy chroma
//! upsampling). The `image` crate's pure-Rust JPEG decoder (zune-jpeg) differs from it by up
//! to 4–6 levels on the fixture photos (82–93 % of colour values identical), still up to 3
//! levels after a 224-pixel resize, where everything else here is exact. `mozjpeg` builds libjpeg-turbo's decoder (vendored C)
//! with the same defaults, and decodes bit-identically to PIL. By default it is built without
//! SIMD, so no `nasm` is needed; the `jpeg-simd` cargo feature turns libjpeg-turbo's SIMD
//! kernels on when `nasm` is installed (about twice as fast on large photos, same pixels:
//! the fixture tests pass either way).
//!
//! **Fast decoding (opt-in).** By default every JPEG is decoded at full size, as
//! `Image.open` does. [`DecodeOptions::draft`] turns on libjpeg's DCT-domain downscaling by
//! 1/2, 1/4 or 1/8 with the rule of PIL's `JpegImageFile.draft(mode, size)` ([`draft_scale`]):
//! the largest scale that keeps each side at or above the requested size. That decodes a
//! 12-megapixel photo several times faster, and the pixels are those of PIL's `draft` (the
//! same libjpeg IDCTs), not those of a full decode: after the 224-pixel resize they differ
//! from the exact path by a few levels (docs/performance.md). Other formats are unaffected;
//! the decompression-bomb check still uses the header's full size.
//!
//! **Why `catch_unwind`.** `mozjpeg` reports libjpeg's fatal errors (corrupt headers,
//! impossible dimensions, broken Huffman tables…) by unwinding out of libjpeg's `error_exit`
//! callback, i.e. as a Rust panic. [`decode`] runs the JPEG decode inside
//! [`std::panic::catch_unwind`] and turns that unwind into [`PreprocessError::Image`], so a corrupt
//! JPEG is an error, never a crash. The unwind is raised with `resume_unwind`, which skips the
//! panic hook, so nothing is printed. (A binary built with `panic = "abort"` cannot catch it
//! and aborts instead.) libjpeg only *warns* about data that ends early and fills the rest
//! with grey; PIL refuses such a file ("image file is truncated"), and so do we: the reader
//! handed to libjpeg records when it runs dry.
//!
//! CMYK and YCCK JPEGs are decoded to CMYK and converted with PIL's `CMYK;I` + `cmyk2rgb`
//! (see `convert`); greyscale JPEGs stay greyscale (`Luma8`).
//!
//! **EXIF orientation (opt-in).** By default it is not applied: neither `Image.open` nor the
//! processor applies it (only `transformers.image_utils.load_image` does).
//! [`DecodeOptions::exif_transpose`] applies it after decoding, as PIL's
//! `ImageOps.exif_transpose`: orientation 2 mirrors, 3 rotates 180°, 4 flips, 5 transposes,
//! 6 rotates 90° clockwise, 7 transverses, 8 rotates 90° counter-clockwise; 1, a missing
//! tag and any other value change nothing. For JPEG the tag is read from the `Exif` APP1
//! segments (concatenated, as PIL does) with `image::metadata::Orientation::from_exif_chunk`
//! (a bounded reader: a short or inconsistent chunk gives no orientation, never a panic),
//! and, lacking it, from the XMP packet's `tiff:Orientation` as PIL does; for PNG, WebP and
//! TIFF from the `image` crate's decoder (EXIF only). A tag stored as a LONG rather than a
//! SHORT, which PIL honours, is ignored here.
//!
//! **Decompression bombs.** Every decoder first reads the header; an image with more pixels
//! than the limit (default [`DEFAULT_MAX_PIXELS`], PIL's error threshold `2 ×
//! Image.MAX_IMAGE_PIXELS`) is refused with [`PreprocessError::ImageTooLarge`] before any pixel
//! buffer is allocated. Unlike PIL we do not warn between 1× and 2× `MAX_IMAGE_PIXELS`.

use crate::convert::jpeg_cmyk_to_rgb;
use crate::error::{PreprocessError, PreprocessResult};
use image::metadata::Orientation;
use image::{DynamicImage, GrayImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};
use mozjpeg::{ColorSpace, Decompress, Marker};
use std::cell::Cell;
use std::io::{BufRead, Cursor, Read};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// Default decompression-bomb limit in pixels: `178_956_970`, the size at which PIL raises
/// `DecompressionBombError` (`2 × MAX_IMAGE_PIXELS`, `MAX_IMAGE_PIXELS = 2³⁰ / 4 / 3`).
pub const DEFAULT_MAX_PIXELS: u64 = 178_956_970;

/// Largest image file read (1 GiB): far above any real photo, small enough that a huge or
/// endless file is refused before it fills memory.
pub const MAX_FILE_BYTES: u64 = 1 << 30;

/// The formats this build reads, for error messages.
const SUPPORTED: &str = "JPEG, PNG, WebP, GIF, BMP and TIFF";

/// How an image file is decoded ([`open_with`], [`decode_with`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    /// The decompression-bomb limit, in pixels, checked against the header's full size.
    pub max_pixels: u64,
    /// `Some((width, height))`: decode JPEGs downscaled in the DCT domain as PIL's
    /// `Image.draft("RGB", (width, height))` does (scale [`draft_scale`]); `None` (the
    /// default): full size, as `Image.open`.
    pub draft: Option<(u32, u32)>,
    /// Apply the EXIF orientation as PIL's `ImageOps.exif_transpose` (default `false`).
    pub exif_transpose: bool,
}

impl DecodeOptions {
    /// `Image.open`'s decoding under a pixel limit: full size, orientation ignored.
    pub const fn exact(max_pixels: u64) -> Self {
        Self {
            max_pixels,
            draft: None,
            exif_transpose: false,
        }
    }
}

impl Default for DecodeOptions {
    /// [`DecodeOptions::exact`] with [`DEFAULT_MAX_PIXELS`].
    fn default() -> Self {
        Self::exact(DEFAULT_MAX_PIXELS)
    }
}

/// The DCT scale denominator (1, 2, 4 or 8) PIL's `JpegImageFile.draft(mode, requested)`
/// picks for a `width × height` JPEG: `scale = min(width // rw, height // rh)`, then the
/// largest of 8, 4, 2, 1 not above it. The decoded image is then
/// `⌈width / s⌉ × ⌈height / s⌉`, each side at least the requested one when the image has it.
/// A zero in `requested` (PIL divides by zero) gives 1.
///
/// ```
/// use clip_preprocess::decode::draft_scale;
/// assert_eq!(draft_scale(4000, 3000, (224, 224)), 8); // 3000 // 224 = 13
/// assert_eq!(draft_scale(640, 480, (224, 224)), 2); // 480 // 224 = 2
/// assert_eq!(draft_scale(447, 1000, (224, 224)), 1); // 447 // 224 = 1
/// ```
pub fn draft_scale(width: u32, height: u32, requested: (u32, u32)) -> u32 {
    let (rw, rh) = requested;
    if rw == 0 || rh == 0 {
        return 1;
    }
    let scale = (width / rw).min(height / rh);
    [8, 4, 2].into_iter().find(|&s| scale >= s).unwrap_or(1)
}

/// Reads and decodes an image file, refusing more than `max_pixels` pixels from its header.
///
/// # Errors
/// [`PreprocessError::Io`] when the file cannot be read; [`PreprocessError::Image`] for a
/// directory, a FIFO or device (never read, so never blocking), a file over
/// [`MAX_FILE_BYTES`], an empty or non-image file, an unsupported format, corrupt or truncated data;
/// [`PreprocessError::ImageTooLarge`] past the limit. Each names the file.
pub fn open(path: &Path, max_pixels: u64) -> PreprocessResult<DynamicImage> {
    open_with(path, &DecodeOptions::exact(max_pixels))
}

/// Reads and decodes an image file as `options` say.
///
/// # Errors
/// As [`open`], with `options.max_pixels` as the limit.
pub fn open_with(path: &Path, options: &DecodeOptions) -> PreprocessResult<DynamicImage> {
    let meta = std::fs::metadata(path).map_err(|e| PreprocessError::io(path, e))?;
    if meta.is_dir() {
        return Err(image_error(path, "is a directory, not an image file"));
    }
    if !meta.is_file() {
        // Reading a FIFO would block until a writer comes; a device may never end.
        return Err(image_error(
            path,
            "is not a regular file (a FIFO, socket or device), not read",
        ));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(image_error(
            path,
            &format!(
                "{} bytes is more than the {MAX_FILE_BYTES}-byte limit for one image file",
                meta.len()
            ),
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| PreprocessError::io(path, e))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(image_error(
            path,
            "grew past the size limit while it was read",
        ));
    }
    decode_with(&bytes, path, options)
}

/// Decodes an encoded image held in memory; `path` only names it in errors.
///
/// # Errors
/// As [`open`], except for reading the file.
pub fn decode(bytes: &[u8], path: &Path, max_pixels: u64) -> PreprocessResult<DynamicImage> {
    decode_with(bytes, path, &DecodeOptions::exact(max_pixels))
}

/// Decodes an encoded image held in memory as `options` say; `path` only names it in errors.
///
/// # Errors
/// As [`decode`], with `options.max_pixels` as the limit.
pub fn decode_with(
    bytes: &[u8],
    path: &Path,
    options: &DecodeOptions,
) -> PreprocessResult<DynamicImage> {
    if bytes.is_empty() {
        return Err(image_error(path, "empty file"));
    }
    let Ok(format) = image::guess_format(bytes) else {
        return Err(image_error(
            path,
            &format!(
                "not an image this crate can read (its first bytes match none of {SUPPORTED})"
            ),
        ));
    };
    match format {
        ImageFormat::Jpeg => decode_jpeg(bytes, path, options),
        ImageFormat::Png
        | ImageFormat::WebP
        | ImageFormat::Gif
        | ImageFormat::Bmp
        | ImageFormat::Tiff => {
            // The `image` crate's decoders report errors as values; a panic in one of them
            // (a bug, on hostile input) still costs only this image, never the caller's run.
            catch_unwind(AssertUnwindSafe(|| {
                decode_with_image_crate(bytes, format, path, options)
            }))
            .unwrap_or_else(|_| {
                Err(image_error(
                    path,
                    &format!("the {format:?} decoder panicked on this file"),
                ))
            })
        }
        other => Err(image_error(
            path,
            &format!("{other:?} images are not supported (this crate reads {SUPPORTED})"),
        )),
    }
}

fn image_error(path: &Path, reason: &str) -> PreprocessError {
    PreprocessError::Image {
        path: path.into(),
        reason: reason.into(),
    }
}

/// Refuses empty images and images over the pixel limit.
fn check_dimensions(path: &Path, width: u32, height: u32, max_pixels: u64) -> PreprocessResult<()> {
    if width == 0 || height == 0 {
        return Err(image_error(
            path,
            &format!("image has no pixels ({width}×{height})"),
        ));
    }
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(PreprocessError::ImageTooLarge {
            path: path.into(),
            width,
            height,
            limit: max_pixels,
        });
    }
    Ok(())
}

fn decode_with_image_crate(
    bytes: &[u8],
    format: ImageFormat,
    path: &Path,
    options: &DecodeOptions,
) -> PreprocessResult<DynamicImage> {
    let max_pixels = options.max_pixels;
    let decode_err = |e: image::ImageError| image_error(path, &e.to_string());
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    // Our pixel check comes first; this only keeps decoders' own scratch buffers bounded
    // (8 bytes per pixel covers 16-bit RGBA).
    let mut limits = Limits::default();
    limits.max_alloc = Some(max_pixels.saturating_mul(8).max(512 << 20));
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(decode_err)?;
    let (width, height) = decoder.dimensions();
    check_dimensions(path, width, height, max_pixels)?;
    // Unreadable metadata is no orientation, as PIL ignores a broken EXIF block.
    let orientation = if options.exif_transpose {
        decoder.orientation().unwrap_or(Orientation::NoTransforms)
    } else {
        Orientation::NoTransforms
    };
    let mut image = DynamicImage::from_decoder(decoder).map_err(decode_err)?;
    image.apply_orientation(orientation);
    Ok(image)
}

/// The orientation PIL's `getexif()` gives a JPEG whose markers `markers` holds: from the
/// `Exif` APP1 segments (their payloads concatenated, as `JpegImagePlugin` does), else from
/// the last XMP packet's first `tiff:Orientation="d"` / `tiff:Orientation>d`.
fn jpeg_orientation<'a>(
    markers: impl Iterator<Item = mozjpeg::decompress::MarkerData<'a>>,
) -> Orientation {
    let mut exif: Vec<u8> = Vec::new();
    let mut xmp: Option<&[u8]> = None;
    for m in markers {
        if m.marker != Marker::APP(1) {
            continue;
        }
        if let Some(payload) = m.data.strip_prefix(b"Exif\0\0") {
            exif.extend_from_slice(payload);
        } else if let Some(packet) = m.data.strip_prefix(b"http://ns.adobe.com/xap/1.0/\0") {
            xmp = Some(packet);
        }
    }
    if let Some(o) = Orientation::from_exif_chunk(&exif) {
        return o;
    }
    xmp.and_then(xmp_orientation)
        .unwrap_or(Orientation::NoTransforms)
}

/// PIL's `re.search(rb'tiff:Orientation(="|>)([0-9])', xmp)`, as an orientation.
fn xmp_orientation(xmp: &[u8]) -> Option<Orientation> {
    const KEY: &[u8] = b"tiff:Orientation";
    let digit = (0..xmp.len().saturating_sub(KEY.len())).find_map(|i| {
        let rest = xmp[i..].strip_prefix(KEY)?;
        let rest = rest
            .strip_prefix(b"=\"")
            .or_else(|| rest.strip_prefix(b">"))?;
        rest.first().filter(|d| d.is_ascii_digit()).copied()
    })?;
    Orientation::from_exif(digit - b'0')
}

/// A `BufRead` over the file's bytes that records whether libjpeg asked for more than there
/// is (libjpeg then pads the stream with an end-of-image marker and only warns).
struct FlaggingReader<'a> {
    data: &'a [u8],
    ran_dry: &'a Cell<bool>,
}

impl Read for FlaggingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.data.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.ran_dry.set(true);
        }
        Ok(n)
    }
}

impl BufRead for FlaggingReader<'_> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.data.is_empty() {
            self.ran_dry.set(true);
        }
        Ok(self.data)
    }

    fn consume(&mut self, amt: usize) {
        self.data = &self.data[amt.min(self.data.len())..];
    }
}

/// Why a JPEG decode stopped, inside the unwind boundary.
enum JpegFailure {
    Vision(PreprocessError),
    Io(std::io::Error),
}

fn decode_jpeg(
    bytes: &[u8],
    path: &Path,
    options: &DecodeOptions,
) -> PreprocessResult<DynamicImage> {
    let ran_dry = Cell::new(false);
    // AssertUnwindSafe: on unwind nothing captured is used again except `ran_dry`, a flag.
    let result = catch_unwind(AssertUnwindSafe(|| {
        decode_jpeg_inner(bytes, path, options, &ran_dry)
    }));
    match result {
        Ok(Ok(image)) if ran_dry.get() => {
            drop(image);
            Err(image_error(
                path,
                "truncated JPEG: the data ends before the image does",
            ))
        }
        Ok(Ok(image)) => Ok(image),
        Ok(Err(JpegFailure::Vision(e))) => Err(e),
        Ok(Err(JpegFailure::Io(e))) if ran_dry.get() => Err(image_error(
            path,
            &format!("truncated JPEG: the data ends before the image does ({e})"),
        )),
        Ok(Err(JpegFailure::Io(e))) => Err(image_error(path, &format!("corrupt JPEG: {e}"))),
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("libjpeg failed");
            Err(image_error(path, &format!("corrupt JPEG: {message}")))
        }
    }
}

fn decode_jpeg_inner(
    bytes: &[u8],
    path: &Path,
    options: &DecodeOptions,
    ran_dry: &Cell<bool>,
) -> Result<DynamicImage, JpegFailure> {
    let reader = FlaggingReader {
        data: bytes,
        ran_dry,
    };
    // APP1 holds EXIF and XMP; other markers are skipped unread.
    let markers: &[Marker] = if options.exif_transpose {
        &[Marker::APP(1)]
    } else {
        &[]
    };
    // Reads the header only.
    let mut header = Decompress::builder()
        .with_markers(markers)
        .from_reader(reader)
        .map_err(JpegFailure::Io)?;
    let (w, h) = header.size();
    let (width, height) = match (u32::try_from(w), u32::try_from(h)) {
        (Ok(w), Ok(h)) => (w, h),
        _ => {
            return Err(JpegFailure::Vision(image_error(
                path,
                "JPEG dimensions overflow",
            )))
        }
    };
    check_dimensions(path, width, height, options.max_pixels).map_err(JpegFailure::Vision)?;
    let orientation = if options.exif_transpose {
        jpeg_orientation(header.markers())
    } else {
        Orientation::NoTransforms
    };
    let scale = options.draft.map_or(1, |r| draft_scale(width, height, r));
    if scale > 1 {
        // libjpeg scales by scale_num / 8; 8 / s gives exactly PIL's 1 / s.
        header.scale((8 / scale) as u8);
    }
    // libjpeg's output size, ⌈side / scale⌉ (the full size when not scaled).
    let out_size = |w: usize, h: usize| (u32::try_from(w).ok(), u32::try_from(h).ok());
    let too_big = || JpegFailure::Vision(image_error(path, "decoded JPEG has an unexpected size"));
    let mut image = match header.color_space() {
        ColorSpace::JCS_GRAYSCALE => {
            let mut started = header.grayscale().map_err(JpegFailure::Io)?;
            let (Some(width), Some(height)) = out_size(started.width(), started.height()) else {
                return Err(too_big());
            };
            let pixels: Vec<u8> = started.read_scanlines().map_err(JpegFailure::Io)?;
            started.finish().map_err(JpegFailure::Io)?;
            GrayImage::from_raw(width, height, pixels)
                .map(DynamicImage::ImageLuma8)
                .ok_or_else(too_big)
        }
        ColorSpace::JCS_CMYK | ColorSpace::JCS_YCCK => {
            let mut started = header
                .to_colorspace(ColorSpace::JCS_CMYK)
                .map_err(JpegFailure::Io)?;
            let (Some(width), Some(height)) = out_size(started.width(), started.height()) else {
                return Err(too_big());
            };
            let cmyk: Vec<u8> = started.read_scanlines().map_err(JpegFailure::Io)?;
            started.finish().map_err(JpegFailure::Io)?;
            RgbImage::from_raw(width, height, jpeg_cmyk_to_rgb(&cmyk))
                .map(DynamicImage::ImageRgb8)
                .ok_or_else(too_big)
        }
        _ => {
            let mut started = header.rgb().map_err(JpegFailure::Io)?;
            let (Some(width), Some(height)) = out_size(started.width(), started.height()) else {
                return Err(too_big());
            };
            let pixels: Vec<u8> = started.read_scanlines().map_err(JpegFailure::Io)?;
            started.finish().map_err(JpegFailure::Io)?;
            RgbImage::from_raw(width, height, pixels)
                .map(DynamicImage::ImageRgb8)
                .ok_or_else(too_big)
        }
    }?;
    image.apply_orientation(orientation);
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageEncoder, Rgba, RgbaImage};

    fn png_bytes(image: &DynamicImage) -> Vec<u8> {
        let mut out = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut c = (data.len() as u32).to_be_bytes().to_vec();
        c.extend_from_slice(kind);
        c.extend_from_slice(data);
        c.extend_from_slice(&crc32(&c[4..]).to_be_bytes());
        c
    }

    /// The CRC-32 of PNG chunks (bitwise, reflected polynomial 0xEDB88320).
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    /// A PNG whose header claims `w × h` 8-bit RGBA pixels, with a token data chunk.
    fn png_header_only(w: u32, h: u32) -> Vec<u8> {
        let mut ihdr = w.to_be_bytes().to_vec();
        ihdr.extend_from_slice(&h.to_be_bytes());
        ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend(chunk(b"IHDR", &ihdr));
        png.extend(chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0x00]));
        png.extend(chunk(b"IEND", &[]));
        png
    }

    /// A baseline 64×48 JPEG of a colour pattern.
    fn jpeg_bytes() -> Vec<u8> {
        let mut c = mozjpeg::Compress::new(ColorSpace::JCS_RGB);
        c.set_fastest_defaults();
        c.set_size(64, 48);
        let mut c = c.start_compress(Vec::new()).unwrap();
        let pixels: Vec<u8> = (0..64 * 48 * 3).map(|i| (i * 7 % 251) as u8).collect();
        c.write_scanlines(&pixels).unwrap();
        c.finish().unwrap()
    }

    /// Offset of the baseline frame header (SOF0) marker.
    fn sof0(jpeg: &[u8]) -> usize {
        jpeg.windows(2)
            .position(|w| w == [0xFF, 0xC0])
            .expect("a baseline JPEG")
    }

    #[test]
    fn huge_png_header_is_refused_before_decoding() {
        // 1 000 000² RGBA would be 4 TB: refused from the header alone.
        let err = decode(
            &png_header_only(1_000_000, 1_000_000),
            Path::new("bomb.png"),
            DEFAULT_MAX_PIXELS,
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                PreprocessError::ImageTooLarge {
                    width: 1_000_000,
                    height: 1_000_000,
                    limit: DEFAULT_MAX_PIXELS,
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            err.to_string()
                .starts_with("bomb.png: 1000000×1000000 image"),
            "{err}"
        );
        // The limit is the caller's: a small image over a tiny limit is refused too.
        let small = png_bytes(&DynamicImage::ImageRgba8(RgbaImage::from_pixel(
            4,
            4,
            Rgba([1, 2, 3, 4]),
        )));
        assert!(matches!(
            decode(&small, Path::new("s.png"), 15),
            Err(PreprocessError::ImageTooLarge { .. })
        ));
        assert!(decode(&small, Path::new("s.png"), 16).is_ok());
    }

    #[test]
    fn huge_jpeg_header_is_refused_before_decoding() {
        let mut jpeg = jpeg_bytes();
        // Patch the SOF0 frame header's height and width to 65 000.
        let sof = sof0(&jpeg);
        jpeg[sof + 5..sof + 9].copy_from_slice(&[0xFD, 0xE8, 0xFD, 0xE8]);
        let err = decode(&jpeg, Path::new("bomb.jpg"), DEFAULT_MAX_PIXELS).unwrap_err();
        assert!(
            matches!(
                err,
                PreprocessError::ImageTooLarge {
                    width: 65_000,
                    height: 65_000,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn jpeg_decodes_and_corrupt_or_truncated_jpeg_is_an_error() {
        let jpeg = jpeg_bytes();
        let im = decode(&jpeg, Path::new("ok.jpg"), DEFAULT_MAX_PIXELS).unwrap();
        assert_eq!((im.width(), im.height()), (64, 48));
        // Truncated in the entropy-coded data.
        let err = decode(
            &jpeg[..jpeg.len() / 2],
            Path::new("cut.jpg"),
            DEFAULT_MAX_PIXELS,
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("cut.jpg: truncated JPEG"),
            "{err}"
        );
        // Only the end-of-image marker missing: PIL refuses that too ("image file is
        // truncated").
        let err = decode(
            &jpeg[..jpeg.len() - 2],
            Path::new("eoi.jpg"),
            DEFAULT_MAX_PIXELS,
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("eoi.jpg: truncated JPEG"),
            "{err}"
        );
        // Only the start-of-image marker.
        let err = decode(&jpeg[..4], Path::new("stub.jpg"), DEFAULT_MAX_PIXELS).unwrap_err();
        assert!(err.to_string().starts_with("stub.jpg: "), "{err}");
        // A broken header: libjpeg's error_exit unwinds, caught here.
        let mut bad = jpeg.clone();
        let sof = sof0(&bad);
        bad[sof + 9] = 0; // zero components
        let err = decode(&bad, Path::new("bad.jpg"), DEFAULT_MAX_PIXELS).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("bad.jpg: corrupt JPEG: libjpeg fatal error"),
            "{err}"
        );
        // Garbage after a valid start.
        let mut garbage = jpeg[..2].to_vec();
        garbage.extend(std::iter::repeat_n(0xAB, 300));
        assert!(decode(&garbage, Path::new("g.jpg"), DEFAULT_MAX_PIXELS).is_err());
    }

    #[test]
    fn greyscale_and_cmyk_jpegs() {
        let mut c = mozjpeg::Compress::new(ColorSpace::JCS_GRAYSCALE);
        c.set_fastest_defaults();
        c.set_size(8, 8);
        let mut c = c.start_compress(Vec::new()).unwrap();
        c.write_scanlines(&[100u8; 64]).unwrap();
        let grey = c.finish().unwrap();
        let im = decode(&grey, Path::new("g.jpg"), DEFAULT_MAX_PIXELS).unwrap();
        assert!(matches!(&im, DynamicImage::ImageLuma8(g) if g.iter().all(|&v| v == 100)));

        let mut c = mozjpeg::Compress::new(ColorSpace::JCS_CMYK);
        c.set_fastest_defaults();
        c.set_size(8, 8);
        let mut c = c.start_compress(Vec::new()).unwrap();
        // Adobe-inverted samples of "no ink": all 255.
        c.write_scanlines(&[255u8; 8 * 8 * 4]).unwrap();
        let cmyk = c.finish().unwrap();
        let im = decode(&cmyk, Path::new("c.jpg"), DEFAULT_MAX_PIXELS).unwrap();
        assert!(
            matches!(&im, DynamicImage::ImageRgb8(rgb) if rgb.iter().all(|&v| v >= 254)),
            "{im:?}"
        );
    }

    #[test]
    fn bad_files_name_the_file_and_the_problem() {
        let err = |bytes: &[u8]| {
            decode(bytes, Path::new("f.bin"), DEFAULT_MAX_PIXELS)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(err(b""), "f.bin: empty file");
        assert!(err(b"hello, world: not an image").contains("not an image this crate can read"));
        // A format `image` recognises but this build does not read.
        assert!(err(b"qoif\0\0\0\x01\0\0\0\x01\x04\0").contains("Qoi images are not supported"));
        // A truncated PNG.
        let png = png_bytes(&DynamicImage::ImageRgba8(RgbaImage::from_fn(
            40,
            30,
            |x, y| Rgba([x as u8, y as u8, 7, 200]),
        )));
        assert!(err(&png[..png.len() / 2]).starts_with("f.bin: "));
        // A zero-size header.
        let zero = png_header_only(0, 5);
        assert!(decode(&zero, Path::new("z.png"), DEFAULT_MAX_PIXELS).is_err());
        // A directory and a missing file.
        let dir = std::env::temp_dir();
        let e = open(&dir, DEFAULT_MAX_PIXELS).unwrap_err().to_string();
        assert!(e.ends_with("is a directory, not an image file"), "{e}");
        let missing = dir.join("clip-vision-no-such-image.png");
        assert!(matches!(
            open(&missing, DEFAULT_MAX_PIXELS),
            Err(PreprocessError::Io { .. })
        ));
    }

    #[cfg(unix)]
    #[test]
    fn fifos_and_devices_are_refused_without_reading() {
        let tmp = std::env::temp_dir().join(format!("clip-vision-fifo-{}", std::process::id()));
        let made = std::process::Command::new("mkfifo")
            .arg(&tmp)
            .status()
            .is_ok_and(|s| s.success());
        assert!(made, "mkfifo is part of coreutils");
        // No writer exists: reading would block forever; open must return at once.
        let e = open(&tmp, DEFAULT_MAX_PIXELS).unwrap_err().to_string();
        std::fs::remove_file(&tmp).ok();
        assert!(e.contains("not a regular file"), "{e}");
        let e = open(Path::new("/dev/zero"), DEFAULT_MAX_PIXELS)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a regular file"), "{e}");
    }

    /// A zlib stream of `data` in stored (uncompressed) deflate blocks.
    fn zlib_stored(data: &[u8]) -> Vec<u8> {
        let mut z = vec![0x78, 0x01];
        let blocks: Vec<&[u8]> = data.chunks(65_535).collect();
        for (i, block) in blocks.iter().enumerate() {
            z.push(u8::from(i + 1 == blocks.len()));
            let len = block.len() as u16;
            z.extend_from_slice(&len.to_le_bytes());
            z.extend_from_slice(&(!len).to_le_bytes());
            z.extend_from_slice(block);
        }
        let (mut a, mut b) = (1u32, 0u32);
        for &byte in data {
            a = (a + u32::from(byte)) % 65_521;
            b = (b + a) % 65_521;
        }
        z.extend_from_slice(&((b << 16) | a).to_be_bytes());
        z
    }

    #[test]
    fn palette_and_grey_pngs_with_transparency_expand_to_alpha() {
        use crate::convert::to_rgb8;
        // 2×1 palette image: index 0 transparent through tRNS, index 1 opaque.
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend(chunk(b"IHDR", &[0, 0, 0, 2, 0, 0, 0, 1, 8, 3, 0, 0, 0]));
        png.extend(chunk(b"PLTE", &[10, 20, 30, 200, 100, 50]));
        png.extend(chunk(b"tRNS", &[0]));
        png.extend(chunk(b"IDAT", &zlib_stored(&[0, 0, 1])));
        png.extend(chunk(b"IEND", &[]));
        let im = decode(&png, Path::new("p.png"), DEFAULT_MAX_PIXELS).unwrap();
        assert!(
            matches!(&im, DynamicImage::ImageRgba8(p) if p.as_raw() == &[10, 20, 30, 0, 200, 100, 50, 255]),
            "{im:?}"
        );
        let rgb = to_rgb8(&im, true, Path::new("p.png")).unwrap();
        assert_eq!(rgb.as_raw(), &[255, 255, 255, 200, 100, 50]);
        // 2×1 greyscale whose level 7 is transparent.
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend(chunk(b"IHDR", &[0, 0, 0, 2, 0, 0, 0, 1, 8, 0, 0, 0, 0]));
        png.extend(chunk(b"tRNS", &[0, 7]));
        png.extend(chunk(b"IDAT", &zlib_stored(&[0, 7, 9])));
        png.extend(chunk(b"IEND", &[]));
        let im = decode(&png, Path::new("g.png"), DEFAULT_MAX_PIXELS).unwrap();
        let rgb = to_rgb8(&im, true, Path::new("g.png")).unwrap();
        assert_eq!(rgb.as_raw(), &[255, 255, 255, 9, 9, 9]);
    }

    #[test]
    fn lossless_formats_round_trip() {
        let rgb = RgbImage::from_fn(7, 5, |x, y| image::Rgb([x as u8 * 30, y as u8 * 50, 99]));
        let image = DynamicImage::ImageRgb8(rgb.clone());
        for format in [
            ImageFormat::Png,
            ImageFormat::Bmp,
            ImageFormat::Tiff,
            ImageFormat::WebP,
        ] {
            let mut bytes = Vec::new();
            image
                .write_to(&mut Cursor::new(&mut bytes), format)
                .unwrap();
            let back = decode(&bytes, Path::new("x"), DEFAULT_MAX_PIXELS).unwrap();
            assert_eq!(back.to_rgb8(), rgb, "{format:?}");
        }
    }

    #[test]
    fn gif_gives_its_first_frame() {
        use image::codecs::gif::GifEncoder;
        use image::{Delay, Frame};
        let frame = |v: u8| {
            Frame::from_parts(
                RgbaImage::from_pixel(4, 3, Rgba([v, v, v, 255])),
                0,
                0,
                Delay::from_numer_denom_ms(100, 1),
            )
        };
        let mut bytes = Vec::new();
        {
            let mut enc = GifEncoder::new(&mut bytes);
            enc.encode_frames([frame(40), frame(200)]).unwrap();
        }
        let im = decode(&bytes, Path::new("a.gif"), DEFAULT_MAX_PIXELS).unwrap();
        assert_eq!((im.width(), im.height()), (4, 3));
        assert!(im.to_rgba8().pixels().all(|p| p.0 == [40, 40, 40, 255]));
    }

    #[test]
    fn png_pixel_types_decode() {
        // 16-bit greyscale stays 16-bit here; `convert` takes the high byte.
        let mut out = Vec::new();
        let l16: Vec<u8> = [0x1234u16, 0xffff]
            .iter()
            .flat_map(|v| v.to_ne_bytes())
            .collect();
        image::codecs::png::PngEncoder::new(&mut out)
            .write_image(&l16, 2, 1, image::ExtendedColorType::L16)
            .unwrap();
        let im = decode(&out, Path::new("l16.png"), DEFAULT_MAX_PIXELS).unwrap();
        assert!(
            matches!(&im, DynamicImage::ImageLuma16(g) if g.as_raw() == &[0x1234, 0xffff]),
            "{im:?}"
        );
    }
}
