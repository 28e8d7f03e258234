//! Multi-head self-attention, unmasked as a ViT block uses it or under an
//! [`AttentionMask`] (causal and padding rules) as CLIP's text tower does.
//!
//! Matches `CLIPAttention` in HF transformers (eval mode): `q, k, v = x·W{q,k,v}ᵀ + b`;
//! per head `softmax(q·kᵀ · head_dim^-0.5 + mask) · v`; heads concatenated; `out_proj`.
//! The q, k and v projections are held as one fused `[3·D, D]` layer so the three
//! products are one matrix multiplication; each head then reads its q, k and v as strided
//! views of that output, with no copies.
//!
//! Each head runs on one of two [`AttentionPath`]s: the two-pass one (the `[N, N]` scores
//! by GEMM, a row softmax, a second GEMM) or the tiled one
//! ([`vit_tensor::ops::attention`]: online softmax, no `[N, N]` matrix). Both give the
//! reference's numbers; which is faster depends on the CPU and the sequence length
//! (docs/performance.md), so the choice is a setting, [`AttentionPath::Auto`] by default.

use crate::{AttentionMask, Linear};
use rayon::prelude::*;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;
use vit_tensor::error::{check_len, checked_mul};
use vit_tensor::ops::attention::{attention_into, AttentionTiles, KeyMask};
use vit_tensor::{gemm, MatMut, MatRef, TensorError, TensorResult};

/// Environment variable that sets the [`AttentionPath`] of a process: `two-pass`, `tiled`
/// or `auto`.
pub const ATTENTION_ENV: &str = "VIT_ATTENTION";

/// How each head computes `softmax(q·kᵀ·scale + mask)·v`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttentionPath {
    /// The path measured fastest on the CPUs measured so far: two-pass, at every length up
    /// to 577 tokens (docs/performance.md, "Issue 12, second step").
    Auto,
    /// Scores `[N, N]` by GEMM, softmax of each row, then the product with `v` by GEMM.
    TwoPass,
    /// [`vit_tensor::ops::attention::attention_into`]: key blocks, online softmax.
    Tiled,
}

impl AttentionPath {
    /// Every path.
    pub const ALL: [AttentionPath; 3] = [
        AttentionPath::Auto,
        AttentionPath::TwoPass,
        AttentionPath::Tiled,
    ];

    /// The name [`ATTENTION_ENV`] takes.
    pub fn name(self) -> &'static str {
        match self {
            AttentionPath::Auto => "auto",
            AttentionPath::TwoPass => "two-pass",
            AttentionPath::Tiled => "tiled",
        }
    }

    /// The path that runs (never `Auto`).
    pub fn resolve(self) -> AttentionPath {
        match self {
            AttentionPath::Auto => AttentionPath::TwoPass,
            p => p,
        }
    }

    fn code(self) -> u8 {
        match self {
            AttentionPath::Auto => 1,
            AttentionPath::TwoPass => 2,
            AttentionPath::Tiled => 3,
        }
    }
}

impl std::fmt::Display for AttentionPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for AttentionPath {
    type Err = TensorError;

    fn from_str(s: &str) -> TensorResult<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| TensorError::InvalidArgument {
                op: "attention path",
                what: "name",
                value: s.to_owned(),
                reason: "expected auto, two-pass or tiled",
            })
    }
}

/// The path set by [`force_attention_path`] (0: none).
static FORCED: AtomicU8 = AtomicU8::new(0);

/// Forces `path` for every later attention of this process (`None`: back to
/// [`ATTENTION_ENV`], else [`AttentionPath::Auto`]).
pub fn force_attention_path(path: Option<AttentionPath>) {
    FORCED.store(path.map_or(0, AttentionPath::code), Ordering::Relaxed);
}

/// The path [`ATTENTION_ENV`] asks for.
///
/// # Errors
/// [`TensorError::InvalidArgument`] for an unknown name.
pub fn env_attention_path() -> TensorResult<Option<AttentionPath>> {
    match std::env::var(ATTENTION_ENV) {
        Ok(v) if !v.is_empty() => v.parse().map(Some),
        _ => Ok(None),
    }
}

/// The path in force: [`force_attention_path`]'s, else [`ATTENTION_ENV`]'s (read once; an
/// unknown name warns and falls back), else [`AttentionPath::Auto`].
pub fn attention_path() -> AttentionPath {
    let forced = FORCED.load(Ordering::Relaxed);
    if let Some(p) = AttentionPath::ALL.into_iter().find(|p| p.code() == forced) {
        return p;
    }
    static FROM_ENV: OnceLock<AttentionPath> = OnceLock::new();
    *FROM_ENV.get_or_init(|| match env_attention_path() {
        Ok(p) => p.unwrap_or(AttentionPath::Auto),
        Err(e) => {
            eprintln!("warning: {ATTENTION_ENV}: {e}; using auto");
            AttentionPath::Auto
        }
    })
}

/// Multi-head self-attention (Vaswani et al. 2017, §3.2.2).
#[derive(Debug, Clone, PartialEq)]
pub struct MultiHeadAttention {
    /// Rows `0..D` are `q_proj`, `D..2D` `k_proj`, `2D..3D` `v_proj`: `[3·D, D]`.
    qkv: Linear,
    /// `[D, D]`
    out_proj: Linear,
    n_heads: usize,
    /// This layer's own path; `Auto` defers to [`attention_path`].
    path: AttentionPath,
}

impl MultiHeadAttention {
    /// Attention from the four projections as checkpoints store them (each `[D, D]` with an
    /// optional `[D]` bias).
    ///
    /// # Errors
    /// [`TensorError::DimMismatch`] when a projection is not `D → D`;
    /// [`TensorError::InvalidArgument`] when `n_heads` is 0 or does not divide `D`.
    pub fn new(
        q_proj: Linear,
        k_proj: Linear,
        v_proj: Linear,
        out_proj: Linear,
        n_heads: usize,
    ) -> TensorResult<Self> {
        let dim = q_proj.in_features();
        for (what, p) in [
            ("q_proj", &q_proj),
            ("k_proj", &k_proj),
            ("v_proj", &v_proj),
        ] {
            check_square(what, p, dim)?;
        }
        let mut weight = Vec::with_capacity(3 * dim * dim);
        let mut bias = Vec::with_capacity(3 * dim);
        let any_bias = [&q_proj, &k_proj, &v_proj]
            .iter()
            .any(|p| p.bias().is_some());
        for p in [&q_proj, &k_proj, &v_proj] {
            weight.extend_from_slice(&p.weight());
            match p.bias() {
                Some(b) => bias.extend_from_slice(b),
                None => bias.extend(std::iter::repeat_n(0.0, dim)),
            }
        }
        let qkv = Linear::new(weight, any_bias.then_some(bias), dim, 3 * dim)?;
        Self::from_fused(qkv, out_proj, n_heads)
    }

    /// Attention from a fused `[3·D, D]` in-projection (rows q, k, v, as OpenAI CLIP's
    /// `in_proj_weight`) and the output projection.
    ///
    /// # Errors
    /// As [`MultiHeadAttention::new`].
    pub fn from_fused(qkv: Linear, out_proj: Linear, n_heads: usize) -> TensorResult<Self> {
        let dim = out_proj.in_features();
        check_square("out_proj", &out_proj, dim)?;
        if qkv.in_features() != dim || qkv.out_features() != 3 * dim {
            return Err(TensorError::ShapeMismatch {
                op: "MultiHeadAttention",
                what: "fused q/k/v projection",
                expected: vec![3 * dim, dim],
                got: vec![qkv.out_features(), qkv.in_features()],
            });
        }
        if n_heads == 0 || !dim.is_multiple_of(n_heads) {
            return Err(TensorError::InvalidArgument {
                op: "MultiHeadAttention",
                what: "n_heads",
                value: n_heads.to_string(),
                reason: "must be positive and divide the embedding width",
            });
        }
        Ok(Self {
            qkv,
            out_proj,
            n_heads,
            path: AttentionPath::Auto,
        })
    }

    /// Random attention: projections `N(0, std²)`, zero biases.
    ///
    /// # Errors
    /// [`TensorError::InvalidArgument`] when `n_heads` is 0 or does not divide `dim`.
    pub fn random(
        dim: usize,
        n_heads: usize,
        std: f32,
        rng: &mut vit_tensor::LcgRng,
    ) -> TensorResult<Self> {
        let qkv = Linear::random(dim, 3 * dim, true, std, rng);
        let out = Linear::random(dim, dim, true, std, rng);
        Self::from_fused(qkv, out, n_heads)
    }

    /// This layer on `path` whatever the process setting ([`force_attention_path`],
    /// [`ATTENTION_ENV`]); `AttentionPath::Auto` defers to that setting again.
    pub fn with_path(mut self, path: AttentionPath) -> Self {
        self.path = path;
        self
    }

    /// The path this layer runs (never `Auto`).
    pub fn path(&self) -> AttentionPath {
        match self.path {
            AttentionPath::Auto => attention_path(),
            p => p,
        }
        .resolve()
    }

    /// Embedding width `D`.
    pub fn dim(&self) -> usize {
        self.out_proj.out_features()
    }

    /// Number of heads.
    pub fn n_heads(&self) -> usize {
        self.n_heads
    }

    /// Width of one head, `D / n_heads`.
    pub fn head_dim(&self) -> usize {
        self.dim() / self.n_heads
    }

    /// The fused in-projection, to change in place (its precision: [`Linear::set_precision`];
    /// a layer of another shape put here makes the forward pass fail with a shape error).
    pub fn qkv_mut(&mut self) -> &mut Linear {
        &mut self.qkv
    }

    /// Both projections, to change in place at once (as [`MultiHeadAttention::qkv_mut`]).
    pub fn projections_mut(&mut self) -> (&mut Linear, &mut Linear) {
        (&mut self.qkv, &mut self.out_proj)
    }

    /// The fused in-projection `[3·D, D]` (rows q, k, v).
    pub fn qkv(&self) -> &Linear {
        &self.qkv
    }

    /// The output projection, to change in place (as [`MultiHeadAttention::qkv_mut`]).
    pub fn out_proj_mut(&mut self) -> &mut Linear {
        &mut self.out_proj
    }

    /// The output projection `[D, D]`.
    pub fn out_proj(&self) -> &Linear {
        &self.out_proj
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        self.qkv.num_params() + self.out_proj.num_params()
    }

    /// Self-attention over each sequence of a batch.
    ///
    /// # Shapes
    /// - `x`: `[batch, seq_len, D]` → `[batch, seq_len, D]`
    ///
    /// # Errors
    /// [`TensorError::LengthMismatch`] when `x` is not `batch · seq_len · D`.
    pub fn forward(&self, x: &[f32], batch: usize, seq_len: usize) -> TensorResult<Vec<f32>> {
        self.forward_masked(x, batch, seq_len, AttentionMask::NONE)
    }

    /// Self-attention over each sequence of a batch under `mask`.
    ///
    /// # Shapes
    /// - `x`: `[batch, seq_len, D]` → `[batch, seq_len, D]`; `mask.keep`: `[batch, seq_len]`
    ///
    /// # Errors
    /// [`TensorError::LengthMismatch`] when `x` is not `batch · seq_len · D` or the padding
    /// mask is not `batch · seq_len`.
    pub fn forward_masked(
        &self,
        x: &[f32],
        batch: usize,
        seq_len: usize,
        mask: AttentionMask<'_>,
    ) -> TensorResult<Vec<f32>> {
        let mut out = vec![0.0f32; x.len()];
        self.forward_masked_add_into(
            x,
            batch,
            seq_len,
            mask,
            &mut out,
            &mut AttentionScratch::default(),
        )?;
        Ok(out)
    }

    /// `out ← out + attention(x)`: the residual connection of a block, with the q/k/v and
    /// context buffers taken from `scratch` (grown once, reused across calls).
    ///
    /// Sequences run in parallel (rayon) when the batch has at least as many as there are
    /// threads; otherwise the heads of each sequence do.
    ///
    /// # Shapes
    /// - `x`, `out`: `[batch, seq_len, D]`
    ///
    /// # Errors
    /// [`TensorError::LengthMismatch`] when `x` or `out` is not `batch · seq_len · D`.
    pub fn forward_add_into(
        &self,
        x: &[f32],
        batch: usize,
        seq_len: usize,
        out: &mut [f32],
        scratch: &mut AttentionScratch,
    ) -> TensorResult<()> {
        self.forward_masked_add_into(x, batch, seq_len, AttentionMask::NONE, out, scratch)
    }

    /// [`MultiHeadAttention::forward_add_into`] under `mask`.
    ///
    /// # Shapes
    /// - `x`, `out`: `[batch, seq_len, D]`; `mask.keep`: `[batch, seq_len]`
    ///
    /// # Errors
    /// As [`MultiHeadAttention::forward_masked`].
    pub fn forward_masked_add_into(
        &self,
        x: &[f32],
        batch: usize,
        seq_len: usize,
        mask: AttentionMask<'_>,
        out: &mut [f32],
        scratch: &mut AttentionScratch,
    ) -> TensorResult<()> {
        mask.check(batch, seq_len)?;
        let dim = self.dim();
        let rows = checked_mul("MultiHeadAttention", "batch · seq_len", batch, seq_len)?;
        let expected = checked_mul("MultiHeadAttention", "input", rows, dim)?;
        check_len(
            "MultiHeadAttention",
            "input [batch, seq_len, D]",
            expected,
            x.len(),
        )?;
        check_len(
            "MultiHeadAttention",
            "output [batch, seq_len, D]",
            expected,
            out.len(),
        )?;
        if expected == 0 {
            return Ok(());
        }
        scratch.qkv.resize(3 * expected, 0.0);
        scratch.context.resize(expected, 0.0);
        let (qkv, context) = (&mut scratch.qkv, &mut scratch.context);
        self.qkv.forward_into(x, rows, qkv)?; // [batch, seq_len, 3·D]
        if batch >= rayon::current_num_threads() {
            context
                .par_chunks_mut(seq_len * dim)
                .zip(qkv.par_chunks(seq_len * 3 * dim))
                .enumerate()
                .try_for_each(|(b, (ctx, qkv))| self.attend(qkv, ctx, seq_len, mask, b))?;
        } else {
            for (b, (ctx, qkv)) in context
                .chunks_mut(seq_len * dim)
                .zip(qkv.chunks(seq_len * 3 * dim))
                .enumerate()
            {
                self.attend_heads_in_parallel(qkv, ctx, seq_len, mask, b)?;
            }
        }
        self.out_proj.forward_add_into(context, rows, out)
    }

    /// One head of sequence `b`: `softmax(q_h · k_hᵀ · scale + mask) · v_h` into `out`, a
    /// `[seq_len, head_dim]` view, on `path` (two-pass or tiled).
    #[allow(clippy::too_many_arguments)]
    fn head(
        &self,
        qkv: &[f32],
        h: usize,
        seq_len: usize,
        mask: AttentionMask<'_>,
        b: usize,
        path: AttentionPath,
        scratch: &mut HeadScratch,
        out: MatMut<'_>,
    ) -> TensorResult<()> {
        let (dim, head_dim) = (self.dim(), self.head_dim());
        let scale = (head_dim as f64).powf(-0.5) as f32;
        let q = MatRef::new(&qkv[h * head_dim..], seq_len, head_dim, 3 * dim, 1)?;
        let k = MatRef::new(&qkv[dim + h * head_dim..], seq_len, head_dim, 3 * dim, 1)?;
        let v = MatRef::new(
            &qkv[2 * dim + h * head_dim..],
            seq_len,
            head_dim,
            3 * dim,
            1,
        )?;
        if path == AttentionPath::Tiled {
            let keys = KeyMask {
                causal: mask.causal,
                keep: mask.keep.map(|keep| &keep[b * seq_len..(b + 1) * seq_len]),
            };
            return attention_into(q, k, v, scale, keys, out, &mut scratch.tiles);
        }
        let scores = &mut scratch.scores;
        scores.resize(seq_len * seq_len, 0.0);
        gemm(
            scale,
            q,
            k.t(),
            0.0,
            MatMut::row_major(scores, seq_len, seq_len)?,
        )?;
        mask.masked_softmax(scores, b, seq_len)?;
        gemm(
            1.0,
            MatRef::row_major(scores, seq_len, seq_len)?,
            v,
            0.0,
            out,
        )
    }

    /// All heads of one sequence in parallel, each into its own buffer, then gathered.
    fn attend_heads_in_parallel(
        &self,
        qkv: &[f32],
        ctx: &mut [f32],
        seq_len: usize,
        mask: AttentionMask<'_>,
        b: usize,
    ) -> TensorResult<()> {
        let (dim, head_dim) = (self.dim(), self.head_dim());
        let path = self.path();
        let heads = (0..self.n_heads)
            .into_par_iter()
            .map_init(HeadScratch::default, |scratch, h| {
                let mut out = vec![0.0f32; seq_len * head_dim]; // [seq_len, head_dim]
                self.head(
                    qkv,
                    h,
                    seq_len,
                    mask,
                    b,
                    path,
                    scratch,
                    MatMut::row_major(&mut out, seq_len, head_dim)?,
                )?;
                Ok(out)
            })
            .collect::<TensorResult<Vec<Vec<f32>>>>()?;
        for (h, out) in heads.iter().enumerate() {
            for (t, row) in out.chunks_exact(head_dim).enumerate() {
                ctx[t * dim + h * head_dim..t * dim + (h + 1) * head_dim].copy_from_slice(row);
            }
        }
        Ok(())
    }

    /// All heads of one sequence, one after another: `ctx[:, h] = softmax(q_h · k_hᵀ ·
    /// scale) · v_h`, each head writing its columns of `ctx` through a strided view.
    ///
    /// # Shapes
    /// - `qkv`: `[seq_len, 3·D]`, `ctx`: `[seq_len, D]`
    fn attend(
        &self,
        qkv: &[f32],
        ctx: &mut [f32],
        seq_len: usize,
        mask: AttentionMask<'_>,
        b: usize,
    ) -> TensorResult<()> {
        let (dim, head_dim) = (self.dim(), self.head_dim());
        let path = self.path();
        let mut scratch = HeadScratch::default();
        for h in 0..self.n_heads {
            let out = MatMut::new(&mut ctx[h * head_dim..], seq_len, head_dim, dim, 1)?;
            self.head(qkv, h, seq_len, mask, b, path, &mut scratch, out)?;
        }
        Ok(())
    }
}

/// What one head works in: the `[seq_len, seq_len]` scores of the two-pass path, or the
/// tiles of the tiled one.
#[derive(Debug, Default)]
struct HeadScratch {
    scores: Vec<f32>,
    tiles: AttentionTiles,
}

/// The buffers attention works in: q/k/v `[rows, 3·D]` and context `[rows, D]`.
#[derive(Debug, Clone, Default)]
pub struct AttentionScratch {
    qkv: Vec<f32>,
    context: Vec<f32>,
}

impl AttentionScratch {
    /// Makes room for `rows` tokens of width `dim`, so that a forward pass does not
    /// allocate: memory is taken from the calling thread's heap (`glibc` gives each thread
    /// an arena of its own, and a forward pass moved onto a rayon worker would otherwise
    /// grow the worker's arena instead of reusing what loading the checkpoint freed).
    pub fn reserve(&mut self, rows: usize, dim: usize) {
        let len = rows.saturating_mul(dim);
        self.qkv
            .reserve(len.saturating_mul(3).saturating_sub(self.qkv.len()));
        self.context.reserve(len.saturating_sub(self.context.len()));
    }
}

fn check_square(what: &'static str, p: &Linear, dim: usize) -> TensorResult<()> {
    if p.in_features() != dim || p.out_features() != dim {
        return Err(TensorError::ShapeMismatch {
            op: "MultiHeadAttention",
            what,
            expected: vec![dim, dim],
            got: vec![p.out_features(), p.in_features()],
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vit_tensor::LcgRng;

    /// Attention computed element by element in f64.
    fn naive(attn: &MultiHeadAttention, x: &[f32], t: usize) -> Vec<f32> {
        naive_masked(attn, x, t, &|_, _| true)
    }

    /// Attention in f64 where query `i` sees key `j` when `sees(i, j)`; a query that sees
    /// nothing gets a zero context row.
    fn naive_masked(
        attn: &MultiHeadAttention,
        x: &[f32],
        t: usize,
        sees: &dyn Fn(usize, usize) -> bool,
    ) -> Vec<f32> {
        let d = attn.dim();
        let hd = attn.head_dim();
        let qkv = attn.qkv().forward(x, t).unwrap();
        let mut ctx = vec![0.0f32; t * d];
        for h in 0..attn.n_heads() {
            for i in 0..t {
                let mut s: Vec<f64> = (0..t)
                    .map(|j| {
                        if !sees(i, j) {
                            return f64::NEG_INFINITY;
                        }
                        (0..hd)
                            .map(|e| {
                                f64::from(qkv[i * 3 * d + h * hd + e])
                                    * f64::from(qkv[j * 3 * d + d + h * hd + e])
                            })
                            .sum::<f64>()
                            / (hd as f64).sqrt()
                    })
                    .collect();
                let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                s.iter_mut().for_each(|v| *v = (*v - m).exp());
                let z: f64 = s.iter().sum();
                if m == f64::NEG_INFINITY {
                    continue;
                }
                for e in 0..hd {
                    let acc: f64 = (0..t)
                        .map(|j| s[j] / z * f64::from(qkv[j * 3 * d + 2 * d + h * hd + e]))
                        .sum();
                    ctx[i * d + h * hd + e] = acc as f32;
                }
            }
        }
        attn.out_proj().forward(&ctx, t).unwrap()
    }

    #[test]
    fn matches_naive_attention_per_sequence() {
        let mut rng = LcgRng::new(11);
        let (d, heads, t) = (12, 3, 5);
        let lin = |rng: &mut LcgRng| {
            Linear::new(
                rng.normal_vec(d * d, 0.0, 0.4),
                Some(rng.normal_vec(d, 0.0, 0.4)),
                d,
                d,
            )
            .unwrap()
        };
        let attn = MultiHeadAttention::new(
            lin(&mut rng),
            lin(&mut rng),
            lin(&mut rng),
            lin(&mut rng),
            heads,
        )
        .unwrap();
        let x = rng.normal_vec(2 * t * d, 0.0, 1.0);
        let y = attn.forward(&x, 2, t).unwrap();
        for b in 0..2 {
            let want = naive(&attn, &x[b * t * d..(b + 1) * t * d], t);
            for (g, w) in y[b * t * d..(b + 1) * t * d].iter().zip(&want) {
                assert!((g - w).abs() < 1e-5, "{g} vs {w}");
            }
        }
    }

    fn random_attention(rng: &mut LcgRng, d: usize, heads: usize) -> MultiHeadAttention {
        let mut lin = || {
            Linear::new(
                rng.normal_vec(d * d, 0.0, 0.4),
                Some(rng.normal_vec(d, 0.0, 0.4)),
                d,
                d,
            )
            .unwrap()
        };
        MultiHeadAttention::new(lin(), lin(), lin(), lin(), heads).unwrap()
    }

    #[test]
    fn causal_and_padding_masks_match_naive_attention() {
        let mut rng = LcgRng::new(5);
        let (d, heads, t) = (12, 3, 6);
        let attn = random_attention(&mut rng, d, heads);
        let x = rng.normal_vec(3 * t * d, 0.0, 1.0);
        // Sequence 0 has 6 real tokens, 1 has 3 (right padding), 2 is left-padded by 2.
        let lens = [6usize, 3, 6];
        let mut keep = vec![true; 3 * t];
        keep[t + 3..2 * t].fill(false);
        keep[2 * t..2 * t + 2].fill(false);
        for (causal, path) in [false, true]
            .into_iter()
            .flat_map(|c| [(c, AttentionPath::TwoPass), (c, AttentionPath::Tiled)])
        {
            let attn = attn.clone().with_path(path);
            let mask = AttentionMask {
                causal,
                keep: Some(&keep),
            };
            // Batch ≥ threads and batch < threads take the two parallel paths.
            for threads in [1, 4] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let y = pool
                    .install(|| attn.forward_masked(&x, 3, t, mask))
                    .unwrap();
                for b in 0..3 {
                    let sees = |i: usize, j: usize| {
                        !(causal && j > i) && keep[b * t + j] && (b != 1 || j < lens[1])
                    };
                    let want = naive_masked(&attn, &x[b * t * d..(b + 1) * t * d], t, &sees);
                    for (g, w) in y[b * t * d..(b + 1) * t * d].iter().zip(&want) {
                        assert!(
                            (g - w).abs() < 1e-5,
                            "{path}, causal {causal}, seq {b}: {g} vs {w}"
                        );
                    }
                }
            }
        }
    }

    /// A sequence longer than one key block (300 tokens: two blocks and a cut-short one)
    /// matches attention in f64 on both paths, with and without masks, at one thread (heads
    /// one after another) and two (heads in parallel).
    #[test]
    fn long_sequences_agree_on_both_paths() {
        let mut rng = LcgRng::new(21);
        let (d, heads, t) = (32, 2, 300);
        let attn = random_attention(&mut rng, d, heads);
        let x = rng.normal_vec(t * d, 0.0, 1.0);
        let keep: Vec<bool> = (0..t).map(|j| j % 7 != 3).collect();
        for mask in [
            AttentionMask::NONE,
            AttentionMask::causal(),
            AttentionMask::causal().with_padding(&keep),
        ] {
            for threads in [1, 2] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let run = |path| {
                    let a = attn.clone().with_path(path);
                    pool.install(|| a.forward_masked(&x, 1, t, mask)).unwrap()
                };
                let sees = |i: usize, j: usize| mask.allows(0, t, i, j);
                let want = naive_masked(&attn, &x, t, &sees);
                for path in [AttentionPath::TwoPass, AttentionPath::Tiled] {
                    let got = run(path);
                    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                        assert!(
                            (g - w).abs() < 1e-5 * (1.0 + w.abs()),
                            "{path}, {mask:?}, element {i}: {g} vs {w}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn attention_paths_parse_and_resolve() {
        for p in [
            AttentionPath::Auto,
            AttentionPath::TwoPass,
            AttentionPath::Tiled,
        ] {
            assert_eq!(p.name().parse::<AttentionPath>().unwrap(), p);
        }
        let e = "fused".parse::<AttentionPath>().unwrap_err();
        assert!(e.to_string().contains("fused"), "{e}");
        assert_eq!(AttentionPath::Tiled.resolve(), AttentionPath::Tiled);
        assert_eq!(AttentionPath::TwoPass.resolve(), AttentionPath::TwoPass);
        assert_eq!(AttentionPath::Auto.resolve(), AttentionPath::TwoPass);
    }

    #[test]
    fn a_query_that_sees_no_key_gets_zero_context() {
        let mut rng = LcgRng::new(8);
        let (d, t) = (8, 3);
        let attn = random_attention(&mut rng, d, 2);
        let x = rng.normal_vec(t * d, 0.0, 1.0);
        let keep = [false, true, true];
        let y = attn
            .forward_masked(&x, 1, t, AttentionMask::causal().with_padding(&keep))
            .unwrap();
        // Query 0 sees no key: its context is 0, so its output is out_proj's bias alone.
        let bias = attn.out_proj().bias().unwrap();
        assert_eq!(&y[..d], bias);
        assert!(y.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn causal_outputs_do_not_depend_on_later_tokens() {
        let mut rng = LcgRng::new(9);
        let (d, t) = (12, 7);
        let attn = random_attention(&mut rng, d, 4);
        let x = rng.normal_vec(t * d, 0.0, 1.0);
        let full = attn
            .forward_masked(&x, 1, t, AttentionMask::causal())
            .unwrap();
        for prefix in 1..t {
            let part = attn
                .forward_masked(&x[..prefix * d], 1, prefix, AttentionMask::causal())
                .unwrap();
            for (a, b) in part.iter().zip(&full[..prefix * d]) {
                assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn a_padding_mask_of_the_wrong_length_is_refused() {
        let mut rng = LcgRng::new(1);
        let attn = MultiHeadAttention::random(8, 2, 0.1, &mut rng).unwrap();
        let err = attn
            .forward_masked(
                &[0.0; 2 * 3 * 8],
                2,
                3,
                AttentionMask::NONE.with_padding(&[true; 5]),
            )
            .unwrap_err();
        assert!(matches!(
            err,
            TensorError::LengthMismatch {
                expected: 6,
                got: 5,
                ..
            }
        ));
    }

    #[test]
    fn checks_heads_and_shapes() {
        let mut rng = LcgRng::new(0);
        assert!(matches!(
            MultiHeadAttention::random(12, 5, 0.02, &mut rng),
            Err(TensorError::InvalidArgument {
                what: "n_heads",
                ..
            })
        ));
        let attn = MultiHeadAttention::random(12, 4, 0.02, &mut rng).unwrap();
        assert_eq!(attn.head_dim(), 3);
        assert!(matches!(
            attn.forward(&[0.0; 25], 1, 2),
            Err(TensorError::LengthMismatch {
                expected: 24,
                got: 25,
                ..
            })
        ));
        let bad = Linear::random(12, 8, true, 0.02, &mut rng);
        let ok = Linear::random(12, 12, true, 0.02, &mut rng);
        let err = MultiHeadAttention::new(ok.clone(), bad, ok.clone(), ok, 4).unwrap_err();
        assert_eq!(
            err.to_string(),
            "MultiHeadAttention: k_proj has shape [8, 12], expected [12, 12]"
        );
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;
    use vit_tensor::LcgRng;

    /// A random attention layer and batch: the output keeps the input's shape, and each
    /// sequence's output depends only on that sequence.
    #[derive(Debug, Clone)]
    struct AttentionProblem {
        head_dim: usize,
        n_heads: usize,
        batch: usize,
        seq_len: usize,
        seed: u64,
    }

    fn problems() -> impl Strategy<Value = AttentionProblem> {
        (1usize..7, 1usize..4, 0usize..4, 1usize..9, any::<u64>()).prop_map(
            |(head_dim, n_heads, batch, seq_len, seed)| AttentionProblem {
                head_dim,
                n_heads,
                batch,
                seq_len,
                seed,
            },
        )
    }

    impl AttentionProblem {
        fn check(&self) -> Result<(), TestCaseError> {
            let mut rng = LcgRng::new(self.seed);
            let d = self.head_dim * self.n_heads;
            let attn = MultiHeadAttention::random(d, self.n_heads, 0.5, &mut rng).unwrap();
            let x = rng.normal_vec(self.batch * self.seq_len * d, 0.0, 1.0);
            let y = attn.forward(&x, self.batch, self.seq_len).unwrap();
            prop_assert_eq!(y.len(), x.len());
            let per = self.seq_len * d;
            for b in 0..self.batch {
                let alone = attn
                    .forward(&x[b * per..(b + 1) * per], 1, self.seq_len)
                    .unwrap();
                // Bit-identical with matrixmultiply; the `gemm` backend may order a row's dot
                // products differently when the number of rows changes.
                for (a, y) in alone.iter().zip(&y[b * per..(b + 1) * per]) {
                    prop_assert!((a - y).abs() <= 1e-5 * y.abs().max(1.0), "{} vs {}", a, y);
                }
            }
            Ok(())
        }
    }

    proptest! {
        #[test]
        fn attention_shapes_and_batch_independence(p in problems()) {
            p.check()?;
        }
    }
}
