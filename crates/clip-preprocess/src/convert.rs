//! transformers' `convert_to_rgb` on PIL images: any pixel type to 8-bit RGB.
//!
//! - RGB stays as it is.
//! - Images with alpha (RGBA, LA, and palettes or greyscale with a `tRNS` transparency,
//!   which the decoders expand to an alpha channel) are alpha-composited onto opaque white
//!   with PIL's integer `alpha_composite` formula, then the alpha is dropped.
//! - Greyscale is replicated into the three channels (PIL's `convert("RGB")`).
//! - **16-bit samples keep their high byte** (`v >> 8`). That is what PIL does when it opens a
//!   16-bit RGB, RGBA or LA PNG or a 16-bit RGB TIFF (modes `RGB`/`RGBA`/`LA`, raw modes
//!   `…;16B`), so those match transformers exactly. PIL opens 16-bit *greyscale* as mode
//!   `I;16` and `convert("RGB")` then clips every value above 255 to 255, which turns almost
//!   any such image white; we do not reproduce that and take the high byte there too.
//! - 32-bit float images (TIFF) have no PIL counterpart that survives `convert("RGB")`; they
//!   are mapped `[0, 1] → [0, 255]` with rounding and clamping.

use crate::error::{PreprocessError, PreprocessResult};
use image::{DynamicImage, RgbImage};
use std::borrow::Cow;
use std::path::Path;

/// PIL's `ImagingAlphaComposite` of a pixel `(v, a)` over opaque white, one channel.
///
/// With an opaque destination the general formula's `outa255` is `255²`, so its coefficients
/// reduce exactly to `coef1 = a · 2⁷`, `coef2 = (255 − a) · 2⁷`; the result is
/// `SHIFTFORDIV255(v·coef1 + 255·coef2 + 2⁷·128) >> 7`. PIL copies the destination when
/// `a = 0`, which the formula also gives (255).
#[inline]
pub(crate) fn over_white(v: u8, a: u8) -> u8 {
    if a == 0 {
        return 255;
    }
    let (v, a) = (u32::from(v), u32::from(a));
    let coef1 = a << 7;
    let coef2 = (255 - a) << 7;
    let tmp = v * coef1 + 255 * coef2 + (0x80 << 7);
    ((((tmp >> 8) + tmp) >> 8) >> 7) as u8
}

/// The 8-bit RGB image transformers' PIL backend works on.
///
/// With `do_convert_rgb` false transformers skips the conversion, and its later steps fail
/// on anything but 3 channels; so do we, with an error saying so (16-bit RGB, which PIL opens
/// as 8-bit RGB, is accepted).
///
/// # Errors
/// [`PreprocessError::Image`] naming `path` when `do_convert_rgb` is false and the image is not
/// RGB.
pub(crate) fn to_rgb8<'a>(
    image: &'a DynamicImage,
    do_convert_rgb: bool,
    path: &Path,
) -> PreprocessResult<Cow<'a, RgbImage>> {
    let (w, h) = (image.width(), image.height());
    let rgb = |f: &dyn Fn(u32, u32) -> [u8; 3]| -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| image::Rgb(f(x, y)))
    };
    let converted = match image {
        DynamicImage::ImageRgb8(im) => return Ok(Cow::Borrowed(im)),
        DynamicImage::ImageRgb16(im) => {
            let mut out = RgbImage::new(w, h);
            for (o, i) in out.iter_mut().zip(im.iter()) {
                *o = (i >> 8) as u8;
            }
            out
        }
        _ if !do_convert_rgb => {
            return Err(PreprocessError::Image {
                path: path.into(),
                reason: format!(
                    "do_convert_rgb is false but the image is {:?}, not RGB (transformers fails on it too)",
                    image.color()
                ),
            })
        }
        DynamicImage::ImageLuma8(im) => {
            let mut out = RgbImage::new(w, h);
            for (o, &l) in out.chunks_exact_mut(3).zip(im.iter()) {
                o.fill(l);
            }
            out
        }
        DynamicImage::ImageLumaA8(im) => {
            let mut out = RgbImage::new(w, h);
            for (o, la) in out.chunks_exact_mut(3).zip(im.chunks_exact(2)) {
                o.fill(over_white(la[0], la[1]));
            }
            out
        }
        DynamicImage::ImageRgba8(im) => {
            let mut out = RgbImage::new(w, h);
            for (o, p) in out.chunks_exact_mut(3).zip(im.chunks_exact(4)) {
                for c in 0..3 {
                    o[c] = over_white(p[c], p[3]);
                }
            }
            out
        }
        DynamicImage::ImageLuma16(im) => rgb(&|x, y| [(im.get_pixel(x, y).0[0] >> 8) as u8; 3]),
        DynamicImage::ImageLumaA16(im) => rgb(&|x, y| {
            let [l, a] = im.get_pixel(x, y).0;
            [over_white((l >> 8) as u8, (a >> 8) as u8); 3]
        }),
        DynamicImage::ImageRgba16(im) => rgb(&|x, y| {
            let p = im.get_pixel(x, y).0;
            let a = (p[3] >> 8) as u8;
            [0, 1, 2].map(|c| over_white((p[c] >> 8) as u8, a))
        }),
        // Float images and any pixel type `image` adds later: its own conversion to 8 bits
        // (rounding, clamped), then the same composite.
        other => {
            let rgba = other.to_rgba8();
            let mut out = RgbImage::new(w, h);
            for (o, p) in out.chunks_exact_mut(3).zip(rgba.chunks_exact(4)) {
                for c in 0..3 {
                    o[c] = over_white(p[c], p[3]);
                }
            }
            out
        }
    };
    Ok(Cow::Owned(converted))
}

/// PIL's `cmyk2rgb` on a JPEG's CMYK samples, after PIL's `CMYK;I` unpacking (PIL assumes
/// Adobe's inverted CMYK for every CMYK JPEG and stores `255 − v`).
///
/// `r = clamp(nk − MULDIV255(c, nk))` with `nk = 255 − k`, `MULDIV255(a, b) = (t + (t >> 8))
/// >> 8` for `t = a·b + 128`.
///
/// # Shapes
/// - `cmyk`: `[pixels, 4]` as libjpeg decodes them
/// - returns: `[pixels, 3]`
pub(crate) fn jpeg_cmyk_to_rgb(cmyk: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(cmyk.len() / 4 * 3);
    for p in cmyk.chunks_exact(4) {
        // PIL's CMYK values are the inverted samples, so nk = 255 − (255 − k) = k.
        let nk = i32::from(p[3]);
        for &raw in &p[..3] {
            let c = 255 - i32::from(raw);
            let t = c * nk + 128;
            let muldiv = ((t >> 8) + t) >> 8;
            out.push((nk - muldiv).clamp(0, 255) as u8);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayAlphaImage, GrayImage, ImageBuffer, Luma, LumaA, Rgb, Rgba, RgbaImage};

    #[test]
    fn composite_matches_pils_general_formula() {
        // PIL's ImagingAlphaComposite with dst = (255, 255, 255, 255), for every (v, a).
        for a in 0..=255u32 {
            for v in 0..=255u32 {
                let want = if a == 0 {
                    255
                } else {
                    let blend = 255 * (255 - a);
                    let outa255 = a * 255 + blend;
                    let coef1 = a * 255 * 255 * 128 / outa255;
                    let coef2 = 255 * 128 - coef1;
                    let tmp = v * coef1 + 255 * coef2 + (0x80 << 7);
                    (((tmp >> 8) + tmp) >> 8) >> 7
                };
                assert_eq!(u32::from(over_white(v as u8, a as u8)), want, "v {v} a {a}");
            }
        }
        assert_eq!(over_white(17, 255), 17);
    }

    #[test]
    fn every_pixel_type_becomes_rgb8() {
        let p = Path::new("x.png");
        let rgb = RgbImage::from_pixel(2, 1, Rgb([1, 2, 3]));
        let rgb = DynamicImage::ImageRgb8(rgb);
        assert!(matches!(to_rgb8(&rgb, true, p).unwrap(), Cow::Borrowed(_)));
        let grey = DynamicImage::ImageLuma8(GrayImage::from_pixel(2, 1, Luma([9])));
        assert_eq!(to_rgb8(&grey, true, p).unwrap().as_raw(), &vec![9; 6]);
        let la = DynamicImage::ImageLumaA8(GrayAlphaImage::from_pixel(1, 1, LumaA([0, 0])));
        assert_eq!(to_rgb8(&la, true, p).unwrap().as_raw(), &vec![255; 3]);
        let rgba = DynamicImage::ImageRgba8(RgbaImage::from_pixel(1, 1, Rgba([10, 20, 30, 128])));
        let want: Vec<u8> = [10, 20, 30].iter().map(|&v| over_white(v, 128)).collect();
        assert_eq!(to_rgb8(&rgba, true, p).unwrap().as_raw(), &want);
        let rgb16: ImageBuffer<Rgb<u16>, Vec<u16>> =
            ImageBuffer::from_pixel(1, 1, Rgb([0x1234, 0xff00, 0x00ff]));
        assert_eq!(
            to_rgb8(&DynamicImage::ImageRgb16(rgb16), false, p)
                .unwrap()
                .as_raw(),
            &vec![0x12, 0xff, 0]
        );
        let l16: ImageBuffer<Luma<u16>, Vec<u16>> = ImageBuffer::from_pixel(1, 1, Luma([0x8081]));
        assert_eq!(
            to_rgb8(&DynamicImage::ImageLuma16(l16), true, p)
                .unwrap()
                .as_raw(),
            &vec![0x80; 3]
        );
        let rgba16: ImageBuffer<Rgba<u16>, Vec<u16>> =
            ImageBuffer::from_pixel(1, 1, Rgba([0xffff, 0, 0x7fff, 0x80ff]));
        let want = vec![
            over_white(255, 0x80),
            over_white(0, 0x80),
            over_white(0x7f, 0x80),
        ];
        assert_eq!(
            to_rgb8(&DynamicImage::ImageRgba16(rgba16), true, p)
                .unwrap()
                .as_raw(),
            &want
        );
        let f = DynamicImage::ImageRgb32F(ImageBuffer::from_pixel(1, 1, Rgb([0.0, 0.5, 2.0])));
        assert_eq!(to_rgb8(&f, true, p).unwrap().as_raw(), &vec![0, 128, 255]);
    }

    #[test]
    fn no_conversion_refuses_non_rgb() {
        let grey = DynamicImage::ImageLuma8(GrayImage::new(1, 1));
        let err = to_rgb8(&grey, false, Path::new("g.png"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("g.png: do_convert_rgb is false"), "{err}");
    }

    #[test]
    fn cmyk_follows_pil() {
        // White paper (no ink): libjpeg's Adobe-inverted samples are all 255.
        assert_eq!(jpeg_cmyk_to_rgb(&[255, 255, 255, 255]), vec![255, 255, 255]);
        // Full black ink: k sample 0.
        assert_eq!(jpeg_cmyk_to_rgb(&[255, 255, 255, 0]), vec![0, 0, 0]);
        // Full cyan: c sample 0 → red 0.
        assert_eq!(jpeg_cmyk_to_rgb(&[0, 255, 255, 255]), vec![0, 255, 255]);
    }
}
