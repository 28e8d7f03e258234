//! Image bytes read from a webdataset shard embed exactly as the same files do through
//! `ImageEmbedder::embed_paths` (one code path, so exact equality).

use clip_vision::ImageEmbedder;
use clip_vision_job::webdataset::ShardReader;
use std::path::PathBuf;

#[test]
fn shard_images_embed_exactly_as_their_files() {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
    let names = [
        "chelsea.jpg",
        "hubble_alpha.png",
        "rocket.webp",
        "coffee.jpg",
    ];
    let paths: Vec<PathBuf> = names
        .iter()
        .map(|n| fixtures.join("images").join(n))
        .collect();
    let mut b = tar::Builder::new(Vec::new());
    for (i, path) in paths.iter().enumerate() {
        let ext = path.extension().unwrap().to_str().unwrap();
        b.append_path_with_name(path, format!("{i:09}.{ext}"))
            .unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(5);
        b.append_data(&mut h, format!("{i:09}.txt"), &b"photo"[..])
            .unwrap();
    }
    let tmp = tempfile::tempdir().unwrap();
    let shard = tmp.path().join("00000.tar");
    std::fs::write(&shard, b.into_inner().unwrap()).unwrap();

    let mut reader = ShardReader::open(&shard).unwrap();
    let samples: Vec<_> = reader.samples().map(Result::unwrap).collect();
    assert_eq!(samples.len(), 4);
    let exts: Vec<&str> = samples
        .iter()
        .map(|s| s.image.as_ref().unwrap().0)
        .collect();
    assert_eq!(exts, ["jpg", "png", "webp", "jpg"]);
    let bytes: Vec<&[u8]> = samples
        .iter()
        .map(|s| s.image.as_ref().unwrap().1.as_slice())
        .collect();

    let embedder = ImageEmbedder::from_pretrained(fixtures.join("models/demo")).unwrap();
    let from_shard = embedder.embed_bytes(&bytes);
    let from_files = embedder.embed_paths(&paths);
    for ((name, a), b) in names.iter().zip(from_shard).zip(from_files) {
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.len(), 32, "{name}");
        assert_eq!(a, b, "{name}: shard bytes and file embed differently");
    }
}
