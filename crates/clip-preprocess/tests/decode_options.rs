//! The two opt-in decoding options against PIL 13.0.0, on fixtures made by
//! `scripts/make_decode_fixtures.py`:
//!
//! - fast decoding (`Image.draft`): the scale PIL picks, the drafted image's 224-pixel
//!   levels equal to `CLIPImageProcessorPil`'s of PIL's drafted image (FNV-1a of the bytes in
//!   `fixtures/images/fast_decode.json`), the distance to the exact path no more than
//!   measured there, and nothing changed for other formats or with the option off;
//! - EXIF orientation (`ImageOps.exif_transpose`): every orientation 1–8, the XMP fallback
//!   and a PNG eXIf chunk, pixel for pixel.

use clip_preprocess::decode::{decode_with, draft_scale, open_with, DecodeOptions};
use clip_preprocess::{ImageProcessor, DEFAULT_MAX_PIXELS};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn images_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/images")
}

fn fnv1a64(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("fnv1a64:{h:016x}")
}

/// Mean and max absolute level difference.
fn distance(a: &[u8], b: &[u8]) -> (f64, u8) {
    assert_eq!(a.len(), b.len());
    let mut sum = 0u64;
    let mut max = 0u8;
    for (x, y) in a.iter().zip(b) {
        let d = x.abs_diff(*y);
        sum += u64::from(d);
        max = max.max(d);
    }
    (sum as f64 / a.len() as f64, max)
}

const FAST: DecodeOptions = DecodeOptions {
    max_pixels: DEFAULT_MAX_PIXELS,
    draft: Some((224, 224)),
    exif_transpose: false,
};

#[test]
fn draft_scale_is_pils() {
    // `Image.new("RGB", size).save(b, "JPEG"); im = Image.open(b); im.draft("RGB", req)`
    // under Pillow 13.0.0: `im.decoderconfig[0]` and `im.size`.
    let pil = [
        ((4000, 3000), (224, 224), 8, (500, 375)),
        ((3000, 4000), (224, 224), 8, (375, 500)),
        ((640, 480), (224, 224), 2, (320, 240)),
        ((447, 1000), (224, 224), 1, (447, 1000)),
        ((448, 448), (224, 224), 2, (224, 224)),
        ((1792, 1791), (224, 224), 4, (448, 448)),
        ((1792, 1792), (224, 224), 8, (224, 224)),
        ((223, 5000), (224, 224), 1, (223, 5000)),
        ((3584, 3584), (224, 224), 8, (448, 448)),
        ((1000, 224), (224, 224), 1, (1000, 224)),
        ((897, 896), (224, 224), 4, (225, 224)),
        ((12000, 900), (224, 224), 4, (3000, 225)),
        ((4000, 3000), (336, 200), 8, (500, 375)),
    ];
    for ((w, h), req, scale, (dw, dh)) in pil {
        let s = draft_scale(w, h, req);
        assert_eq!(s, scale, "{w}×{h} for {req:?}");
        assert_eq!((w.div_ceil(s), h.div_ceil(s)), (dw, dh), "{w}×{h}");
    }
    assert_eq!(draft_scale(4000, 3000, (0, 224)), 1);
}

#[test]
fn fast_decode_is_pils_draft_and_close_to_the_exact_path() {
    let meta: Value = serde_json::from_str(
        &std::fs::read_to_string(images_dir().join("fast_decode.json")).unwrap(),
    )
    .unwrap();
    let exact = ImageProcessor::default();
    let fast = ImageProcessor::default().with_fast_decode(true);
    let cases = meta["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 7);
    let mut scaled = 0;
    for case in cases {
        let file = images_dir().join(case["file"].as_str().unwrap());
        let name = file.display().to_string();
        let drafted = open_with(&file, &FAST).unwrap();
        let want = &case["draft_size"];
        assert_eq!(
            (u64::from(drafted.width()), u64::from(drafted.height())),
            (want[0].as_u64().unwrap(), want[1].as_u64().unwrap()),
            "{name}"
        );
        scaled += usize::from(case["draft_scale"].as_u64().unwrap() > 1);
        let fast_levels = fast.resize_and_crop(&fast.open(&file).unwrap()).unwrap();
        // Bit for bit what transformers makes of PIL's drafted image.
        assert_eq!(
            fnv1a64(fast_levels.as_raw()),
            case["levels_fnv1a64"].as_str().unwrap(),
            "{name}"
        );
        let exact_levels = exact.resize_and_crop(&exact.open(&file).unwrap()).unwrap();
        let (mean, max) = distance(fast_levels.as_raw(), exact_levels.as_raw());
        let want_mean = case["vs_exact_mean_abs"].as_f64().unwrap();
        assert!((mean - want_mean).abs() < 1e-3, "{name}: mean {mean}");
        assert_eq!(
            u64::from(max),
            case["vs_exact_max_abs"].as_u64().unwrap(),
            "{name}"
        );
        // The measured bound of docs/performance.md.
        assert!(mean < 1.3 && max <= 30, "{name}: mean {mean}, max {max}");
        if case["draft_scale"].as_u64() == Some(1) {
            assert_eq!(fast_levels, exact_levels, "{name}");
        }
    }
    assert_eq!(
        scaled, 3,
        "astronaut, camera_grey and retina_large are downscaled"
    );
}

#[test]
fn fast_decode_is_off_by_default_and_leaves_other_formats_alone() {
    let p = ImageProcessor::default();
    assert!(!p.fast_decode() && !p.exif_transpose());
    assert_eq!(p.decode_options(), DecodeOptions::default());
    let fast = ImageProcessor::default().with_fast_decode(true);
    assert_eq!(fast.decode_options(), FAST);
    for file in [
        "rocket.webp",
        "coffee.gif",
        "hubble_alpha.png",
        "astronaut_rgb16.png",
    ] {
        let path = images_dir().join(file);
        assert_eq!(
            fast.preprocess_path(&path).unwrap(),
            p.preprocess_path(&path).unwrap(),
            "{file}"
        );
    }
    // Without do_resize there is no target, hence no draft.
    let no_resize = ImageProcessor::new(clip_preprocess::PreprocessorConfig {
        do_resize: false,
        ..Default::default()
    })
    .unwrap()
    .with_fast_decode(true);
    assert_eq!(no_resize.decode_options().draft, None);
}

/// A `w × h` baseline JPEG of smooth gradients with some texture (a stand-in for a photo).
fn synthetic_jpeg(w: usize, h: usize) -> Vec<u8> {
    let mut c = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_RGB);
    c.set_size(w, h);
    c.set_quality(90.0);
    let mut c = c.start_compress(Vec::new()).unwrap();
    let mut row = vec![0u8; w * 3];
    for y in 0..h {
        for x in 0..w {
            let t = ((x * 7 + y * 13) % 64) as u8;
            row[x * 3] = ((x * 255) / w) as u8 ^ (t & 8);
            row[x * 3 + 1] = ((y * 255) / h) as u8;
            row[x * 3 + 2] = (((x + y) * 255) / (w + h)) as u8 ^ (t & 4);
        }
        c.write_scanlines(&row).unwrap();
    }
    c.finish().unwrap()
}

#[test]
fn synthetic_photo_is_decoded_at_an_eighth_and_the_pixel_limit_uses_the_full_size() {
    let jpeg = synthetic_jpeg(2000, 1800);
    let path = Path::new("synthetic.jpg");
    let drafted = decode_with(&jpeg, path, &FAST).unwrap();
    // 1800 // 224 = 8.
    assert_eq!((drafted.width(), drafted.height()), (250, 225));
    // 2000 × 1800 = 3.6 MP: refused under a 1-MP limit although the drafted image is small.
    let err = decode_with(
        &jpeg,
        path,
        &DecodeOptions {
            max_pixels: 1_000_000,
            ..FAST
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("synthetic.jpg: 2000×1800 image"), "{err}");
    let fast = ImageProcessor::default().with_fast_decode(true);
    let exact = ImageProcessor::default();
    let a = fast.preprocess_bytes(&jpeg).unwrap();
    let b = exact.preprocess_bytes(&jpeg).unwrap();
    assert_eq!(a.len(), b.len());
    let max = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    // Normalised units: 1 level ≈ 0.015; smooth content stays within a few levels.
    assert!(max < 0.2, "max |fast − exact| = {max}");
}

#[test]
fn exif_orientations_match_pils_exif_transpose() {
    let dir = images_dir().join("../exif");
    let transpose = DecodeOptions {
        exif_transpose: true,
        ..DecodeOptions::default()
    };
    let base = open_with(&dir.join("orientation_1.jpg"), &DecodeOptions::default())
        .unwrap()
        .to_rgb8();
    assert_eq!(base.dimensions(), (24, 16));
    let mut inputs: Vec<String> = (1..=8).map(|n| format!("orientation_{n}.jpg")).collect();
    inputs.push("xmp_orientation_6.jpg".into());
    inputs.push("orientation_6.png".into());
    let mut distinct = std::collections::HashSet::new();
    for name in &inputs {
        let file = dir.join(name);
        let want = open_with(
            &dir.join(format!("{name}.transposed.png")),
            &DecodeOptions::default(),
        )
        .unwrap()
        .to_rgb8();
        let got = open_with(&file, &transpose).unwrap().to_rgb8();
        assert_eq!(got.dimensions(), want.dimensions(), "{name}");
        assert!(
            got == want,
            "{name}: pixels differ from PIL's exif_transpose"
        );
        if name.starts_with("orientation_") && name.ends_with(".jpg") {
            distinct.insert(got.into_raw());
        }
        // Off (the default), the orientation is ignored: the stored pixels, as Image.open.
        if name.ends_with(".jpg") {
            let plain = open_with(&file, &DecodeOptions::default())
                .unwrap()
                .to_rgb8();
            assert!(plain == base, "{name}");
        }
        // Through the processor too.
        let p = ImageProcessor::default().with_exif_transpose(true);
        assert_eq!(p.open(&file).unwrap().to_rgb8(), want, "{name}");
    }
    assert_eq!(
        distinct.len(),
        8,
        "the eight orientations give eight images"
    );
}

/// `jpeg` with an APP1 segment holding `payload` inserted after SOI.
fn with_app1(jpeg: &[u8], payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(payload.len() + 2).unwrap();
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// A big-endian TIFF header with IFD0 at `ifd` holding the given 12-byte entries.
fn tiff(ifd: u32, count: u16, entries: &[[u8; 12]]) -> Vec<u8> {
    let mut t = b"Exif\0\0MM\0\x2a".to_vec();
    t.extend_from_slice(&ifd.to_be_bytes());
    t.extend_from_slice(&count.to_be_bytes());
    for e in entries {
        t.extend_from_slice(e);
    }
    t
}

fn entry(tag: u16, kind: u16, count: u32, value: u16) -> [u8; 12] {
    let mut e = [0u8; 12];
    e[..2].copy_from_slice(&tag.to_be_bytes());
    e[2..4].copy_from_slice(&kind.to_be_bytes());
    e[4..8].copy_from_slice(&count.to_be_bytes());
    e[8..10].copy_from_slice(&value.to_be_bytes());
    e
}

#[test]
fn hostile_exif_gives_no_orientation_and_never_panics() {
    let dir = images_dir().join("../exif");
    // Stripped of its own EXIF: decode the plain file's bytes and re-insert segments.
    let plain = std::fs::read(dir.join("xmp_orientation_6.jpg")).unwrap();
    let plain = {
        // Drop the XMP segment: SOI, then APP0 (JFIF), then the APP1 XMP.
        let mut i = 2;
        let mut out = plain[..2].to_vec();
        while plain[i] == 0xFF && (0xE0..=0xEF).contains(&plain[i + 1]) {
            let len = usize::from(u16::from_be_bytes([plain[i + 2], plain[i + 3]]));
            if plain[i + 1] != 0xE1 {
                out.extend_from_slice(&plain[i..i + 2 + len]);
            }
            i += 2 + len;
        }
        out.extend_from_slice(&plain[i..]);
        out
    };
    let transpose = DecodeOptions {
        exif_transpose: true,
        ..DecodeOptions::default()
    };
    let base = decode_with(&plain, Path::new("p.jpg"), &transpose)
        .unwrap()
        .to_rgb8();
    assert_eq!(base.dimensions(), (24, 16));
    let good = tiff(8, 1, &[entry(0x112, 3, 1, 6)]);
    let rotated = decode_with(&with_app1(&plain, &good), Path::new("g.jpg"), &transpose)
        .unwrap()
        .to_rgb8();
    assert_eq!(
        rotated.dimensions(),
        (16, 24),
        "a well-formed tag is applied"
    );
    let hostile: Vec<(&str, Vec<u8>)> = vec![
        ("empty payload", b"Exif\0\0".to_vec()),
        ("truncated header", b"Exif\0\0MM\0".to_vec()),
        ("bad byte order", b"Exif\0\0XX\0\x2a\0\0\0\x08".to_vec()),
        (
            "IFD past the end",
            tiff(0xFFFF_FFF0, 1, &[entry(0x112, 3, 1, 6)]),
        ),
        ("IFD offset 0", tiff(0, 1, &[entry(0x112, 3, 1, 6)])),
        (
            "entry count past the end",
            tiff(8, 65_535, &[entry(0x100, 3, 1, 6)]),
        ),
        ("entry cut short", {
            let mut t = tiff(8, 1, &[entry(0x112, 3, 1, 6)]);
            t.truncate(t.len() - 5);
            t
        }),
        ("orientation 0", tiff(8, 1, &[entry(0x112, 3, 1, 0)])),
        ("orientation 9", tiff(8, 1, &[entry(0x112, 3, 1, 9)])),
        (
            "orientation 65535",
            tiff(8, 1, &[entry(0x112, 3, 1, 0xFFFF)]),
        ),
        ("count 2", tiff(8, 1, &[entry(0x112, 3, 2, 6)])),
        ("ASCII type", tiff(8, 1, &[entry(0x112, 2, 1, 6)])),
        (
            "XMP without a digit",
            b"http://ns.adobe.com/xap/1.0/\0tiff:Orientation=\"".to_vec(),
        ),
        (
            "XMP of 0",
            b"http://ns.adobe.com/xap/1.0/\0tiff:Orientation>0<".to_vec(),
        ),
        (
            "XMP cut at the key",
            b"http://ns.adobe.com/xap/1.0/\0tiff:Orient".to_vec(),
        ),
    ];
    for (what, payload) in hostile {
        let jpeg = with_app1(&plain, &payload);
        let got = decode_with(&jpeg, Path::new("h.jpg"), &transpose)
            .unwrap_or_else(|e| panic!("{what}: {e}"))
            .to_rgb8();
        assert!(got == base, "{what}: the image was transformed");
    }
    // XMP in its element form is honoured, as PIL's regex allows `>`.
    let xmp = b"http://ns.adobe.com/xap/1.0/\0<tiff:Orientation>3</tiff:Orientation>";
    let flipped = decode_with(&with_app1(&plain, xmp), Path::new("x.jpg"), &transpose)
        .unwrap()
        .to_rgb8();
    assert_eq!(flipped.get_pixel(0, 0), base.get_pixel(23, 15));
    // A valid EXIF orientation wins over XMP.
    let both = with_app1(&with_app1(&plain, xmp), &good);
    let got = decode_with(&both, Path::new("b.jpg"), &transpose)
        .unwrap()
        .to_rgb8();
    assert_eq!(got, rotated);
}
