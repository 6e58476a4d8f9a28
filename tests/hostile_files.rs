//! Every reader against files crafted to break it: valid IDX (raw and gzipped), CIFAR and
//! checkpoint files, mutated by proptest (truncated at every length class, bytes flipped,
//! header fields replaced by huge or wrong values, junk appended, metadata replaced by invalid
//! JSON, non-UTF-8 text or a newer format). Whatever the mutation, a reader returns a value or
//! a one-line error that names the file — never a panic, and never an allocation a header
//! asked for without checking it (a header claiming 2³¹ × 2³¹ images fails on the header).
//!
//! Failures proptest finds are kept in `tests/proptest-regressions/hostile_files.txt` and
//! replayed first on every run; the hand-made regression cases are the `#[test]`s below.

use crate::common::{fresh_dir, shared_dir, sparsenet, tmp};
use proptest::prelude::*;
use sparsenet::data::{cifar, idx};
use sparsenet::model::Model;
use sparsenet::train::checkpoint;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn image_file(n: u32, h: u32, w: u32, pixels: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for x in [0x0803u32, n, h, w] {
        v.extend(x.to_be_bytes());
    }
    v.extend(pixels);
    v
}

fn label_file(labels: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend(0x0801u32.to_be_bytes());
    v.extend((labels.len() as u32).to_be_bytes());
    v.extend(labels);
    v
}

/// One mutation of a byte string.
#[derive(Clone, Debug)]
enum Mutation {
    /// Keep this fraction (per mille) of the bytes.
    Truncate(u16),
    /// XOR these positions (per mille of the length) with these bytes.
    Flip(Vec<(u16, u8)>),
    /// Overwrite the big-endian u32 at this word index (of the header) with a value.
    Word(usize, u32),
    /// Append junk.
    Append(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (0u16..=1000).prop_map(Mutation::Truncate),
        prop::collection::vec((0u16..1000, 1u8..=255), 1..5).prop_map(Mutation::Flip),
        (
            0usize..4,
            prop_oneof![
                Just(0u32),
                Just(u32::MAX),
                Just(1 << 31),
                Just(0x0803),
                Just(0x0801),
                any::<u32>()
            ]
        )
            .prop_map(|(i, v)| Mutation::Word(i, v)),
        prop::collection::vec(any::<u8>(), 1..64).prop_map(Mutation::Append),
    ]
}

fn apply(mut b: Vec<u8>, ms: &[Mutation]) -> Vec<u8> {
    for m in ms {
        match m {
            Mutation::Truncate(k) => b.truncate(b.len() * *k as usize / 1000),
            Mutation::Flip(fs) => {
                let n = b.len();
                for (at, x) in fs {
                    if n > 0 {
                        b[(n - 1) * *at as usize / 999] ^= x;
                    }
                }
            }
            Mutation::Word(i, v) => {
                if b.len() >= 4 * (i + 1) {
                    b[4 * i..4 * i + 4].copy_from_slice(&v.to_be_bytes());
                }
            }
            Mutation::Append(j) => b.extend(j),
        }
    }
    b
}

/// An error is one line and names the file it is about.
fn one_line_naming(e: &anyhow::Error, names: &[&str]) -> Result<(), TestCaseError> {
    let text = format!("{e:#}");
    prop_assert!(!text.contains('\n'), "multi-line error: {text}");
    prop_assert!(
        names.iter().any(|n| text.contains(n)),
        "error names no file: {text}"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: Some(Box::new(
        proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default() })]

    #[test]
    fn idx_readers_survive_mutations(
        n in 0u32..4, h in 1u32..6, w in 1u32..6, seed in any::<u8>(),
        gz_images in any::<bool>(), gz_labels in any::<bool>(),
        mi in prop::collection::vec(mutation(), 0..3),
        ml in prop::collection::vec(mutation(), 0..2),
    ) {
        let pixels: Vec<u8> = (0..n * h * w).map(|i| (i as u8).wrapping_mul(seed)).collect();
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        let img = apply(image_file(n, h, w, &pixels), &mi);
        let lab = apply(label_file(&labels), &ml);
        let img = if gz_images { gzip(&img) } else { img };
        let lab = if gz_labels { gzip(&lab) } else { lab };
        match idx::pair(&img, "images.idx", &lab, "labels.idx", 10) {
            Ok(d) => {
                prop_assert_eq!(d.images.len(), d.n * d.h * d.w);
                prop_assert_eq!(d.labels.len(), d.n);
            }
            Err(e) => one_line_naming(&e, &["images.idx", "labels.idx"])?,
        }
        // The same bytes with the gzip stream itself damaged.
        if gz_images && img.len() > 12 {
            let mut bad = img.clone();
            let at = 10 + (seed as usize) % (bad.len() - 10);
            bad[at] ^= 0x5a;
            if let Err(e) = idx::pair(&bad, "images.idx", &lab, "labels.idx", 10) {
                one_line_naming(&e, &["images.idx", "labels.idx"])?;
            }
        }
    }

    #[test]
    fn cifar_reader_survives_mutations(
        records in 0usize..3, fine in any::<bool>(),
        ms in prop::collection::vec(mutation(), 0..3),
    ) {
        let label_bytes = if fine { 2 } else { 1 };
        let mut b = Vec::new();
        for r in 0..records {
            b.extend(std::iter::repeat_n(r as u8 % 10, label_bytes));
            b.extend(std::iter::repeat_n(7u8, 3072));
        }
        let b = apply(b, &ms);
        match cifar::parse(&b, label_bytes, if fine { 100 } else { 10 }, "data_batch_1.bin") {
            Ok(d) => prop_assert_eq!(d.images.len(), d.n * 3072),
            Err(e) => one_line_naming(&e, &["data_batch_1.bin"])?,
        }
    }
}

/// A real checkpoint of a tiny network, written once by the trainer.
fn checkpoint_bytes() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let out = tmp("trained");
        let status = sparsenet("train")
            .args([
                "--family",
                "sparse",
                "--depth",
                "7",
                "--growth",
                "2",
                "--epochs",
                "1",
                "--max-steps",
                "1",
                "--max-test",
                "10",
                "--quiet",
                "--data-dir",
                crate::common::SUBSET,
                "--out",
            ])
            .arg(&out)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("train runs");
        assert!(status.success());
        let b = std::fs::read(out.join("last.safetensors")).unwrap();
        let _ = std::fs::remove_dir_all(&out);
        b
    })
}

/// Write `bytes` to a fresh file and read it as a checkpoint the way `evaluate` does: the
/// description, the size check, the model, the weights.
fn read_checkpoint(bytes: &[u8], name: &str) -> anyhow::Result<()> {
    let dir = shared_dir("checkpoints");
    let path: PathBuf = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    let r = (|| {
        let meta = checkpoint::load_meta(&path)?;
        checkpoint::check_size(&path, &meta)?;
        let mut model = Model::<f32>::new(&meta.spec, meta.input, 0)?;
        checkpoint::load_into(&path, &mut model, None)
    })();
    std::fs::remove_file(&path).unwrap();
    r
}

/// The checkpoint's JSON header with its embedded description replaced by `text`.
fn with_description(text: &str) -> Vec<u8> {
    let b = checkpoint_bytes();
    let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&b[8..8 + n]).unwrap();
    header["__metadata__"][checkpoint::META_KEY] = serde_json::Value::String(text.to_string());
    let mut h = serde_json::to_vec(&header).unwrap();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(h);
    out.extend(&b[8 + n..]);
    out
}

fn description() -> serde_json::Value {
    let b = checkpoint_bytes();
    let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&b[8..8 + n]).unwrap();
    serde_json::from_str(
        header["__metadata__"][checkpoint::META_KEY]
            .as_str()
            .unwrap(),
    )
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: Some(Box::new(
        proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default() })]

    #[test]
    fn checkpoint_reader_survives_mutations(ms in prop::collection::vec(mutation(), 1..3)) {
        let b = apply(checkpoint_bytes().to_vec(), &ms);
        if let Err(e) = read_checkpoint(&b, "mutated.safetensors") {
            one_line_naming(&e, &["mutated.safetensors"])?;
        }
    }

    #[test]
    fn checkpoint_descriptions_survive_edits(
        field in prop_oneof![Just("depth"), Just("growth"), Just("classes"), Just("stem"),
                             Just("input"), Just("version"), Just("family"), Just("mean"),
                             Just("std"), Just("epoch"), Just("epochs"), Just("best"),
                             Just("lr"), Just("batch_size"), Just("dataset")],
        value in prop_oneof![
            Just(serde_json::json!(null)), Just(serde_json::json!(-1)),
            Just(serde_json::json!(0)), Just(serde_json::json!(u64::MAX)),
            Just(serde_json::json!(4_000_000_000u64)), Just(serde_json::json!("x")),
            Just(serde_json::json!([1_000_000_000u64])), Just(serde_json::json!({"c": 1, "h": 0, "w": 1})),
        ],
    ) {
        let mut d = description();
        match field {
            "version" => d["version"] = value,
            "input" | "mean" | "std" | "epoch" | "epochs" | "best" | "lr" | "batch_size"
            | "dataset" => d[field] = value,
            f => d["spec"][f] = value,
        }
        if let Err(e) = read_checkpoint(&with_description(&d.to_string()), "edited.safetensors") {
            one_line_naming(&e, &["edited.safetensors"])?;
        }
    }
}

/// The checkpoint with one tensor's header entry or data edited: `header` edits the entry
/// (dtype, shape, data_offsets), `data` the tensor's bytes.
fn with_tensor(
    suffix: &str,
    header: impl Fn(&mut serde_json::Value),
    data: impl Fn(&mut [u8]),
) -> Vec<u8> {
    let b = checkpoint_bytes();
    let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
    let mut h: serde_json::Value = serde_json::from_slice(&b[8..8 + n]).unwrap();
    let name = h
        .as_object()
        .unwrap()
        .keys()
        .find(|k| k.ends_with(suffix) && !k.starts_with("optimizer."))
        .unwrap()
        .clone();
    let offs: Vec<usize> = h[&name]["data_offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    header(&mut h[&name]);
    let mut hb = serde_json::to_vec(&h).unwrap();
    while !hb.len().is_multiple_of(8) {
        hb.push(b' ');
    }
    let mut out = (hb.len() as u64).to_le_bytes().to_vec();
    out.extend(hb);
    let mut body = b[8 + n..].to_vec();
    data(&mut body[offs[0]..offs[1]]);
    out.extend(body);
    out
}

/// The rows of the hostile sweep (issue: "nothing lost, nothing exhausted") that are checkpoint
/// fields: each is a one-line error naming the file and the field, never a panic.
#[test]
fn every_description_field_and_tensor_is_checked() {
    let edit = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut d = description();
        f(&mut d);
        with_description(&d.to_string())
    };
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (edit(&|d| d["mean"] = serde_json::json!([])), "0 means"),
        (edit(&|d| d["std"] = serde_json::json!([0.0])), "std 0"),
        (
            edit(&|d| d["epoch"] = serde_json::json!(1_000_000_000_000_000_000u64)),
            "epoch 1000000000000000000 of",
        ),
        (edit(&|d| d["epoch"] = serde_json::json!(0)), "epoch 0 of"),
        (edit(&|d| d["best"] = serde_json::json!([1.5, 1])), "best"),
        (
            edit(&|d| d["lr"] = serde_json::json!(-1.0)),
            "learning rate",
        ),
        (
            with_tensor(
                "running_var",
                |_| {},
                |d| d[..4].copy_from_slice(&(-1.0f32).to_le_bytes()),
            ),
            "negative variance",
        ),
        (
            with_tensor(
                ".weight",
                |_| {},
                |d| {
                    for c in d.chunks_mut(4) {
                        c.copy_from_slice(&f32::NAN.to_le_bytes());
                    }
                },
            ),
            "NaN at index 0",
        ),
        (
            with_tensor(
                "conv.weight",
                |e| {
                    let mut s: Vec<serde_json::Value> = e["shape"].as_array().unwrap().clone();
                    s.reverse();
                    e["shape"] = serde_json::Value::Array(s);
                },
                |_| {},
            ),
            "has shape",
        ),
    ];
    for (i, (bytes, want)) in cases.iter().enumerate() {
        let name = format!("field{i}.safetensors");
        let e = match read_checkpoint(bytes, &name) {
            Ok(()) => panic!("case {i} ({want}) was accepted"),
            Err(e) => format!("{e:#}"),
        };
        assert!(
            e.contains(&name) && e.contains(want) && !e.contains('\n'),
            "{want}: {e}"
        );
    }
    // Special files are refused by type, before any read: a FIFO would block for ever and
    // /dev/zero never ends.
    let dir = tmp("special");
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("pipe.safetensors");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    for path in [fifo.to_str().unwrap(), "/dev/zero"] {
        let t0 = std::time::Instant::now();
        let (code, err) = crate::common::status("evaluate", &["--checkpoint", path]);
        assert_eq!(code, 2, "{path}: {err}");
        assert!(
            err.contains("not a regular file") && err.trim_end().lines().count() == 1,
            "{err}"
        );
        assert!(t0.elapsed() < std::time::Duration::from_secs(10));
        let (code, err) = crate::common::status("paths", &["--dag-file", path]);
        assert_eq!(code, 2, "{path}: {err}");
        assert!(err.contains("not a regular file"), "{err}");
    }
}

fn err_of(bytes: &[u8], name: &str) -> String {
    format!("{:#}", read_checkpoint(bytes, name).unwrap_err())
}

#[test]
fn the_unmutated_checkpoint_reads() {
    read_checkpoint(checkpoint_bytes(), "valid.safetensors").unwrap();
}

#[test]
fn invalid_json_non_utf8_and_newer_descriptions_are_named_errors() {
    let e = err_of(&with_description("{not json"), "a.safetensors");
    assert!(
        e.contains("a.safetensors") && e.contains("unreadable"),
        "{e}"
    );
    let mut newer = description();
    newer["version"] = serde_json::json!(2);
    let e = err_of(&with_description(&newer.to_string()), "b.safetensors");
    assert!(e.contains("newer") && e.contains("version 2"), "{e}");
    // Non-UTF-8 bytes inside the JSON header: the safetensors header itself is unreadable.
    let mut b = checkpoint_bytes().to_vec();
    b[20] = 0xff;
    b[21] = 0xfe;
    let e = err_of(&b, "c.safetensors");
    assert!(e.contains("c.safetensors") && e.contains("corrupt"), "{e}");
}

#[test]
fn a_description_claiming_a_huge_network_fails_before_building_it() {
    let mut d = description();
    d["spec"]["depth"] = serde_json::json!(9_994); // within the depth limit, 3 331 layers a block
    d["spec"]["growth"] = serde_json::json!([64]);
    let e = err_of(&with_description(&d.to_string()), "huge.safetensors");
    assert!(
        e.contains("parameters") && e.contains("huge.safetensors"),
        "{e}"
    );
    d["spec"]["depth"] = serde_json::json!(4_000_000_003u64);
    let e = err_of(&with_description(&d.to_string()), "deeper.safetensors");
    assert!(e.contains("beyond what this tool builds"), "{e}");
}

#[test]
fn a_gzip_bomb_is_cut_off_at_the_announced_size() {
    // 64 MiB of zeros behind a header announcing one 28×28 image: reading stops after 785 bytes.
    let mut body = image_file(1, 28, 28, &[]);
    body.resize(16 + (64 << 20), 0);
    let bomb = gzip(&body);
    assert!(bomb.len() < 1 << 20, "the bomb compresses");
    let e = format!(
        "{:#}",
        idx::pair(&bomb, "bomb.gz", &label_file(&[1]), "l", 10).unwrap_err()
    );
    assert!(e.contains("bomb.gz") && e.contains("more than 784"), "{e}");
}

#[test]
fn a_header_claiming_two_to_the_62_pixels_fails_on_the_header() {
    let img = image_file(1 << 31, 1 << 31, 1, &[]);
    let e = format!(
        "{:#}",
        idx::pair(&img, "big.idx", &label_file(&[]), "l", 10).unwrap_err()
    );
    assert!(e.contains("big.idx") && e.contains("more than"), "{e}");
}

/// The loaders name the file when reading a folder: a dataset folder with a truncated image
/// file gives one line naming that file.
#[test]
fn folder_loaders_name_the_file() {
    let dir = fresh_dir("folder");
    let img = dir.join("train-images-idx3-ubyte");
    std::fs::write(&img, image_file(2, 2, 2, &[1, 2, 3])).unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte"), label_file(&[1, 2])).unwrap();
    std::fs::write(
        dir.join("t10k-images-idx3-ubyte"),
        image_file(1, 2, 2, &[0; 4]),
    )
    .unwrap();
    std::fs::write(dir.join("t10k-labels-idx1-ubyte"), label_file(&[1])).unwrap();
    let e = format!(
        "{:#}",
        sparsenet::data::load(
            sparsenet::data::DatasetKind::FashionMnist,
            Some(Path::new(&dir))
        )
        .unwrap_err()
    );
    assert!(
        e.contains(&img.display().to_string()) && e.contains("truncated"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `evaluate` with data of another input layout than the checkpoint's network: refused with
/// an error naming both layouts, before any weight is loaded.
#[test]
fn evaluate_names_both_layouts_when_the_data_does_not_fit() {
    let dir = fresh_dir("layout");
    for (prefix, n) in [("train", 2u32), ("t10k", 1)] {
        let pixels = vec![9u8; (n * 8 * 8) as usize];
        std::fs::write(
            dir.join(format!("{prefix}-images-idx3-ubyte")),
            image_file(n, 8, 8, &pixels),
        )
        .unwrap();
        let labels: Vec<u8> = (0..n as u8).collect();
        std::fs::write(
            dir.join(format!("{prefix}-labels-idx1-ubyte")),
            label_file(&labels),
        )
        .unwrap();
    }
    let ck = dir.join("ck.safetensors");
    std::fs::write(&ck, checkpoint_bytes()).unwrap();
    let out = sparsenet("evaluate")
        .arg("--checkpoint")
        .arg(&ck)
        .arg("--data-dir")
        .arg(&dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("1×8×8") && err.contains("1×28×28"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
