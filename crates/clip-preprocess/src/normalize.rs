//! 8-bit HWC levels → normalised CHW `f32`, with transformers' exact arithmetic.
//!
//! transformers' PIL backend rescales with `(image.astype(float64) * rescale_factor)
//! .astype(float32)` and normalises in `float32`: `(x − mean) / std` with `mean` and `std`
//! cast to `float32` first. Every step is one IEEE operation with round-to-nearest, so the
//! result for a level is fully determined; a 256-entry table per channel holds it.

use crate::config::PreprocessorConfig;

/// Per-channel tables `level → output value`.
#[derive(Debug, Clone)]
pub(crate) struct Normalizer {
    /// `[3][256]`: channel, 8-bit level.
    table: [[f32; 256]; 3],
}

impl Normalizer {
    /// The tables of a config's `do_rescale`, `rescale_factor`, `do_normalize`, `image_mean`,
    /// `image_std`.
    pub(crate) fn new(cfg: &PreprocessorConfig) -> Self {
        let mut table = [[0f32; 256]; 3];
        for (c, row) in table.iter_mut().enumerate() {
            let mean = cfg.image_mean[c] as f32;
            let std = cfg.image_std[c] as f32;
            for (level, out) in row.iter_mut().enumerate() {
                let x = if cfg.do_rescale {
                    (level as f64 * cfg.rescale_factor) as f32
                } else {
                    level as f32
                };
                *out = if cfg.do_normalize {
                    (x - mean) / std
                } else {
                    x
                };
            }
        }
        Self { table }
    }

    /// Converts interleaved RGB levels to planar normalised values.
    ///
    /// # Shapes
    /// - `rgb`: `[H, W, 3]`
    /// - returns: `[3, H, W]`
    pub(crate) fn to_chw(&self, rgb: &[u8]) -> Vec<f32> {
        let plane = rgb.len() / 3;
        let mut out = vec![0f32; plane * 3];
        let (r, gb) = out.split_at_mut(plane);
        let (g, b) = gb.split_at_mut(plane);
        for (i, p) in rgb.chunks_exact(3).enumerate() {
            r[i] = self.table[0][usize::from(p[0])];
            g[i] = self.table[1][usize::from(p[1])];
            b[i] = self.table[2][usize::from(p[2])];
        }
        out
    }

    /// The value of `level` in channel `c`.
    #[cfg(test)]
    pub(crate) fn value(&self, c: usize, level: u8) -> f32 {
        self.table[c][usize::from(level)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_follow_numpys_float32_arithmetic() {
        let cfg = PreprocessorConfig::default();
        let n = Normalizer::new(&cfg);
        // 0 → −mean/std; 255 → (1 − mean)/std, in f32.
        let mean0 = 0.481_454_66f64 as f32;
        let std0 = 0.268_629_54f64 as f32;
        assert_eq!(n.value(0, 0), (0.0 - mean0) / std0);
        assert_eq!(n.value(0, 255), (1.0f32 - mean0) / std0);
        // 128/255 goes through f64 before f32.
        let x = (128.0f64 * (1.0 / 255.0)) as f32;
        assert_eq!(n.value(0, 128), (x - mean0) / std0);
        let plain = Normalizer::new(&PreprocessorConfig {
            do_rescale: false,
            do_normalize: false,
            ..cfg
        });
        assert_eq!(plain.value(2, 200), 200.0);
    }

    #[test]
    fn output_is_planar() {
        let plain = Normalizer::new(&PreprocessorConfig {
            do_rescale: false,
            do_normalize: false,
            ..PreprocessorConfig::default()
        });
        // [H 1, W 2, 3] → [3, 1, 2]
        assert_eq!(
            plain.to_chw(&[1, 2, 3, 4, 5, 6]),
            vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]
        );
    }
}
