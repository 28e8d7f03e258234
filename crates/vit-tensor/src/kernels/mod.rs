//! The packed-weight GEMM's micro-kernels and their run-time dispatch: with `gemm.rs`, the
//! only `unsafe` code of the workspace.
//!
//! A micro-kernel computes one output tile `acc = A[rows, kc] · B[kc, panels · 16]`, where
//! `A` is packed column by column (`[kc, rows]`: the `rows` values of one inner index are
//! adjacent, so the kernel reads one stream) and `B` is held as column panels of [`PANEL`]
//! columns, each `[kc, 16]` contiguous (the layout [`crate::PackedWeight`] stores weights
//! in). The tile is summed in vector registers over the whole `kc` and written once, from
//! the registers into the output, with the bias added and, when asked, onto what the output
//! holds (masked loads and stores for a last panel cut short by the matrix); the activation
//! is the safe caller's business.
//!
//! Three paths, chosen at run time ([`kernel_path`]), so one build is fast on every x86-64:
//! - [`KernelPath::Avx512`]: `zmm` registers, tiles up to 12 × 32 (24 accumulators; per
//!   inner step 2 panel rows loaded, 12 values of `A` broadcast: the shape of BLIS's
//!   Skylake-X kernel, whose panel slice stays in L1);
//! - [`KernelPath::Avx2Fma`]: `ymm` + FMA, tiles up to 6 × 16 (12 accumulators);
//! - [`KernelPath::Generic`]: portable Rust the compiler vectorises for the baseline ISA.
//!
//! The packed layout is the same for all three, so the path can change between two calls
//! (tests force each one the machine has, [`force_kernel_path`]; the environment variable
//! [`KERNEL_ENV`] does it for a whole process) without repacking.

pub mod int8;
#[cfg(target_arch = "x86_64")]
mod x86;
#[cfg(target_arch = "x86_64")]
mod x86_int8;

pub use crate::ops::packed::PACKED_KERNELS;

use crate::error::{TensorError, TensorResult};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

/// Columns per packed panel: one `zmm`, two `ymm` registers of `f32`.
pub const PANEL: usize = 16;
/// Most rows a micro-kernel tile holds (the AVX-512 path; AVX2 takes 6).
pub const MAX_ROWS: usize = 12;
/// Most panels a micro-kernel tile spans (the AVX-512 path; AVX2 and generic take 1).
pub const MAX_PANELS: usize = 2;

/// Environment variable that forces a kernel path for the process: `avx512`, `avx2` or
/// `generic` (unset or `auto`: the best the CPU supports).
pub const KERNEL_ENV: &str = "VIT_TENSOR_KERNEL";

/// A set of micro-kernels for one instruction-set level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KernelPath {
    /// AVX-512F (x86-64 v4).
    Avx512,
    /// AVX2 + FMA (x86-64 v3).
    Avx2Fma,
    /// Portable Rust, no run-time requirement.
    Generic,
}

impl KernelPath {
    /// Every path, fastest first.
    pub const ALL: [KernelPath; 3] = [KernelPath::Avx512, KernelPath::Avx2Fma, KernelPath::Generic];

    /// The name [`KERNEL_ENV`] and `clip-vision info` use.
    pub fn name(self) -> &'static str {
        match self {
            KernelPath::Avx512 => "avx512",
            KernelPath::Avx2Fma => "avx2",
            KernelPath::Generic => "generic",
        }
    }

    /// Whether this CPU can run the path (checked at run time).
    pub fn is_supported(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx2Fma => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(not(target_arch = "x86_64"))]
            KernelPath::Avx512 | KernelPath::Avx2Fma => false,
            KernelPath::Generic => true,
        }
    }

    /// The paths this CPU supports, fastest first.
    pub fn supported() -> Vec<KernelPath> {
        Self::ALL.into_iter().filter(|p| p.is_supported()).collect()
    }

    /// Most rows one tile of this path holds.
    pub fn max_rows(self) -> usize {
        match self {
            KernelPath::Avx512 | KernelPath::Generic => MAX_ROWS,
            KernelPath::Avx2Fma => 6,
        }
    }

    /// Most panels one tile of this path spans.
    pub fn max_panels(self) -> usize {
        match self {
            KernelPath::Avx512 => MAX_PANELS,
            KernelPath::Avx2Fma | KernelPath::Generic => 1,
        }
    }

    fn code(self) -> u8 {
        match self {
            KernelPath::Avx512 => 1,
            KernelPath::Avx2Fma => 2,
            KernelPath::Generic => 3,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.code() == code)
    }
}

impl std::fmt::Display for KernelPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for KernelPath {
    type Err = TensorError;

    fn from_str(s: &str) -> TensorResult<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| TensorError::InvalidArgument {
                op: "kernel path",
                what: "name",
                value: s.to_owned(),
                reason: "expected avx512, avx2 or generic",
            })
    }
}

/// The vector extensions this CPU has among those the kernels (here, in `pulp` and in the
/// `gemm` crate) can use, as detected at run time, in a fixed order.
pub fn cpu_features() -> Vec<&'static str> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        [
            ("sse4.2", has!("sse4.2")),
            ("avx", has!("avx")),
            ("avx2", has!("avx2")),
            ("fma", has!("fma")),
            ("f16c", has!("f16c")),
            ("avx512f", has!("avx512f")),
            ("avx512bw", has!("avx512bw")),
            ("avx512vl", has!("avx512vl")),
            ("avx512vnni", has!("avx512vnni")),
            ("avx512bf16", has!("avx512bf16")),
            ("avxvnni", has!("avxvnni")),
        ]
        .into_iter()
        .filter_map(|(name, yes)| yes.then_some(name))
        .collect()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Vec::new()
    }
}

/// The vectors the element-wise kernels (softmax, LayerNorm, activations, int8 quantisation:
/// `pulp` dispatches) run on here: `"avx512"` (x86-64-v4), `"avx2+fma"` (x86-64-v3) or
/// `"scalar"`. An AVX2 machine reporting `"scalar"` is a build without `pulp`'s `x86-v3`
/// feature: each `mul_add` is then a libm call.
pub fn elementwise_simd() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    match pulp::Arch::new() {
        pulp::Arch::V4(_) => return "avx512",
        pulp::Arch::V3(_) => return "avx2+fma",
        _ => {}
    }
    "scalar"
}

/// The path set by [`force_kernel_path`] (0: none).
static FORCED: AtomicU8 = AtomicU8::new(0);

fn unsupported(path: KernelPath) -> TensorError {
    TensorError::InvalidArgument {
        op: "kernel path",
        what: "path",
        value: path.name().to_owned(),
        reason: "this CPU does not support it",
    }
}

/// The path [`KERNEL_ENV`] asks for: `Ok(None)` when unset, empty or `auto`.
///
/// # Errors
/// [`crate::TensorError::InvalidArgument`] for an unknown name or a path this CPU lacks.
pub fn env_kernel_path() -> TensorResult<Option<KernelPath>> {
    match std::env::var(KERNEL_ENV) {
        Ok(v) if !v.is_empty() && v != "auto" => {
            let path: KernelPath = v.parse()?;
            if path.is_supported() {
                Ok(Some(path))
            } else {
                Err(unsupported(path))
            }
        }
        _ => Ok(None),
    }
}

/// Forces `path` for every later product of this process (`None`: back to automatic).
///
/// # Errors
/// [`crate::TensorError::InvalidArgument`] when this CPU does not support `path`.
pub fn force_kernel_path(path: Option<KernelPath>) -> TensorResult<()> {
    match path {
        Some(p) if !p.is_supported() => Err(unsupported(p)),
        Some(p) => {
            FORCED.store(p.code(), Ordering::Relaxed);
            Ok(())
        }
        None => {
            FORCED.store(0, Ordering::Relaxed);
            Ok(())
        }
    }
}

/// The path products run on: the forced one, else [`KERNEL_ENV`]'s, else the fastest this
/// CPU supports. A bad [`KERNEL_ENV`] is reported once on stderr and ignored (a program
/// that wants it to be an error checks [`env_kernel_path`] at start).
pub fn kernel_path() -> KernelPath {
    if let Some(p) = KernelPath::from_code(FORCED.load(Ordering::Relaxed)) {
        return p;
    }
    static AUTO: OnceLock<KernelPath> = OnceLock::new();
    *AUTO.get_or_init(|| {
        let best = KernelPath::supported()[0];
        match env_kernel_path() {
            Ok(Some(p)) => p,
            Ok(None) => best,
            Err(e) => {
                eprintln!("warning: {KERNEL_ENV}: {e}; using {best}");
                best
            }
        }
    })
}

/// Where a tile lands: element `(r, c)` of the tile at `out[r · ldo + (c / 16) · panel_step
/// + c % 16]`, for `c < cols`; `panel_step = 16` is a row-major tile.
#[derive(Debug)]
pub struct TileOut<'a> {
    /// The output from the tile's first element on.
    pub out: &'a mut [f32],
    /// Row stride of `out`.
    pub ldo: usize,
    /// Distance in `out` from one panel of 16 columns to the next (at least 16): 16 for a
    /// row-major tile, more to write each panel into a block of its own.
    pub panel_step: usize,
    /// Columns of the tile that exist (the last panel may be cut short by the matrix).
    pub cols: usize,
    /// Added to every row, `[cols]`.
    pub bias: Option<&'a [f32]>,
    /// Add the tile (and bias) onto what `out` holds, instead of overwriting it.
    pub add: bool,
}

/// `out[r · ldo + (c / 16) · panel_step + c % 16] (+)= bias[c] + Σ_{k < kc} a[k · rows + r] ·
/// b[(c / 16) · panel_stride + k · 16 + c % 16]` for `r < rows`, `c < dst.cols`, on `path`, summed in registers and written once, straight
/// from them. Nothing else of `out` is touched.
///
/// # Shapes
/// - `a`: `[kc, rows]` (a tile of `A`, packed column by column)
/// - `b`: `panels` panels of `[kc, 16]`, panel `p` at `p · panel_stride`
///
/// # Panics
/// When an argument breaks the contract above: `rows` outside `1..=path.max_rows()`, `panels`
/// outside `1..=path.max_panels()`, `dst.cols` outside `(panels − 1) · 16 + 1 ..= panels ·
/// 16`, `kc == 0`, `a`, `b`, `dst.out` or the bias too short, `panel_stride < kc · 16`,
/// `dst.ldo` shorter than a row (`dst.cols`, or 16 when the panels are apart), `dst.panel_step < 16`, or `path` unsupported by this CPU. These are the caller's
/// invariants, not input.
#[allow(clippy::too_many_arguments)]
pub fn tile(
    path: KernelPath,
    a: &[f32],
    rows: usize,
    b: &[f32],
    panel_stride: usize,
    panels: usize,
    kc: usize,
    dst: TileOut<'_>,
) {
    let TileOut {
        out,
        ldo,
        panel_step,
        cols,
        bias,
        add,
    } = dst;
    assert!(
        (1..=path.max_rows()).contains(&rows),
        "tile rows {rows} on {path}"
    );
    assert!(
        (1..=path.max_panels()).contains(&panels),
        "tile panels {panels} on {path}"
    );
    // A row spans `cols` when the panels sit side by side, one panel's width otherwise.
    let row_width = if panel_step == PANEL {
        cols
    } else {
        cols.min(PANEL)
    };
    assert!(
        cols > (panels - 1) * PANEL && cols <= panels * PANEL && ldo >= row_width,
        "tile cols {cols}, ldo {ldo}, panels {panels}, panel step {panel_step}"
    );
    // The lengths below are computed without wrapping: a bound that wrapped around (a huge
    // `ldo`, say) would let a short buffer pass. `None`, an overflow, fits no buffer.
    let fits = |len: usize, need: Option<usize>| need.is_some_and(|n| len >= n);
    assert!(
        kc > 0 && fits(panel_stride, kc.checked_mul(PANEL)),
        "tile kc {kc}, panel stride {panel_stride}"
    );
    assert!(
        fits(a.len(), kc.checked_mul(rows)),
        "tile A: {} elements",
        a.len()
    );
    let b_need = (panels - 1)
        .checked_mul(panel_stride)
        .and_then(|n| n.checked_add(kc * PANEL));
    assert!(fits(b.len(), b_need), "tile B: {} elements", b.len());
    assert!(panel_step >= PANEL, "tile panel step {panel_step}");
    // `cols > (panels − 1) · 16` was asserted above, so the last term does not wrap.
    let out_need = (rows - 1)
        .checked_mul(ldo)
        .and_then(|n| n.checked_add((panels - 1).checked_mul(panel_step)?))
        .and_then(|n| n.checked_add(cols - (panels - 1) * PANEL));
    assert!(
        fits(out.len(), out_need),
        "tile out: {} elements",
        out.len()
    );
    assert!(
        bias.is_none_or(|b| b.len() >= cols),
        "tile bias: {:?} elements",
        bias.map(<[f32]>::len)
    );
    assert!(path.is_supported(), "kernel path {path} unsupported");
    match path {
        #[cfg(target_arch = "x86_64")]
        KernelPath::Avx512 => {
            let out = x86::Out::new(out, ldo, panel_step, cols, bias, add);
            // SAFETY: the CPU supports AVX-512F (asserted: `path.is_supported()`).
            // SAFETY: rows ∈ 1..=12, panels ∈ 1..=2, kc ≥ 1, cols in the last panel, and the
            //   lengths of `a`, `b`, `out` (with the panel step) and the bias (asserted
            //   above) are exactly `x86::avx512`'s bounds; `out` came from a `&mut` borrow: nothing aliases it.
            unsafe { x86::avx512(a, rows, b, panel_stride, panels, kc, out) }
        }
        #[cfg(target_arch = "x86_64")]
        KernelPath::Avx2Fma => {
            let out = x86::Out::new(out, ldo, panel_step, cols, bias, add);
            // SAFETY: the CPU supports AVX2 and FMA (asserted: `path.is_supported()`).
            // SAFETY: rows ∈ 1..=6 (max_rows), panels = 1 (max_panels), kc ≥ 1, cols ≤ 16,
            //   and the lengths of `a`, `b`, `out` and the bias (asserted above) are exactly
            //   `x86::avx2`'s bounds; `out` came from a `&mut` borrow: nothing aliases it.
            unsafe { x86::avx2(a, rows, b, kc, out) }
        }
        _ => generic(
            a,
            rows,
            b,
            kc,
            TileOut {
                out,
                ldo,
                panel_step: PANEL,
                cols,
                bias,
                add,
            },
        ),
    }
}

/// The portable tile, one panel: plain loops over slices the compiler vectorises.
fn generic(a: &[f32], rows: usize, b: &[f32], kc: usize, dst: TileOut<'_>) {
    for r in 0..rows {
        let mut sum = [0.0f32; PANEL];
        let a_col = a[..kc * rows].iter().skip(r).step_by(rows);
        for (&av, b_row) in a_col.zip(b.chunks_exact(PANEL)) {
            for (s, &bv) in sum.iter_mut().zip(b_row) {
                *s += av * bv;
            }
        }
        let o = &mut dst.out[r * dst.ldo..r * dst.ldo + dst.cols];
        for (c, (o, &s)) in o.iter_mut().zip(&sum).enumerate() {
            let v = s + dst.bias.map_or(0.0, |b| b[c]);
            *o = if dst.add { v + *o } else { v };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The element-wise kernels run on the widest `pulp` level the CPU supports (a build
    /// missing one of `pulp`'s level features falls back to scalar there).
    #[test]
    fn element_wise_kernels_use_the_widest_vectors_the_cpu_has() {
        #[cfg(target_arch = "x86_64")]
        let widest = if pulp::x86::V4::try_new().is_some() {
            "avx512"
        } else if pulp::x86::V3::try_new().is_some() {
            "avx2+fma"
        } else {
            "scalar"
        };
        #[cfg(not(target_arch = "x86_64"))]
        let widest = "scalar";
        assert_eq!(
            elementwise_simd(),
            widest,
            "CPU features: {:?}",
            cpu_features()
        );
    }

    /// A tile whose two panels go to blocks of their own (`panel_step` > 16) holds the
    /// same values as the row-major tile, and writes nothing between the blocks.
    #[test]
    fn split_panels_land_in_their_own_blocks() {
        let mut rng = crate::LcgRng::new(3);
        let (kc, cols) = (9, 27);
        for path in KernelPath::supported() {
            if path.max_panels() < 2 {
                continue;
            }
            let rows = path.max_rows();
            let a: Vec<f32> = (0..kc * rows).map(|_| rng.uniform() - 0.5).collect();
            let b: Vec<f32> = (0..2 * kc * PANEL).map(|_| rng.uniform() - 0.5).collect();
            let mut dense = vec![0.0f32; rows * cols];
            let dst = TileOut {
                out: &mut dense,
                ldo: cols,
                panel_step: PANEL,
                cols,
                bias: None,
                add: false,
            };
            tile(path, &a, rows, &b, kc * PANEL, 2, kc, dst);
            let step = rows * PANEL + 3;
            let mut split = vec![f32::NAN; step + rows * PANEL];
            let dst = TileOut {
                out: &mut split,
                ldo: PANEL,
                panel_step: step,
                cols,
                bias: None,
                add: false,
            };
            tile(path, &a, rows, &b, kc * PANEL, 2, kc, dst);
            for r in 0..rows {
                for c in 0..cols {
                    let at = r * PANEL + (c / PANEL) * step + c % PANEL;
                    assert_eq!(split[at], dense[r * cols + c], "{path}: ({r}, {c})");
                }
            }
            let written = rows * cols; // 16 in the first block, 11 in the second, per row
            assert_eq!(
                split.iter().filter(|v| !v.is_nan()).count(),
                written,
                "{path}"
            );
        }
    }

    /// `tile` on `path` against an f64 triple loop, into an output wider than the tile
    /// whose other elements must stay untouched.
    #[allow(clippy::too_many_arguments)]
    fn check(
        path: KernelPath,
        rows: usize,
        panels: usize,
        cut: usize,
        kc: usize,
        bias: bool,
        add: bool,
        seed: u64,
    ) -> Result<(), TestCaseError> {
        let mut rng = crate::LcgRng::new(seed);
        let panel_stride = kc * PANEL + 16;
        let cols = panels * PANEL - cut % PANEL;
        let ldo = cols + 5;
        let a: Vec<f32> = (0..kc * rows).map(|_| rng.uniform() - 0.5).collect();
        let b: Vec<f32> = (0..(panels - 1) * panel_stride + kc * PANEL)
            .map(|_| rng.uniform() - 0.5)
            .collect();
        let bias_v: Vec<f32> = (0..cols).map(|_| rng.uniform() - 0.5).collect();
        let base: Vec<f32> = (0..(rows + 1) * ldo).map(|_| rng.uniform() - 0.5).collect();
        let mut out: Vec<f32> = (0..(rows + 1) * ldo)
            .map(|i| if add { base[i] } else { f32::NAN })
            .collect();
        let dst = TileOut {
            out: &mut out,
            ldo,
            panel_step: PANEL,
            cols,
            bias: bias.then_some(&bias_v[..]),
            add,
        };
        tile(path, &a, rows, &b, panel_stride, panels, kc, dst);
        for r in 0..=rows {
            for c in 0..ldo {
                let got = out[r * ldo + c];
                if r >= rows || c >= cols {
                    let untouched = if add {
                        got == base[r * ldo + c]
                    } else {
                        got.is_nan()
                    };
                    prop_assert!(untouched, "{path}: ({r}, {c}) outside the tile was written");
                    continue;
                }
                let (p, j) = (c / PANEL, c % PANEL);
                let mut want: f64 = (0..kc)
                    .map(|k| {
                        f64::from(a[k * rows + r]) * f64::from(b[p * panel_stride + k * PANEL + j])
                    })
                    .sum();
                if bias {
                    want += f64::from(bias_v[c]);
                }
                if add {
                    want += f64::from(base[r * ldo + c]);
                }
                prop_assert!(
                    (f64::from(got) - want).abs() <= 1e-5 * (kc as f64).sqrt(),
                    "{path} ({r}, {c}): {got} vs {want}"
                );
            }
        }
        Ok(())
    }

    proptest! {
        /// Every path this CPU has, every tile shape, against f64.
        #[test]
        fn every_supported_path_matches_f64(rows in 1usize..=MAX_ROWS, panels in 1usize..=MAX_PANELS, cut in 0usize..16, kc in 1usize..40, bias: bool, add: bool, seed: u64) {
            for path in KernelPath::supported() {
                check(path, rows.min(path.max_rows()), panels.min(path.max_panels()), cut, kc, bias, add, seed)?;
            }
        }
    }

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for p in KernelPath::ALL {
            assert_eq!(p.name().parse::<KernelPath>().unwrap(), p);
        }
        let err = "sse9".parse::<KernelPath>().unwrap_err();
        assert!(err.to_string().contains("sse9"), "{err}");
        assert!(KernelPath::Generic.is_supported());
        assert_eq!(KernelPath::supported().last(), Some(&KernelPath::Generic));
    }

    #[test]
    #[should_panic(expected = "tile rows 13")]
    fn a_tile_past_max_rows_panics_before_any_read() {
        let mut out = [0.0; 13 * 16];
        let dst = TileOut {
            out: &mut out,
            ldo: 16,
            panel_step: PANEL,
            cols: 16,
            bias: None,
            add: false,
        };
        tile(
            KernelPath::Generic,
            &[0.0; 13],
            13,
            &[0.0; 16],
            16,
            1,
            1,
            dst,
        );
    }

    #[test]
    #[should_panic(expected = "tile B")]
    fn a_short_panel_buffer_panics_before_any_read() {
        let mut out = [0.0; 16];
        let dst = TileOut {
            out: &mut out,
            ldo: 16,
            panel_step: PANEL,
            cols: 16,
            bias: None,
            add: false,
        };
        let path = KernelPath::supported()[0];
        tile(path, &[0.0; 4], 1, &[0.0; 63], 64, 1, 4, dst);
    }

    #[test]
    #[should_panic(expected = "tile out")]
    fn a_short_output_panics_before_any_write() {
        let mut out = [0.0; 2 * 16 - 1];
        let dst = TileOut {
            out: &mut out,
            ldo: 16,
            panel_step: PANEL,
            cols: 16,
            bias: None,
            add: true,
        };
        let path = KernelPath::supported()[0];
        tile(path, &[0.0; 2], 2, &[0.0; 16], 16, 1, 1, dst);
    }

    /// A row stride so large that the output's bound would wrap to a small number (with
    /// unchecked arithmetic, `(2 − 1) · ldo + 16` is 0 here) still panics.
    #[test]
    #[should_panic(expected = "tile out")]
    fn a_wrapping_output_bound_panics_before_any_write() {
        let mut out = [0.0; 16];
        let dst = TileOut {
            out: &mut out,
            ldo: usize::MAX - 15,
            panel_step: PANEL,
            cols: 16,
            bias: None,
            add: false,
        };
        let path = KernelPath::supported()[0];
        tile(path, &[0.0; 2], 2, &[0.0; 16], 16, 1, 1, dst);
    }
}
