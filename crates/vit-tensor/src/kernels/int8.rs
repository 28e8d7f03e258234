//! The int8 micro-kernels and their dispatch: exact i32 sums of int8 weight panels times
//! quantized activations, for [`crate::ops::quant`].
//!
//! **Weight layout.** A weight is held as panels of [`PANEL`] output columns; a panel is
//! `⌈in / 4⌉` groups of [`GROUP_BYTES`] signed bytes, group `g` holding for each of the 16
//! columns its 4 weights of inner indices `4g .. 4g + 4` (`[groups, 16, 4]`, zero-padded).
//! It is the layout `vpdpbusd` reads, and the same for every path, so the path can change
//! between calls.
//!
//! **Activations** are rows of `lda` quantized values (`lda` a multiple of 4) in the format
//! the path reads ([`Int8Kernel::activations`]):
//! - [`Int8Kernel::Vnni512`]: `u8`, the symmetric int8 value plus 128 (`vpdpbusd` multiplies
//!   unsigned by signed bytes); the caller subtracts `128 · Σ_k w[k, c]` per column.
//! - [`Int8Kernel::Avx2`] (no VNNI; `vpmaddubsw` would saturate its 16-bit pair sums) and
//!   [`Int8Kernel::Generic`]: `i16`, the int8 value itself, multiplied by `vpmaddwd` (pairs
//!   of 16-bit products summed into 32 bits, exact for int8 operands).
//!
//! Every path computes the same integer sums, so their results are bit-identical.

use super::{kernel_path, KernelPath, PANEL};

/// Inner indices per group: the 4 bytes `vpdpbusd` sums per lane.
pub const GROUP: usize = 4;
/// Bytes of one group of a panel: 16 columns × 4 weights.
pub const GROUP_BYTES: usize = PANEL * GROUP;
/// Most rows of an int8 tile (the VNNI path; AVX2 takes 6, generic 4).
pub const MAX_ROWS: usize = 12;
/// Row stride of a tile's accumulators: two panels.
pub const ACC_STRIDE: usize = 2 * PANEL;
/// Accumulators of the largest tile, `[MAX_ROWS, 32]`.
pub const ACC_LEN: usize = MAX_ROWS * ACC_STRIDE;

/// The int8 micro-kernel set one [`KernelPath`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Int8Kernel {
    /// AVX-512 VNNI `vpdpbusd`: tiles up to 12 × 32.
    Vnni512,
    /// AVX2 `vpmaddwd` on sign-extended weights: tiles up to 6 × 16.
    Avx2,
    /// Portable Rust: tiles up to 4 × 16.
    Generic,
}

/// How a path wants its quantized activations (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivationFormat {
    /// `q + 128` as `u8`; the column sums are subtracted after the product.
    U8Offset,
    /// `q` as `i16`.
    I16,
}

/// Quantized activation rows, in one of the [`ActivationFormat`]s.
#[derive(Debug, Clone, Copy)]
pub enum Int8Rows<'a> {
    /// [`ActivationFormat::U8Offset`] values.
    U8(&'a [u8]),
    /// [`ActivationFormat::I16`] values.
    I16(&'a [i16]),
}

impl Int8Rows<'_> {
    fn len(&self) -> usize {
        match self {
            Int8Rows::U8(a) => a.len(),
            Int8Rows::I16(a) => a.len(),
        }
    }
}

impl Int8Kernel {
    /// The kernels `path` runs: on [`KernelPath::Avx512`], VNNI when the CPU has it, else
    /// the AVX2 ones (an AVX-512 CPU without VNNI, Skylake-X, has AVX2).
    pub fn for_path(path: KernelPath) -> Self {
        match path {
            KernelPath::Avx512 if has_vnni() => Int8Kernel::Vnni512,
            KernelPath::Avx512 | KernelPath::Avx2Fma => Int8Kernel::Avx2,
            KernelPath::Generic => Int8Kernel::Generic,
        }
    }

    /// The kernels of [`kernel_path`] (so [`super::force_kernel_path`] and
    /// [`super::KERNEL_ENV`] choose these too).
    pub fn current() -> Self {
        Self::for_path(kernel_path())
    }

    /// The name `clip-vision info` prints.
    pub fn name(self) -> &'static str {
        match self {
            Int8Kernel::Vnni512 => "avx512-vnni",
            Int8Kernel::Avx2 => "avx2-madd",
            Int8Kernel::Generic => "generic",
        }
    }

    /// Most rows one tile holds.
    pub fn max_rows(self) -> usize {
        match self {
            Int8Kernel::Vnni512 => MAX_ROWS,
            Int8Kernel::Avx2 => 6,
            Int8Kernel::Generic => 4,
        }
    }

    /// Most panels one tile spans.
    pub fn max_panels(self) -> usize {
        match self {
            Int8Kernel::Vnni512 => 2,
            Int8Kernel::Avx2 | Int8Kernel::Generic => 1,
        }
    }

    /// The activation format the kernels read.
    pub fn activations(self) -> ActivationFormat {
        match self {
            Int8Kernel::Vnni512 => ActivationFormat::U8Offset,
            Int8Kernel::Avx2 | Int8Kernel::Generic => ActivationFormat::I16,
        }
    }
}

impl std::fmt::Display for Int8Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

fn has_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `acc[r · 32 + c] = Σ_{k < 4 · kg} a[r · lda + k] · W[k, p0 · 16 + c]` for `r < rows`, `c <
/// panels · 16`, where `b` starts at panel `p0` and panel `p` of it sits at `p ·
/// panel_stride` (see the module docs for both layouts). Exact i32 sums; with
/// [`Int8Rows::U8`] the activations carry their +128 offset.
///
/// # Panics
/// When an argument breaks the contract: `rows` outside `1..=kernel.max_rows()`, `panels`
/// outside `1..=kernel.max_panels()`, `kg == 0`, `lda < 4 · kg`, `a` (in the kernel's format)
/// or `b` too short, `panel_stride < 64 · kg`, or `kernel` unsupported by this CPU. These are
/// the caller's invariants, not input.
#[allow(clippy::too_many_arguments)]
pub fn tile_i8(
    kernel: Int8Kernel,
    a: Int8Rows<'_>,
    lda: usize,
    rows: usize,
    b: &[i8],
    panel_stride: usize,
    panels: usize,
    kg: usize,
    acc: &mut [i32; ACC_LEN],
) {
    assert!(
        (1..=kernel.max_rows()).contains(&rows),
        "int8 tile rows {rows} on {kernel}"
    );
    assert!(
        (1..=kernel.max_panels()).contains(&panels),
        "int8 tile panels {panels} on {kernel}"
    );
    assert!(
        kg > 0 && lda >= GROUP * kg && panel_stride >= GROUP_BYTES * kg,
        "int8 tile kg {kg}, lda {lda}, panel stride {panel_stride}"
    );
    assert!(
        a.len() >= (rows - 1) * lda + GROUP * kg,
        "int8 tile A: {} values",
        a.len()
    );
    assert!(
        b.len() >= (panels - 1) * panel_stride + GROUP_BYTES * kg,
        "int8 tile B: {} bytes",
        b.len()
    );
    match (kernel, a) {
        #[cfg(target_arch = "x86_64")]
        (Int8Kernel::Vnni512, Int8Rows::U8(a)) => {
            assert!(has_vnni(), "int8 kernel {kernel} unsupported");
            // SAFETY: the CPU has AVX-512F and VNNI (asserted above).
            // SAFETY: rows, panels and kg are in range, and `a`, `b` and `acc` are long
            // enough for the reads and writes the kernel documents (asserted above; `acc`
            // holds 12 · 32 ≥ (rows − 1) · 32 + panels · 16).
            unsafe {
                super::x86_int8::vnni(
                    a.as_ptr(),
                    lda,
                    rows,
                    b.as_ptr(),
                    panel_stride,
                    panels,
                    kg,
                    acc.as_mut_ptr(),
                );
            }
        }
        #[cfg(target_arch = "x86_64")]
        (Int8Kernel::Avx2, Int8Rows::I16(a)) => {
            assert!(
                std::arch::is_x86_feature_detected!("avx2"),
                "int8 kernel {kernel} unsupported"
            );
            // SAFETY: the CPU has AVX2 (asserted above).
            // SAFETY: rows ≤ 6 and kg ≥ 1, and `a`, `b` (one panel) and `acc` (12 · 32 ≥
            // rows · 32) are long enough for what the kernel reads and writes (asserted
            // above).
            unsafe {
                super::x86_int8::avx2(a.as_ptr(), lda, rows, b.as_ptr(), kg, acc.as_mut_ptr());
            }
            // Each column's sum is the sum of its two halves, held side by side.
            for row in acc.chunks_exact_mut(ACC_STRIDE).take(rows) {
                let pairs: [i32; PANEL] = std::array::from_fn(|c| row[2 * c] + row[2 * c + 1]);
                row[..PANEL].copy_from_slice(&pairs);
            }
        }
        (Int8Kernel::Generic, Int8Rows::I16(a)) => generic(a, lda, rows, b, kg, acc),
        (kernel, _) => panic!(
            "int8 kernel {kernel} reads {:?} activations",
            kernel.activations()
        ),
    }
}

/// The portable kernel: one panel, i32 sums over the group's 64 bytes side by side (the
/// compiler vectorises the inner loop), each column's four then added.
fn generic(a: &[i16], lda: usize, rows: usize, b: &[i8], kg: usize, acc: &mut [i32; ACC_LEN]) {
    for r in 0..rows {
        let row = &a[r * lda..r * lda + GROUP * kg];
        let mut sums = [0i32; GROUP_BYTES];
        for (four, w) in row.chunks_exact(GROUP).zip(b.chunks_exact(GROUP_BYTES)) {
            for (m, (s, &wv)) in sums.iter_mut().zip(w).enumerate() {
                *s += i32::from(four[m % GROUP]) * i32::from(wv);
            }
        }
        for (c, out) in acc[r * ACC_STRIDE..r * ACC_STRIDE + PANEL]
            .iter_mut()
            .enumerate()
        {
            *out = sums[c * GROUP..(c + 1) * GROUP].iter().sum();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::LcgRng;

    /// Random int8 values in `[-127, 127]`.
    fn bytes(n: usize, rng: &mut LcgRng) -> Vec<i8> {
        (0..n)
            .map(|_| ((rng.next_u64() % 255) as i32 - 127) as i8)
            .collect()
    }

    fn supported() -> Vec<Int8Kernel> {
        let mut kernels: Vec<Int8Kernel> = KernelPath::supported()
            .into_iter()
            .map(Int8Kernel::for_path)
            .collect();
        kernels.dedup();
        kernels
    }

    /// Every kernel the CPU has, every tile shape, against plain i64 sums, at the extreme
    /// values too (all ±127: the sums a saturating kernel would get wrong).
    #[test]
    fn every_kernel_sums_exactly() {
        let mut rng = LcgRng::new(7);
        for kernel in supported() {
            for kg in [1, 3, 17] {
                for extreme in [false, true] {
                    let lda = GROUP * kg + 4;
                    let rows_max = kernel.max_rows();
                    let mut q = bytes(rows_max * lda, &mut rng);
                    let panel_stride = GROUP_BYTES * kg + 64;
                    let mut w = bytes(2 * panel_stride, &mut rng);
                    if extreme {
                        q.iter_mut()
                            .for_each(|v| *v = if *v < 0 { -127 } else { 127 });
                        w.iter_mut()
                            .for_each(|v| *v = if *v < 0 { -127 } else { 127 });
                    }
                    let u8s: Vec<u8> = q.iter().map(|&v| (i16::from(v) + 128) as u8).collect();
                    let i16s: Vec<i16> = q.iter().map(|&v| i16::from(v)).collect();
                    for rows in 1..=rows_max {
                        for panels in 1..=kernel.max_panels() {
                            let a = match kernel.activations() {
                                ActivationFormat::U8Offset => Int8Rows::U8(&u8s),
                                ActivationFormat::I16 => Int8Rows::I16(&i16s),
                            };
                            let mut acc = [i32::MIN; ACC_LEN];
                            tile_i8(kernel, a, lda, rows, &w, panel_stride, panels, kg, &mut acc);
                            for r in 0..rows {
                                for c in 0..panels * PANEL {
                                    let (p, cc) = (c / PANEL, c % PANEL);
                                    let mut want = 0i64;
                                    let mut col = 0i64;
                                    for k in 0..GROUP * kg {
                                        let wv = i64::from(
                                            w[p * panel_stride
                                                + (k / GROUP) * GROUP_BYTES
                                                + cc * GROUP
                                                + k % GROUP],
                                        );
                                        want += i64::from(q[r * lda + k]) * wv;
                                        col += wv;
                                    }
                                    if kernel.activations() == ActivationFormat::U8Offset {
                                        want += 128 * col;
                                    }
                                    assert_eq!(
                                        i64::from(acc[r * ACC_STRIDE + c]),
                                        want,
                                        "{kernel} {rows}×{panels} kg {kg} ({r}, {c})"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "reads")]
    fn the_wrong_activation_format_is_refused() {
        let mut acc = [0; ACC_LEN];
        tile_i8(
            Int8Kernel::Generic,
            Int8Rows::U8(&[0; 4]),
            4,
            1,
            &[0; 64],
            64,
            1,
            1,
            &mut acc,
        );
    }

    #[test]
    #[should_panic(expected = "int8 tile rows")]
    fn too_many_rows_are_refused() {
        let mut acc = [0; ACC_LEN];
        tile_i8(
            Int8Kernel::Generic,
            Int8Rows::I16(&[0; 64]),
            4,
            5,
            &[0; 64],
            64,
            1,
            1,
            &mut acc,
        );
    }
}
