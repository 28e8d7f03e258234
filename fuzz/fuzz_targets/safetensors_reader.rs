//! Fuzz target: arbitrary bytes as a `.safetensors` file, opened with
//! [`TensorStore::open_file`] and, when it opens, every tensor read back.
//!
//! Property: opening and reading never panic, hang, or allocate for a size the header only
//! claims (every allocation is bounded by the file's real length). Oracle: a file that opens
//! is also accepted by the `safetensors` crate's in-memory `SafeTensors::deserialize`, and
//! every tensor that reads back equals the bytes that crate slices out for it (so the
//! reader's offsets are right); the only read error allowed on an opened file is
//! `UnsupportedDtype`.
#![no_main]

use clip_vision::checkpoint::{CheckpointError, TensorStore};
use libfuzzer_sys::fuzz_target;
use safetensors::{Dtype, SafeTensors};
use std::path::PathBuf;
use std::sync::OnceLock;

/// One scratch file per process, on tmpfs when there is one.
fn scratch_path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let shm = PathBuf::from("/dev/shm");
        let dir = if shm.is_dir() {
            shm
        } else {
            std::env::temp_dir()
        };
        dir.join(format!(
            "clip-vision-fuzz-{}.safetensors",
            std::process::id()
        ))
    })
}

/// `bytes` as little-endian F32 / F16 / BF16 values, the reference conversion.
fn reference_f32(dtype: Dtype, bytes: &[u8]) -> Option<Vec<f32>> {
    Some(match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        _ => return None,
    })
}

fuzz_target!(|data: &[u8]| {
    let path = scratch_path();
    std::fs::write(path, data).expect("the scratch file is writable");
    let Ok(store) = TensorStore::open_file(path) else {
        return;
    };
    let reference = SafeTensors::deserialize(data)
        .expect("a file TensorStore opens is valid for the safetensors crate too");
    for name in store.names() {
        let shape = store
            .shape(name)
            .expect("a listed name has a shape")
            .to_vec();
        let view = reference
            .tensor(name)
            .expect("the safetensors crate lists the same tensors");
        assert_eq!(view.shape(), &shape[..], "{name}: shape");
        match store.tensor(name, &shape) {
            Ok(values) => {
                let numel: usize = shape.iter().product();
                assert_eq!(values.len(), numel, "{name}: length");
                let want =
                    reference_f32(view.dtype(), view.data()).expect("only F32, F16 and BF16 read");
                let same = values
                    .iter()
                    .zip(&want)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(
                    same,
                    "{name}: values differ from the safetensors crate's bytes"
                );
            }
            Err(CheckpointError::UnsupportedDtype { .. }) => {
                assert!(
                    !matches!(view.dtype(), Dtype::F32 | Dtype::F16 | Dtype::BF16),
                    "{name}: {:?} refused",
                    view.dtype()
                );
            }
            Err(e) => panic!("{name}: reading an opened file failed: {e}"),
        }
        // A wrong expected shape is refused before any data is read.
        let mut wrong = shape.clone();
        wrong.push(1);
        assert!(matches!(
            store.tensor(name, &wrong),
            Err(CheckpointError::TensorShape { .. })
        ));
    }
});
