//! Attention masks: which keys each query of a sequence may attend to.
//!
//! Two rules, combined: a causal rule (query `i` sees keys `j ≤ i`, as CLIP's text tower and
//! GPT-style decoders use it) and a padding rule (a key that is padding is seen by no query:
//! transformers' `attention_mask`, 1 for a real token and 0 for padding). A masked score is
//! dropped from the softmax exactly, not approximated by a large negative number.
//!
//! A query that sees no key at all (a padded position before every real token, under both
//! rules) gets a zero context row; such rows only occur at positions that are padding
//! themselves.

use vit_tensor::error::{check_len, checked_mul};
use vit_tensor::TensorResult;

/// Which keys each query may attend to, for a batch of sequences of one length.
///
/// `AttentionMask::default()` (= [`AttentionMask::NONE`]) lets every query see every key,
/// the vision tower's full self-attention.
///
/// ```
/// use vit_layers::AttentionMask;
/// let keep = [true, true, false]; // [batch 1, seq_len 3]: the last token is padding
/// let mask = AttentionMask::causal().with_padding(&keep);
/// assert!(mask.allows(0, 3, 1, 0));
/// assert!(!mask.allows(0, 3, 0, 1)); // causal: a query never sees a later key
/// assert!(!mask.allows(0, 3, 2, 2)); // padding: no query sees a padded key
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AttentionMask<'a> {
    /// Query `i` sees only keys `j ≤ i`.
    pub causal: bool,
    /// `[batch, seq_len]`: `true` where the token is real, `false` where it is padding.
    pub keep: Option<&'a [bool]>,
}

impl<'a> AttentionMask<'a> {
    /// No mask: full self-attention.
    pub const NONE: AttentionMask<'static> = AttentionMask {
        causal: false,
        keep: None,
    };

    /// The causal rule alone.
    pub fn causal() -> Self {
        Self {
            causal: true,
            keep: None,
        }
    }

    /// This mask with the padding rule added; `keep` is `[batch, seq_len]`.
    pub fn with_padding(self, keep: &'a [bool]) -> AttentionMask<'a> {
        AttentionMask {
            causal: self.causal,
            keep: Some(keep),
        }
    }

    /// `true` when every query sees every key.
    pub fn is_none(&self) -> bool {
        !self.causal && self.keep.is_none()
    }

    /// Whether query `i` of sequence `b` may attend to key `j`.
    ///
    /// # Panics
    /// When `keep` is set and `b · seq_len + j` is outside it; [`AttentionMask::check`]
    /// rules that out for a whole batch.
    pub fn allows(&self, b: usize, seq_len: usize, i: usize, j: usize) -> bool {
        !(self.causal && j > i) && self.keep.is_none_or(|keep| keep[b * seq_len + j])
    }

    /// Checks that the padding rule covers exactly `[batch, seq_len]`.
    ///
    /// # Errors
    /// [`vit_tensor::TensorError::LengthMismatch`] when `keep` has another length.
    pub fn check(&self, batch: usize, seq_len: usize) -> TensorResult<()> {
        if let Some(keep) = self.keep {
            let expected = checked_mul("AttentionMask", "batch · seq_len", batch, seq_len)?;
            check_len(
                "AttentionMask",
                "padding mask [batch, seq_len]",
                expected,
                keep.len(),
            )?;
        }
        Ok(())
    }

    /// Applies the mask to the scores of sequence `b` and takes the softmax of each row:
    /// masked entries become exactly 0, and a row with no visible key becomes all zeros.
    ///
    /// # Shapes
    /// - `scores`: `[seq_len, seq_len]` (query rows, key columns), in place
    pub(crate) fn masked_softmax(
        &self,
        scores: &mut [f32],
        b: usize,
        seq_len: usize,
    ) -> TensorResult<()> {
        if self.is_none() {
            return vit_tensor::softmax_rows(scores, seq_len);
        }
        let mut empty_rows = Vec::new();
        for (i, row) in scores.chunks_exact_mut(seq_len).enumerate() {
            let mut seen = 0usize;
            for (j, s) in row.iter_mut().enumerate() {
                if self.allows(b, seq_len, i, j) {
                    seen += 1;
                } else {
                    *s = f32::NEG_INFINITY;
                }
            }
            if seen == 0 {
                empty_rows.push(i);
                row.fill(0.0);
            }
        }
        vit_tensor::softmax_rows(scores, seq_len)?;
        for i in empty_rows {
            scores[i * seq_len..(i + 1) * seq_len].fill(0.0);
        }
        Ok(())
    }
}
