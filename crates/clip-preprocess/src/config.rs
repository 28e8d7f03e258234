//! `PreprocessorConfig`: the settings of HF `CLIPImageProcessor`, read from
//! `preprocessor_config.json` the way transformers reads them.
//!
//! Keys are the JSON keys. A key that is absent (or `null`) takes `CLIPImageProcessor`'s class
//! default, unknown keys are ignored, and the legacy forms transformers still accepts are
//! understood: `"size": 224` (shortest edge, since CLIP's `default_to_square` is false),
//! `"crop_size": 224` (a square), `[height, width]` lists, a scalar `image_mean`.

use crate::error::{PreprocessError, PreprocessResult};
use crate::resize::Resample;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// OpenAI CLIP's per-channel mean (transformers' `OPENAI_CLIP_MEAN`), RGB order.
pub const OPENAI_CLIP_MEAN: [f64; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// OpenAI CLIP's per-channel standard deviation (transformers' `OPENAI_CLIP_STD`), RGB order.
pub const OPENAI_CLIP_STD: [f64; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];

/// Where a path points when a config comes from a string.
const FROM_STRING: &str = "<string>";
/// Where a path points when a config was built in code.
const FROM_CODE: &str = "<config>";

/// What `do_resize` resizes to (`size` in the JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResizeTarget {
    /// `{"shortest_edge": n}`: the short side becomes `n` and the long side
    /// `int(n · long / short)` (truncated, as transformers' `get_resize_output_image_size`
    /// computes it).
    ShortestEdge(usize),
    /// `{"height": h, "width": w}`: exactly `h × w`, aspect ratio not kept.
    Exact {
        /// Rows after resizing.
        height: usize,
        /// Columns after resizing.
        width: usize,
    },
}

impl ResizeTarget {
    /// The `(height, width)` an `in_h × in_w` image is resized to.
    ///
    /// For [`ResizeTarget::ShortestEdge`] this is transformers'
    /// `get_resize_output_image_size(default_to_square=False)`: the long side is
    /// `int(size * long / short)`, a true division in double precision then truncated
    /// (`size * long` is exact in `f64` for any size this crate accepts).
    ///
    /// ```
    /// use clip_preprocess::ResizeTarget;
    /// assert_eq!(ResizeTarget::ShortestEdge(224).output_size(480, 640), (224, 298)); // 298.67
    /// assert_eq!(ResizeTarget::ShortestEdge(224).output_size(640, 480), (298, 224));
    /// assert_eq!(ResizeTarget::Exact { height: 10, width: 20 }.output_size(480, 640), (10, 20));
    /// ```
    pub fn output_size(&self, in_h: usize, in_w: usize) -> (usize, usize) {
        match *self {
            Self::Exact { height, width } => (height, width),
            Self::ShortestEdge(size) => {
                let (short, long) = if in_w <= in_h {
                    (in_w, in_h)
                } else {
                    (in_h, in_w)
                };
                if short == 0 {
                    return (in_h, in_w);
                }
                let new_long = (size as f64 * long as f64 / short as f64) as usize;
                if in_w <= in_h {
                    (new_long, size)
                } else {
                    (size, new_long)
                }
            }
        }
    }
}

/// The size of the center crop (`crop_size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropSize {
    /// Rows of the crop.
    pub height: usize,
    /// Columns of the crop.
    pub width: usize,
}

/// The settings of `CLIPImageProcessor`, key for key.
///
/// ```
/// use clip_preprocess::{PreprocessorConfig, ResizeTarget};
/// // openai/clip-vit-large-patch14-336 ships the legacy integer forms:
/// let cfg = PreprocessorConfig::from_json_str(r#"{"crop_size": 336, "size": 336,
///     "do_center_crop": true, "resample": 3, "feature_extractor_type": "CLIPFeatureExtractor"}"#)?;
/// assert_eq!(cfg.size, ResizeTarget::ShortestEdge(336));
/// assert_eq!((cfg.crop_size.height, cfg.crop_size.width), (336, 336));
/// assert_eq!(cfg.output_size(480, 640), (336, 336));
/// # Ok::<(), clip_preprocess::PreprocessError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PreprocessorConfig {
    /// Resize before cropping.
    pub do_resize: bool,
    /// What to resize to.
    pub size: ResizeTarget,
    /// The resampling filter (PIL's `resample` code: 3 = bicubic, 2 = bilinear).
    pub resample: Resample,
    /// Center-crop (zero-padding where the image is smaller) after resizing.
    pub do_center_crop: bool,
    /// The crop.
    pub crop_size: CropSize,
    /// Multiply 8-bit levels by `rescale_factor`.
    pub do_rescale: bool,
    /// Usually `1/255`.
    pub rescale_factor: f64,
    /// Apply `(x − mean) / std` per channel.
    pub do_normalize: bool,
    /// Per-channel mean, RGB.
    pub image_mean: [f64; 3],
    /// Per-channel standard deviation, RGB.
    pub image_std: [f64; 3],
    /// Convert to RGB first (alpha composited onto white, greyscale and palettes expanded).
    pub do_convert_rgb: bool,
}

impl Default for PreprocessorConfig {
    /// `CLIPImageProcessor()`: OpenAI CLIP at 224 px, bicubic.
    fn default() -> Self {
        Self::with_image_size(224)
    }
}

impl PreprocessorConfig {
    /// `CLIPImageProcessor`'s defaults with `shortest_edge` and a square crop of `size`
    /// (what a `size` / `crop_size` pair of one value means, e.g. 336 for ViT-L/14@336).
    pub fn with_image_size(size: usize) -> Self {
        Self {
            do_resize: true,
            size: ResizeTarget::ShortestEdge(size),
            resample: Resample::Bicubic,
            do_center_crop: true,
            crop_size: CropSize {
                height: size,
                width: size,
            },
            do_rescale: true,
            rescale_factor: 1.0 / 255.0,
            do_normalize: true,
            image_mean: OPENAI_CLIP_MEAN,
            image_std: OPENAI_CLIP_STD,
            do_convert_rgb: true,
        }
    }

    /// Parses a `preprocessor_config.json` object from JSON text and validates it.
    ///
    /// # Errors
    /// [`PreprocessError::Json`] (path `<string>`) when it does not parse;
    /// [`PreprocessError::InvalidConfig`] for a value of the wrong type or range.
    pub fn from_json_str(json: &str) -> PreprocessResult<Self> {
        let value: Value = serde_json::from_str(json).map_err(|source| PreprocessError::Json {
            path: FROM_STRING.into(),
            source,
        })?;
        Self::from_value(&value, Path::new(FROM_STRING))
    }

    /// Reads and validates a `preprocessor_config.json` file.
    ///
    /// # Errors
    /// [`PreprocessError::Checkpoint`] when it cannot be read or is not JSON (read with
    /// clip-checkpoint's size limit); [`PreprocessError::InvalidConfig`] naming the file.
    pub fn from_file(path: impl AsRef<Path>) -> PreprocessResult<Self> {
        let path = path.as_ref();
        let value = read_json(path)?;
        Self::from_value(&value, path)
    }

    /// The config of a checkpoint: `path` is a `preprocessor_config.json` file, a directory
    /// holding one, or a hub id (`ORG/NAME[@REV]`) found in the local HF cache (see
    /// [`clip_checkpoint::resolve`]). A directory without one gets the defaults, with `size` and
    /// `crop_size` set to the `image_size` of its `config.json` (top level, or inside
    /// `vision_config` for a full `CLIPModel` config) when there is one.
    ///
    /// # Errors
    /// As [`PreprocessorConfig::from_file`]; [`PreprocessError::Checkpoint`] when `path`
    /// does not exist and is not a hub id in the cache.
    pub fn from_pretrained(path: impl AsRef<Path>) -> PreprocessResult<Self> {
        let resolved = clip_checkpoint::resolve(path.as_ref())?;
        let path = resolved.as_path();
        if !path.is_dir() {
            return Self::from_file(path);
        }
        let file = path.join("preprocessor_config.json");
        if file.is_file() {
            return Self::from_file(&file);
        }
        let model_config = path.join("config.json");
        if !model_config.is_file() {
            return Ok(Self::default());
        }
        let value = read_json(&model_config)?;
        let image_size = value
            .get("vision_config")
            .and_then(|v| v.get("image_size"))
            .or_else(|| value.get("image_size"))
            .filter(|v| !v.is_null());
        match image_size {
            None => Ok(Self::default()),
            Some(v) => {
                let size = positive_int(v, &model_config, "image_size")?;
                let cfg = Self::with_image_size(size);
                cfg.validate_at(&model_config)?;
                Ok(cfg)
            }
        }
    }

    /// Checks the values: sizes positive, `rescale_factor`, means and standard deviations
    /// finite, no standard deviation zero.
    ///
    /// # Errors
    /// [`PreprocessError::InvalidConfig`] (path `<config>`) naming the key.
    pub fn validate(&self) -> PreprocessResult<()> {
        self.validate_at(Path::new(FROM_CODE))
    }

    /// `(height, width)` of the preprocessed output for an `in_h × in_w` input: the crop
    /// when `do_center_crop`, else the resized (or original) size.
    pub fn output_size(&self, in_h: usize, in_w: usize) -> (usize, usize) {
        if self.do_center_crop {
            (self.crop_size.height, self.crop_size.width)
        } else {
            self.resized_size(in_h, in_w)
        }
    }

    /// `(height, width)` after the resize step (the input size when `do_resize` is false).
    pub fn resized_size(&self, in_h: usize, in_w: usize) -> (usize, usize) {
        if self.do_resize {
            self.size.output_size(in_h, in_w)
        } else {
            (in_h, in_w)
        }
    }

    fn validate_at(&self, path: &Path) -> PreprocessResult<()> {
        let bad =
            |key: &'static str, value: String, reason: &str| Err(invalid(path, key, value, reason));
        let sizes = match self.size {
            ResizeTarget::ShortestEdge(n) => [n, 1],
            ResizeTarget::Exact { height, width } => [height, width],
        };
        if sizes.contains(&0) {
            return bad("size", format!("{:?}", self.size), "sizes must be positive");
        }
        if self.crop_size.height == 0 || self.crop_size.width == 0 {
            return bad(
                "crop_size",
                format!("{:?}", self.crop_size),
                "sizes must be positive",
            );
        }
        if !self.rescale_factor.is_finite() {
            return bad(
                "rescale_factor",
                self.rescale_factor.to_string(),
                "must be finite",
            );
        }
        if !self.image_mean.iter().all(|m| m.is_finite()) {
            return bad(
                "image_mean",
                format!("{:?}", self.image_mean),
                "must be finite",
            );
        }
        if !self.image_std.iter().all(|s| s.is_finite() && *s != 0.0) {
            return bad(
                "image_std",
                format!("{:?}", self.image_std),
                "must be finite and non-zero",
            );
        }
        Ok(())
    }

    /// Reads the keys of a parsed JSON object.
    fn from_value(value: &Value, path: &Path) -> PreprocessResult<Self> {
        let obj = value.as_object().ok_or_else(|| {
            invalid(
                path,
                "<root>",
                render(value),
                "a preprocessor config must be a JSON object",
            )
        })?;
        let defaults = Self::default();
        let default_to_square = flag(obj, path, "default_to_square", false)?;
        let size = match key(obj, "size") {
            None => defaults.size,
            Some(v) => parse_size(v, path, default_to_square)?,
        };
        let crop_size = match key(obj, "crop_size") {
            None => defaults.crop_size,
            Some(v) => parse_crop(v, path)?,
        };
        let resample = match key(obj, "resample") {
            None => defaults.resample,
            Some(v) => {
                let code = v
                    .as_i64()
                    .ok_or_else(|| invalid(path, "resample", render(v), "must be an integer"))?;
                Resample::from_pil(code).ok_or_else(|| {
                    invalid(
                        path,
                        "resample",
                        render(v),
                        "unsupported filter: this crate implements PIL's 3 = BICUBIC and 2 = BILINEAR",
                    )
                })?
            }
        };
        let rescale_factor = match key(obj, "rescale_factor") {
            None => defaults.rescale_factor,
            Some(v) => v
                .as_f64()
                .ok_or_else(|| invalid(path, "rescale_factor", render(v), "must be a number"))?,
        };
        let cfg = Self {
            do_resize: flag(obj, path, "do_resize", defaults.do_resize)?,
            size,
            resample,
            do_center_crop: flag(obj, path, "do_center_crop", defaults.do_center_crop)?,
            crop_size,
            do_rescale: flag(obj, path, "do_rescale", defaults.do_rescale)?,
            rescale_factor,
            do_normalize: flag(obj, path, "do_normalize", defaults.do_normalize)?,
            image_mean: per_channel(obj, path, "image_mean", defaults.image_mean)?,
            image_std: per_channel(obj, path, "image_std", defaults.image_std)?,
            do_convert_rgb: flag(obj, path, "do_convert_rgb", defaults.do_convert_rgb)?,
        };
        cfg.validate_at(path)?;
        Ok(cfg)
    }
}

/// The file's JSON, read with clip-checkpoint's size limit.
fn read_json(path: &Path) -> PreprocessResult<Value> {
    Ok(clip_checkpoint::read_json(path)?)
}

fn invalid(path: &Path, key: &'static str, value: String, reason: &str) -> PreprocessError {
    PreprocessError::InvalidConfig {
        path: PathBuf::from(path),
        key,
        value,
        reason: reason.into(),
    }
}

fn render(v: &Value) -> String {
    v.to_string()
}

/// A key's value, `null` counting as absent (transformers' "use the class default").
fn key<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).filter(|v| !v.is_null())
}

fn flag(
    obj: &Map<String, Value>,
    path: &Path,
    name: &'static str,
    default: bool,
) -> PreprocessResult<bool> {
    match key(obj, name) {
        None => Ok(default),
        Some(v) => v
            .as_bool()
            .ok_or_else(|| invalid(path, name, render(v), "must be true or false")),
    }
}

fn positive_int(v: &Value, path: &Path, name: &'static str) -> PreprocessResult<usize> {
    v.as_u64()
        .filter(|n| *n > 0)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| invalid(path, name, render(v), "must be a positive integer"))
}

/// `(height, width)` of a `[h, w]` list or a `{"height", "width"}` object (other keys
/// `null`, as transformers may serialise unset `SizeDict` fields); `None` for other shapes.
fn height_width(
    v: &Value,
    path: &Path,
    name: &'static str,
) -> PreprocessResult<Option<(usize, usize)>> {
    let pair = match v {
        Value::Array(items) if items.len() == 2 => (&items[0], &items[1]),
        Value::Object(o) if set_keys(o) == ["height", "width"] => (&o["height"], &o["width"]),
        _ => return Ok(None),
    };
    Ok(Some((
        positive_int(pair.0, path, name)?,
        positive_int(pair.1, path, name)?,
    )))
}

/// The keys of an object whose values are not `null`, sorted.
fn set_keys(o: &Map<String, Value>) -> Vec<&str> {
    let mut keys: Vec<&str> = o
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, _)| k.as_str())
        .collect();
    keys.sort_unstable();
    keys
}

/// `size`: transformers' `get_size_dict(size, default_to_square)`, restricted to the forms
/// this crate implements (`shortest_edge` alone, or `height` and `width`).
fn parse_size(v: &Value, path: &Path, default_to_square: bool) -> PreprocessResult<ResizeTarget> {
    if v.is_number() {
        let n = positive_int(v, path, "size")?;
        return Ok(if default_to_square {
            ResizeTarget::Exact {
                height: n,
                width: n,
            }
        } else {
            ResizeTarget::ShortestEdge(n)
        });
    }
    if let Some((height, width)) = height_width(v, path, "size")? {
        return Ok(ResizeTarget::Exact { height, width });
    }
    if let Some(o) = v.as_object() {
        if set_keys(o) == ["shortest_edge"] {
            return Ok(ResizeTarget::ShortestEdge(positive_int(
                &o["shortest_edge"],
                path,
                "size",
            )?));
        }
    }
    Err(invalid(
        path,
        "size",
        render(v),
        "supported forms: an integer, {\"shortest_edge\": n}, {\"height\": h, \"width\": w} or [h, w]",
    ))
}

/// `crop_size`: an integer is a square (`get_size_dict(crop_size)` defaults to square).
fn parse_crop(v: &Value, path: &Path) -> PreprocessResult<CropSize> {
    if v.is_number() {
        let n = positive_int(v, path, "crop_size")?;
        return Ok(CropSize {
            height: n,
            width: n,
        });
    }
    if let Some((height, width)) = height_width(v, path, "crop_size")? {
        return Ok(CropSize { height, width });
    }
    Err(invalid(
        path,
        "crop_size",
        render(v),
        "supported forms: an integer, {\"height\": h, \"width\": w} or [h, w]",
    ))
}

/// `image_mean` / `image_std`: three numbers, or one number for every channel.
fn per_channel(
    obj: &Map<String, Value>,
    path: &Path,
    name: &'static str,
    default: [f64; 3],
) -> PreprocessResult<[f64; 3]> {
    let Some(v) = key(obj, name) else {
        return Ok(default);
    };
    if let Some(x) = v.as_f64() {
        return Ok([x; 3]);
    }
    let numbers: Option<Vec<f64>> = v
        .as_array()
        .map(|items| items.iter().map(Value::as_f64).collect())
        .unwrap_or(None);
    match numbers {
        Some(n) if n.len() == 3 => Ok([n[0], n[1], n[2]]),
        _ => Err(invalid(
            path,
            name,
            render(v),
            "must be a number or a list of 3 numbers (one per RGB channel)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_of(json: &str) -> String {
        PreprocessorConfig::from_json_str(json)
            .expect_err(json)
            .to_string()
    }

    #[test]
    fn defaults_are_openai_clip_224() {
        let cfg = PreprocessorConfig::from_json_str("{}").unwrap();
        assert_eq!(cfg, PreprocessorConfig::default());
        assert_eq!(cfg.size, ResizeTarget::ShortestEdge(224));
        assert_eq!(cfg.resample, Resample::Bicubic);
        assert_eq!(cfg.rescale_factor, 1.0 / 255.0);
        assert_eq!(cfg.image_mean, OPENAI_CLIP_MEAN);
        assert!(cfg.do_resize && cfg.do_center_crop && cfg.do_rescale);
        assert!(cfg.do_normalize && cfg.do_convert_rgb);
    }

    #[test]
    fn hub_legacy_config_parses() {
        // openai/clip-vit-base-patch32's file, verbatim.
        let cfg = PreprocessorConfig::from_json_str(
            r#"{
  "crop_size": 224,
  "do_center_crop": true,
  "do_normalize": true,
  "do_resize": true,
  "feature_extractor_type": "CLIPFeatureExtractor",
  "image_mean": [0.48145466, 0.4578275, 0.40821073],
  "image_std": [0.26862954, 0.26130258, 0.27577711],
  "resample": 3,
  "size": 224
}"#,
        )
        .unwrap();
        assert_eq!(cfg, PreprocessorConfig::default());
    }

    #[test]
    fn transformers5_dict_forms_parse() {
        let cfg = PreprocessorConfig::from_json_str(
            r#"{"crop_size": {"height": 100, "width": 120}, "size": {"height": 200, "width": 300},
                "resample": 2, "do_rescale": false, "rescale_factor": 0.5, "image_mean": 0.5,
                "image_std": [1, 2, 3], "do_convert_rgb": null, "image_processor_type": "CLIPImageProcessor"}"#,
        )
        .unwrap();
        assert_eq!(
            cfg.crop_size,
            CropSize {
                height: 100,
                width: 120
            }
        );
        assert_eq!(
            cfg.size,
            ResizeTarget::Exact {
                height: 200,
                width: 300
            }
        );
        assert_eq!(cfg.resample, Resample::Bilinear);
        assert!(!cfg.do_rescale && cfg.do_convert_rgb);
        assert_eq!(
            (cfg.rescale_factor, cfg.image_mean, cfg.image_std),
            (0.5, [0.5; 3], [1.0, 2.0, 3.0])
        );
        let cfg = PreprocessorConfig::from_json_str(
            r#"{"size": {"shortest_edge": 336, "height": null}, "crop_size": [336, 300]}"#,
        )
        .unwrap();
        assert_eq!(cfg.size, ResizeTarget::ShortestEdge(336));
        assert_eq!(
            cfg.crop_size,
            CropSize {
                height: 336,
                width: 300
            }
        );
        let cfg = PreprocessorConfig::from_json_str(r#"{"size": 64, "default_to_square": true}"#)
            .unwrap();
        assert_eq!(
            cfg.size,
            ResizeTarget::Exact {
                height: 64,
                width: 64
            }
        );
        let cfg = PreprocessorConfig::from_json_str(r#"{"size": [30, 40]}"#).unwrap();
        assert_eq!(
            cfg.size,
            ResizeTarget::Exact {
                height: 30,
                width: 40
            }
        );
    }

    #[test]
    fn bad_values_are_named() {
        assert!(err_of(r#"{"resample": 1}"#).contains("resample = 1: unsupported filter"));
        assert!(err_of(r#"{"resample": "bicubic"}"#).contains("must be an integer"));
        assert!(
            err_of(r#"{"size": {"shortest_edge": 224, "longest_edge": 500}}"#).contains("size = ")
        );
        assert!(err_of(r#"{"size": {"max_height": 224, "max_width": 500}}"#)
            .contains("supported forms"));
        assert!(err_of(r#"{"size": 0}"#).contains("positive integer"));
        assert!(err_of(r#"{"size": -3}"#).contains("positive integer"));
        assert!(err_of(r#"{"crop_size": "224"}"#).contains("crop_size"));
        assert!(err_of(r#"{"crop_size": {"height": 224}}"#).contains("crop_size"));
        assert!(err_of(r#"{"image_mean": [0.5, 0.5]}"#).contains("image_mean"));
        assert!(err_of(r#"{"image_std": [0.5, 0, 0.5]}"#).contains("non-zero"));
        assert!(err_of(r#"{"do_resize": 1}"#).contains("do_resize = 1: must be true or false"));
        assert!(err_of(r#"[1, 2]"#).contains("must be a JSON object"));
        assert!(err_of("{").starts_with("<string>:"));
    }

    #[test]
    fn shortest_edge_truncates_like_transformers() {
        let r = ResizeTarget::ShortestEdge(224);
        // int(224 * 451 / 300) = int(336.7466…) = 336
        assert_eq!(r.output_size(300, 451), (224, 336));
        // portrait: (new_long, new_short) as (H, W)
        assert_eq!(r.output_size(427, 283), (337, 224));
        assert_eq!(r.output_size(224, 224), (224, 224));
        assert_eq!(r.output_size(1, 5000), (224, 1_120_000));
        // upscaling works the same way
        assert_eq!(r.output_size(100, 150), (224, 336));
    }

    #[test]
    fn from_pretrained_reads_directory_or_file_or_falls_back() {
        let dir = std::env::temp_dir().join(format!("clip-vision-pp-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // no file at all: defaults
        assert_eq!(
            PreprocessorConfig::from_pretrained(&dir).unwrap(),
            PreprocessorConfig::default()
        );
        // config.json only: its image_size (a CLIPModel config nests it)
        std::fs::write(
            dir.join("config.json"),
            r#"{"vision_config": {"image_size": 336}}"#,
        )
        .unwrap();
        assert_eq!(
            PreprocessorConfig::from_pretrained(&dir).unwrap(),
            PreprocessorConfig::with_image_size(336)
        );
        std::fs::write(dir.join("config.json"), r#"{"image_size": "big"}"#).unwrap();
        let err = PreprocessorConfig::from_pretrained(&dir)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("config.json") && err.contains("image_size"),
            "{err}"
        );
        // preprocessor_config.json wins
        let file = dir.join("preprocessor_config.json");
        std::fs::write(&file, r#"{"size": 100, "crop_size": 90}"#).unwrap();
        let cfg = PreprocessorConfig::from_pretrained(&dir).unwrap();
        assert_eq!(cfg.crop_size.height, 90);
        assert_eq!(PreprocessorConfig::from_pretrained(&file).unwrap(), cfg);
        std::fs::write(&file, r#"{"size": 100,"#).unwrap();
        let err = PreprocessorConfig::from_pretrained(&dir)
            .unwrap_err()
            .to_string();
        assert!(err.contains("preprocessor_config.json"), "{err}");
        let missing = dir.join("nope");
        assert!(matches!(
            PreprocessorConfig::from_pretrained(&missing),
            Err(PreprocessError::Checkpoint(
                clip_checkpoint::CheckpointError::Io { .. }
            ))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
