//! transformers' `center_crop` (`image_transforms.center_crop`): offsets, and zero padding
//! where the image is smaller than the crop.
//!
//! Along each axis, crop pixel `i` is image pixel `i + offset` with
//! `offset = (image − crop) // 2` (Python's floor division, so negative when the image is
//! smaller), and zero where that falls outside the image. That is what transformers' padding
//! branch works out to: it pads by `ceil((crop − image) / 2)` before and crops at
//! `offset + pad = 0`. Padding is zero in 8-bit levels, before rescaling and normalising.

use std::ops::Range;

/// One axis of a center crop: which image pixels it sees and where they land.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CropAxis {
    /// Image pixels inside the crop (empty when they do not overlap).
    pub(crate) source: Range<usize>,
    /// Crop index of `source.start`.
    pub(crate) dest_start: usize,
    /// Length of the crop along this axis.
    pub(crate) len: usize,
}

impl CropAxis {
    /// The center crop of length `crop` out of an axis of length `image`.
    pub(crate) fn center(image: usize, crop: usize) -> Self {
        let offset = (image as i64 - crop as i64).div_euclid(2);
        let start = offset.max(0);
        let end = (offset + crop as i64).min(image as i64).max(start);
        Self {
            source: start as usize..end as usize,
            dest_start: (start - offset) as usize,
            len: crop,
        }
    }

    /// The whole axis, uncropped.
    pub(crate) fn whole(image: usize) -> Self {
        Self {
            source: 0..image,
            dest_start: 0,
            len: image,
        }
    }

    /// Whether the crop is exactly `source` (no padding).
    fn is_covered(&self) -> bool {
        self.dest_start == 0 && self.source.len() == self.len
    }
}

/// Places the visible part of the image into a zero `len_y × len_x` canvas.
///
/// # Shapes
/// - `visible`: `[rows.source.len(), cols.source.len(), 3]`
/// - returns: `[rows.len, cols.len, 3]`
pub(crate) fn place(visible: Vec<u8>, rows: &CropAxis, cols: &CropAxis) -> Vec<u8> {
    if rows.is_covered() && cols.is_covered() {
        return visible;
    }
    let mut out = vec![0u8; rows.len * cols.len * 3];
    let row_bytes = cols.source.len() * 3;
    if row_bytes == 0 {
        return out;
    }
    for (i, src) in visible.chunks_exact(row_bytes).enumerate() {
        let at = ((rows.dest_start + i) * cols.len + cols.dest_start) * 3;
        out[at..at + row_bytes].copy_from_slice(src);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// transformers' padding branch, step by step (numpy slicing semantics).
    fn transformers_axis(image: i64, crop: i64) -> Vec<Option<i64>> {
        let mut top = (image - crop).div_euclid(2);
        if top >= 0 && top + crop <= image {
            return (0..crop).map(|i| Some(top + i)).collect();
        }
        let new = crop.max(image);
        let pad = (new - image + 1) / 2; // ceil((new - image) / 2)
        top += pad;
        let bottom = top + crop;
        let canvas: Vec<Option<i64>> = (0..new)
            .map(|j| (j >= pad && j < pad + image).then(|| j - pad))
            .collect();
        canvas[top.max(0) as usize..bottom.min(new) as usize].to_vec()
    }

    #[test]
    fn offsets_match_transformers_center_crop() {
        for image in 1..40usize {
            for crop in 1..40usize {
                let a = CropAxis::center(image, crop);
                let got: Vec<Option<i64>> = (0..crop)
                    .map(|i| {
                        (i >= a.dest_start && i < a.dest_start + a.source.len())
                            .then(|| (a.source.start + i - a.dest_start) as i64)
                    })
                    .collect();
                assert_eq!(
                    got,
                    transformers_axis(image as i64, crop as i64),
                    "image {image}, crop {crop}"
                );
            }
        }
        // The usual case: 298 → 224 starts at (298 − 224) // 2 = 37.
        assert_eq!(CropAxis::center(298, 224).source, 37..261);
        // Odd difference rounds the offset down: (225 − 224) // 2 = 0.
        assert_eq!(CropAxis::center(225, 224).source, 0..224);
        // Smaller image: (221 − 224) // 2 = −2, so two zero columns before, one after.
        let a = CropAxis::center(221, 224);
        assert_eq!((a.source, a.dest_start), (0..221, 2));
    }

    #[test]
    fn place_pads_with_zeros() {
        let rows = CropAxis::center(1, 3);
        let cols = CropAxis::center(2, 2);
        let out = place(vec![1, 2, 3, 4, 5, 6], &rows, &cols);
        assert_eq!(
            out,
            vec![0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 0, 0, 0, 0, 0, 0]
        );
        let whole = CropAxis::whole(2);
        assert_eq!(place(vec![9; 12], &whole, &whole), vec![9; 12]);
    }
}
