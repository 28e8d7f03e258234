//! The clip-vision side of `scripts/bench_sgemm_peers.py`: times one `x·Wᵀ + b` product of a
//! ViT block, `[m, k] · [k, n]`, the way the layers run it, and prints one JSON line, so that
//! the script can set it beside ONNX Runtime's and numpy's sgemm on the same shape, in one
//! run.
//!
//! ```text
//! gemm_worker --shape M,K,N --threads 2 [--kernel backend|packed] [--path avx512|avx2|portable]
//!             [--warmup 3] [--iters 10] [--min-time 5] [--no-reject-busy]
//! ```
//!
//! `--kernel backend` is `linear_with` on `Wᵀ` (matrixmultiply, or the `gemm` crate with the
//! feature: the weight packed on every call); `--kernel packed` (feature `packed`) is
//! `linear_packed` on a `PackedWeight`, what `vit_layers::Linear` runs in that build, on the
//! micro-kernel path `--path` forces (the CPU's widest by default). The calls run inside the
//! rayon pool (`vit_tensor::on_worker`), as a forward pass's do. The same weight every call:
//! hot in L3 where it fits, as in the peers' loops.
#![forbid(unsafe_code)]

use vit_benches::peer::{time_calls, Options};
use vit_tensor::{linear_packed, linear_with, Epilogue, LcgRng, PackedWeight, WeightLayout};

fn main() {
    let opts = Options::from_args();
    vit_benches::global_pool(&opts);
    let shape: Vec<usize> = opts
        .get("shape", "")
        .split(',')
        .map(|s| s.parse().unwrap_or_else(|_| panic!("--shape takes M,K,N")))
        .collect();
    let [m, k, n] = shape[..] else {
        panic!("--shape takes M,K,N")
    };
    let kernel = opts.get("kernel", "backend");
    if kernel != "backend" && kernel != "packed" {
        panic!("--kernel takes backend or packed, not {kernel:?}");
    }
    let path = opts.get("path", "");
    if !path.is_empty() {
        let p = path.parse().unwrap_or_else(|e| panic!("--path: {e}"));
        vit_tensor::kernels::force_kernel_path(Some(p)).unwrap_or_else(|e| panic!("{e}"));
    }

    let mut rng = LcgRng::new(0);
    let x = rng.normal_vec(m * k, 0.0, 1.0);
    let w = rng.normal_vec(k * n, 0.0, 0.02);
    let b = rng.normal_vec(n, 0.0, 0.02);
    let mut out = vec![0.0f32; m * n];
    let epilogue = Epilogue {
        bias: Some(&b),
        ..Epilogue::default()
    };
    let packed = (kernel == "packed").then(|| {
        if !vit_tensor::PACKED_KERNELS {
            panic!("--kernel packed needs the `packed` feature");
        }
        PackedWeight::pack(&w, WeightLayout::InOut, k, n).unwrap_or_else(|e| panic!("{e}"))
    });
    // The whole loop on one pool worker, as a forward pass runs its products.
    let timing = vit_tensor::on_worker(|| {
        time_calls(&opts, || {
            match &packed {
                Some(p) => linear_packed(&x, p, m, &mut out, epilogue),
                None => linear_with(&x, &w, WeightLayout::InOut, [m, k, n], &mut out, epilogue),
            }
            .unwrap_or_else(|e| panic!("{e}"))
        })
    });
    let kernel = match &packed {
        Some(_) => format!("packed/{}", vit_tensor::kernels::kernel_path()),
        None => format!("backend/{}", vit_tensor::gemm::BACKEND),
    };
    println!(
        "{{{}, \"kernel\": \"{kernel}\", \"rayon_threads\": {}}}",
        timing.json_fields(None, None, None),
        rayon::current_num_threads()
    );
}
